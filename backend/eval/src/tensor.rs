//! Readers for untrusted tensor files: `.npy`, `.npz`, safetensors and PNG.
//!
//! Every file a competitor uploads is hostile until proven otherwise. Each
//! reader takes the whole file as bytes plus [`Limits`] and checks every size
//! it is told (header lengths, shapes, entry counts, image dimensions) against
//! the limits *before* allocating for it, with checked arithmetic; sizes that
//! can only be learnt by decompressing (npz entries) are enforced while
//! streaming. Nothing is ever unpickled: object arrays are refused from their
//! header.
//!
//! Values come out as `f32` in a [`Tensor`] (integer and half-precision inputs
//! are converted), labels as `i64` ([`read_npy_labels`]). [`read_tensor`] picks
//! the format from the file's first bytes, and [`validate_examples`] checks a
//! tensor against a challenge's [`TaskSpec`].
//!
//! Error policy: every failure is a [`TensorError`] whose message says what was
//! wrong and what was expected, fit to show to the competitor as is. No input
//! makes these functions panic.

mod npy;
mod npz;
mod png_image;
mod safetensors_file;

use std::fmt;

use riposte_core::task::{Dtype, TaskSpec};

pub use npy::{NPY_HEADER_LIMIT, read_npy, read_npy_labels};
pub use npz::{read_npz, read_npz_arrays};
pub use png_image::read_png;
pub use safetensors_file::{SAFETENSORS_HEADER_LIMIT, read_safetensors};

/// A dense, C-ordered array of `f32` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first. An empty shape is a scalar.
    pub shape: Vec<usize>,
    /// Values in C (row-major) order; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl Tensor {
    /// The tensor as a little-endian float32 `.npy` file (format 1.0, C order).
    pub fn to_npy(&self) -> Vec<u8> {
        let dims: Vec<String> = self.shape.iter().map(ToString::to_string).collect();
        let mut header = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
            dims.join(", ")
        );
        // magic + version + length + header + '\n' end on a 64-byte boundary
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut out = Vec::with_capacity(10 + header.len() + 4 * self.data.len());
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(
            &u16::try_from(header.len())
                .unwrap_or(u16::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(header.as_bytes());
        for v in &self.data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// A tensor from its shape and values, refusing a length that does not
    /// match the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, TensorError> {
        let needed = element_count(&shape)?;
        if needed != data.len() {
            return Err(TensorError::Malformed {
                format: "tensor",
                reason: format!(
                    "shape {} needs {needed} values but {} were given",
                    fmt_shape(&shape),
                    data.len()
                ),
            });
        }
        Ok(Self { shape, data })
    }

    /// Number of examples: the first dimension (1 for a scalar).
    pub fn num_examples(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Number of values in one example (the product of all but the first dimension).
    pub fn example_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The values of example `index`, if it exists.
    pub fn example(&self, index: usize) -> Option<&[f32]> {
        let len = self.example_len();
        let start = index.checked_mul(len)?;
        self.data.get(start..start.checked_add(len)?)
    }
}

/// Hard limits applied while reading a file. The defaults suit evaluation
/// files of a few thousand small images; a challenge can raise them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest file accepted, in bytes (for npz: also the largest single entry once decompressed).
    pub max_bytes: usize,
    /// Most values in one array (each becomes a 4-byte `f32`).
    pub max_elements: usize,
    /// Most entries in an npz archive.
    pub max_npz_entries: usize,
    /// Most bytes an npz may expand to, summed over the entries read.
    pub max_npz_total_bytes: u64,
    /// Most pixels (width x height) in a PNG.
    pub max_png_pixels: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 64 << 20,
            max_elements: 16 << 20,
            max_npz_entries: 16,
            max_npz_total_bytes: 64 << 20,
            max_png_pixels: 4096 * 4096,
        }
    }
}

/// A tensor file format, as recognised by [`sniff_format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy`.
    Npy,
    /// NumPy `.npz` (a zip of `.npy` files).
    Npz,
    /// Hugging Face safetensors.
    Safetensors,
    /// PNG image.
    Png,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Safetensors => "safetensors",
            Format::Png => "PNG",
        })
    }
}

/// Everything that can be wrong with a tensor file or with its contents.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// The file (or a decompressed entry) is bigger than allowed.
    #[error("{what} is {size} bytes: the limit is {limit} bytes")]
    FileTooLarge {
        /// What was too large, e.g. "the file".
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The first bytes match no supported format.
    #[error(
        "{file} is not a recognised tensor file: expected .npy, .npz, .safetensors or .png content (recognised by its first bytes)"
    )]
    UnknownFormat {
        /// The file name, quoted, or "the file".
        file: String,
    },
    /// The file is structurally broken; `reason` says how.
    #[error("{format} file is malformed: {reason}")]
    Malformed {
        /// The format being read.
        format: &'static str,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// A header longer than the reader accepts.
    #[error("{format} header is {len} bytes: the limit is {limit}")]
    HeaderTooLarge {
        /// The format being read.
        format: Format,
        /// The declared header length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// A dtype that is not plain numbers (objects, strings, records, ...).
    #[error("{format} header declares dtype '{dtype}' ({what}): only numeric dtypes are accepted")]
    UnsupportedDtype {
        /// The format being read.
        format: Format,
        /// The dtype as written in the file.
        dtype: String,
        /// What that dtype holds, in words.
        what: &'static str,
    },
    /// A Fortran-ordered npy array.
    #[error(
        "npy array is stored in Fortran (column-major) order: expected C order (save np.ascontiguousarray(x))"
    )]
    FortranOrder,
    /// Multiplying the shape out overflows.
    #[error("shape {shape} is too large: its element count overflows")]
    ShapeOverflow {
        /// The shape, Python-style.
        shape: String,
    },
    /// More elements than [`Limits::max_elements`].
    #[error("shape {shape} has {elements} elements: the limit is {limit}")]
    TooManyElements {
        /// The shape, Python-style.
        shape: String,
        /// Its element count.
        elements: u128,
        /// The limit.
        limit: usize,
    },
    /// The payload length does not match the shape exactly.
    #[error("shape {shape} needs {expected} bytes but the file has {actual}")]
    PayloadSize {
        /// The shape, Python-style.
        shape: String,
        /// Bytes the shape and dtype need.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// An npz entry name with a directory, a `..` or a backslash.
    #[error("npz entry '{name}' has a path in its name: expected a plain 'name.npy'")]
    NpzEntryPath {
        /// The entry name (escaped).
        name: String,
    },
    /// An npz entry that is not `name.npy`.
    #[error("npz entry '{name}' is not an array file: expected a plain 'name.npy'")]
    NpzEntryName {
        /// The entry name (escaped).
        name: String,
    },
    /// Too many npz entries.
    #[error("npz has {count} entries: the limit is {limit}")]
    TooManyEntries {
        /// Entries in the archive.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The npz decompresses to more than allowed.
    #[error("npz expands beyond {limit} uncompressed (limit)")]
    NpzTooLarge {
        /// The limit that was hit, human-readable.
        limit: String,
    },
    /// A named array that the file does not hold.
    #[error("{format} file has no array named '{name}': it holds {available}")]
    NoSuchArray {
        /// The format being read.
        format: Format,
        /// The requested name.
        name: String,
        /// The names it does hold.
        available: String,
    },
    /// Several arrays and no name to pick one.
    #[error("{format} file holds {count} arrays ({available}): expected exactly one")]
    AmbiguousArray {
        /// The format being read.
        format: Format,
        /// How many arrays.
        count: usize,
        /// Their names.
        available: String,
    },
    /// A PNG whose dimensions exceed [`Limits::max_png_pixels`].
    #[error("PNG declares {width} x {height} pixels: the limit is {limit}")]
    PngTooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit, human-readable.
        limit: String,
    },
    /// Labels that are not a 1-D integer array.
    #[error("labels {problem}: expected a 1-D integer array of shape (N,)")]
    BadLabels {
        /// What is wrong with them.
        problem: String,
    },
    /// A tensor whose shape does not fit the task.
    #[error("shape {shape} does not match the task: expected {expected}")]
    ShapeMismatch {
        /// The tensor's shape, Python-style.
        shape: String,
        /// The expected shape, Python-style with `N` for the batch.
        expected: String,
    },
    /// A NaN or infinite value.
    #[error("example {example} has {value} at position {position}: expected finite numbers")]
    NonFinite {
        /// Index of the example (first dimension).
        example: usize,
        /// Position inside the example, Python-style.
        position: String,
        /// "NaN", "inf" or "-inf".
        value: String,
    },
    /// A value outside the task's range.
    #[error(
        "example {example} has value {value} at position {position}: values must lie in [{low}, {high}]"
    )]
    OutOfRange {
        /// Index of the example.
        example: usize,
        /// Position inside the example, Python-style.
        position: String,
        /// The value.
        value: f32,
        /// Inclusive lower bound.
        low: f32,
        /// Inclusive upper bound.
        high: f32,
    },
    /// A fractional value for a task whose dtype is integral.
    #[error(
        "example {example} has value {value} at position {position}: the task's dtype is uint8, expected whole numbers"
    )]
    NotWhole {
        /// Index of the example.
        example: usize,
        /// Position inside the example, Python-style.
        position: String,
        /// The value.
        value: f32,
    },
}

/// Element types the readers convert from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementType {
    Bool,
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F16,
    Bf16,
    F32,
    F64,
}

impl ElementType {
    fn size(self) -> usize {
        match self {
            Self::Bool | Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
        }
    }

    fn is_integer(self) -> bool {
        !matches!(
            self,
            Self::Bool | Self::F16 | Self::Bf16 | Self::F32 | Self::F64
        )
    }
}

/// A validated array whose bytes have not been converted yet.
#[derive(Debug)]
struct RawArray<'a> {
    shape: Vec<usize>,
    element: ElementType,
    big_endian: bool,
    bytes: &'a [u8],
}

fn array<const N: usize>(chunk: &[u8], big_endian: bool) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(chunk);
    if big_endian {
        out.reverse();
    }
    out
}

impl RawArray<'_> {
    /// The values as `f32` (64-bit integers and doubles lose precision, as a cast would).
    fn to_f32(&self) -> Vec<f32> {
        let be = self.big_endian;
        let b = self.bytes;
        match self.element {
            ElementType::Bool => b.iter().map(|&v| if v != 0 { 1.0 } else { 0.0 }).collect(),
            ElementType::U8 => b.iter().map(|&v| f32::from(v)).collect(),
            ElementType::I8 => b.iter().map(|&v| f32::from(v as i8)).collect(),
            ElementType::U16 => b
                .chunks_exact(2)
                .map(|c| f32::from(u16::from_le_bytes(array(c, be))))
                .collect(),
            ElementType::I16 => b
                .chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes(array(c, be))))
                .collect(),
            ElementType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes(array(c, be)).to_f32())
                .collect(),
            ElementType::Bf16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes(array(c, be)).to_f32())
                .collect(),
            ElementType::U32 => b
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes(array(c, be)) as f32)
                .collect(),
            ElementType::I32 => b
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(array(c, be)) as f32)
                .collect(),
            ElementType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(array(c, be)))
                .collect(),
            ElementType::U64 => b
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(array(c, be)) as f32)
                .collect(),
            ElementType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(array(c, be)) as f32)
                .collect(),
            ElementType::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(array(c, be)) as f32)
                .collect(),
        }
    }

    /// The values as `i64`; only integer element types are accepted, and
    /// unsigned values above `i64::MAX` are refused.
    fn to_i64(&self, dtype_name: &str) -> Result<Vec<i64>, TensorError> {
        let be = self.big_endian;
        let b = self.bytes;
        Ok(match self.element {
            ElementType::U8 => b.iter().map(|&v| i64::from(v)).collect(),
            ElementType::I8 => b.iter().map(|&v| i64::from(v as i8)).collect(),
            ElementType::U16 => b
                .chunks_exact(2)
                .map(|c| i64::from(u16::from_le_bytes(array(c, be))))
                .collect(),
            ElementType::I16 => b
                .chunks_exact(2)
                .map(|c| i64::from(i16::from_le_bytes(array(c, be))))
                .collect(),
            ElementType::U32 => b
                .chunks_exact(4)
                .map(|c| i64::from(u32::from_le_bytes(array(c, be))))
                .collect(),
            ElementType::I32 => b
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(array(c, be))))
                .collect(),
            ElementType::I64 => b
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(array(c, be)))
                .collect(),
            ElementType::U64 => {
                let mut out = Vec::with_capacity(b.len() / 8);
                for (index, c) in b.chunks_exact(8).enumerate() {
                    let v = u64::from_le_bytes(array(c, be));
                    let v = i64::try_from(v).map_err(|_| TensorError::BadLabels {
                        problem: format!("hold {v} at index {index}, which does not fit in int64"),
                    })?;
                    out.push(v);
                }
                out
            }
            _ => {
                debug_assert!(!self.element.is_integer());
                return Err(TensorError::BadLabels {
                    problem: format!("have dtype '{dtype_name}'"),
                });
            }
        })
    }

    fn into_tensor(self) -> Tensor {
        let data = self.to_f32();
        Tensor {
            shape: self.shape,
            data,
        }
    }
}

/// Python-style rendering of a shape: `(1000, 1, 28, 28)`, `(5,)`, `()`.
fn fmt_shape(shape: &[usize]) -> String {
    match shape {
        [] => "()".to_owned(),
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = shape.iter().map(ToString::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// Product of a shape, refusing overflow.
fn element_count(shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::ShapeOverflow {
            shape: fmt_shape(shape),
        })
}

/// Product of a shape checked against [`Limits::max_elements`], then the byte
/// length it needs for `element` (checked too).
fn checked_sizes(
    shape: &[usize],
    element: ElementType,
    limits: &Limits,
) -> Result<(usize, usize), TensorError> {
    // Counted in u128 so the message can quote the true element count of
    // shapes far beyond usize; only absurd ranks overflow even that.
    let wide = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d as u128))
        .ok_or_else(|| TensorError::ShapeOverflow {
            shape: fmt_shape(shape),
        })?;
    if wide > limits.max_elements as u128 {
        return Err(TensorError::TooManyElements {
            shape: fmt_shape(shape),
            elements: wide,
            limit: limits.max_elements,
        });
    }
    let elements = element_count(shape)?;
    let bytes = elements
        .checked_mul(element.size())
        .ok_or_else(|| TensorError::ShapeOverflow {
            shape: fmt_shape(shape),
        })?;
    Ok((elements, bytes))
}

/// Human-readable byte count: "64 MiB", "512 KiB", "1000 bytes".
fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// A name from a hostile file, made safe to quote in a message: control
/// characters escaped, at most 80 characters.
fn quote_name(name: &str) -> String {
    let escaped: String = name.chars().flat_map(char::escape_debug).collect();
    if escaped.chars().count() > 80 {
        let cut: String = escaped.chars().take(77).collect();
        format!("{cut}...")
    } else {
        escaped
    }
}

fn check_file_size(bytes: &[u8], limits: &Limits) -> Result<(), TensorError> {
    if bytes.len() > limits.max_bytes {
        return Err(TensorError::FileTooLarge {
            what: "the file".to_owned(),
            size: bytes.len() as u64,
            limit: limits.max_bytes as u64,
        });
    }
    Ok(())
}

/// Picks one array out of several by name, or the only one.
fn pick_name<'n>(
    format: Format,
    names: &'n [String],
    wanted: Option<&str>,
) -> Result<&'n str, TensorError> {
    let available = || {
        if names.is_empty() {
            "no arrays".to_owned()
        } else {
            names
                .iter()
                .map(|n| format!("'{}'", quote_name(n)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    match wanted {
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .map(String::as_str)
            .ok_or_else(|| TensorError::NoSuchArray {
                format,
                name: quote_name(wanted),
                available: available(),
            }),
        None => match names {
            [only] => Ok(only.as_str()),
            _ => Err(TensorError::AmbiguousArray {
                format,
                count: names.len(),
                available: available(),
            }),
        },
    }
}

/// Recognises a tensor file by its first bytes. The file name is only used in
/// the error message.
pub fn sniff_format(bytes: &[u8], filename_hint: Option<&str>) -> Result<Format, TensorError> {
    if bytes.starts_with(npy::MAGIC) {
        return Ok(Format::Npy);
    }
    // a zip starts with a local file header, or is an empty archive
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return Ok(Format::Npz);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    // safetensors: an 8-byte little-endian header length, then a JSON object
    if bytes.len() > 8 && bytes[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    Err(TensorError::UnknownFormat {
        file: filename_hint
            .map(|f| format!("'{}'", quote_name(f)))
            .unwrap_or_else(|| "the file".to_owned()),
    })
}

/// Reads any supported tensor file, recognised by its content. Archives
/// (npz, safetensors) must hold exactly one array; a PNG becomes a `[C, H, W]`
/// tensor in [0, 1].
pub fn read_tensor(
    bytes: &[u8],
    filename_hint: Option<&str>,
    limits: &Limits,
) -> Result<Tensor, TensorError> {
    check_file_size(bytes, limits)?;
    match sniff_format(bytes, filename_hint)? {
        Format::Npy => read_npy(bytes, limits),
        Format::Npz => read_npz(bytes, None, limits),
        Format::Safetensors => read_safetensors(bytes, None, limits),
        Format::Png => read_png(bytes, limits),
    }
}

/// Position of flat index `offset` inside one example of shape `example_shape`,
/// Python-style.
fn fmt_position(offset: usize, example_shape: &[usize]) -> String {
    let mut index = vec![0usize; example_shape.len()];
    let mut rest = offset;
    for (slot, &dim) in index.iter_mut().zip(example_shape).rev() {
        if dim > 0 {
            *slot = rest % dim;
            rest /= dim;
        }
    }
    fmt_shape(&index)
}

/// Checks a batch of examples against a task: shape `[N, ..input_shape]` with
/// `N >= 1`, finite values, values within `value_range`, and whole numbers when
/// the task's dtype is `uint8`. The first problem found is reported with its
/// example index and position.
pub fn validate_examples(tensor: &Tensor, spec: &TaskSpec) -> Result<(), TensorError> {
    let expected_shape = || {
        let mut parts = vec!["N".to_owned()];
        parts.extend(spec.input_shape.iter().map(ToString::to_string));
        if parts.len() == 1 {
            "(N,)".to_owned()
        } else {
            format!("({})", parts.join(", "))
        }
    };
    let shape_ok = tensor.shape.len() == spec.input_shape.len() + 1
        && tensor.shape[1..] == spec.input_shape[..]
        && tensor.shape[0] > 0;
    if !shape_ok {
        return Err(TensorError::ShapeMismatch {
            shape: fmt_shape(&tensor.shape),
            expected: expected_shape(),
        });
    }
    let example_len = spec.example_len();
    if tensor.data.len() != tensor.shape[0].saturating_mul(example_len) {
        return Err(TensorError::Malformed {
            format: "tensor",
            reason: format!(
                "shape {} does not match its {} values",
                fmt_shape(&tensor.shape),
                tensor.data.len()
            ),
        });
    }
    let (low, high) = spec.value_range;
    let whole = spec.dtype == Dtype::Uint8;
    for (flat, &value) in tensor.data.iter().enumerate() {
        let in_range = value >= low && value <= high;
        let is_whole = !whole || value.fract() == 0.0;
        if value.is_finite() && in_range && is_whole {
            continue;
        }
        // example_len > 0 here: an empty example has no values to iterate
        let example = flat / example_len;
        let position = fmt_position(flat % example_len, &spec.input_shape);
        if !value.is_finite() {
            return Err(TensorError::NonFinite {
                example,
                position,
                value: if value.is_nan() {
                    "NaN".to_owned()
                } else if value > 0.0 {
                    "inf".to_owned()
                } else {
                    "-inf".to_owned()
                },
            });
        }
        if !in_range {
            return Err(TensorError::OutOfRange {
                example,
                position,
                value,
                low,
                high,
            });
        }
        return Err(TensorError::NotWhole {
            example,
            position,
            value,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn shapes_print_like_python() {
        assert_eq!(fmt_shape(&[]), "()");
        assert_eq!(fmt_shape(&[5]), "(5,)");
        assert_eq!(fmt_shape(&[1000, 1, 28, 28]), "(1000, 1, 28, 28)");
    }

    #[test]
    fn positions_are_multi_indices() {
        assert_eq!(fmt_position(0, &[1, 28, 28]), "(0, 0, 0)");
        assert_eq!(fmt_position(28 * 3 + 5, &[1, 28, 28]), "(0, 3, 5)");
        assert_eq!(fmt_position(7, &[10]), "(7,)");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(512 << 10), "512 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn names_are_escaped_and_cut() {
        assert_eq!(quote_name("a\nb"), "a\\nb");
        assert_eq!(quote_name(&"x".repeat(200)).chars().count(), 80);
    }

    #[test]
    fn tensor_examples() {
        let t = Tensor::new(vec![3, 2], vec![0., 1., 2., 3., 4., 5.]).unwrap();
        assert_eq!(t.num_examples(), 3);
        assert_eq!(t.example_len(), 2);
        assert_eq!(t.example(1), Some(&[2.0f32, 3.0][..]));
        assert_eq!(t.example(3), None);
        assert!(Tensor::new(vec![2, 2], vec![0.0]).is_err());
    }
}
