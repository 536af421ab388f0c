//! Safetensors files: an 8-byte little-endian header length, a JSON header
//! mapping names to `{dtype, shape, data_offsets}`, then the data.
//!
//! The `safetensors` crate does the validation that matters (offsets in
//! bounds, contiguous and non-overlapping, shape x itemsize equal to each byte
//! range with checked multiplication, the data section fully covered). We cap
//! the header length first (the crate allows 100 MB), and when the crate
//! refuses a file we re-read the header to say which tensor is wrong and how.

use safetensors::{Dtype, SafeTensorError, SafeTensors};

use super::{
    ElementType, Format, Limits, RawArray, Tensor, TensorError, check_file_size, checked_sizes,
    fmt_shape, pick_name, quote_name,
};

/// Longest safetensors JSON header accepted, in bytes (about ten thousand
/// tensor entries).
pub const SAFETENSORS_HEADER_LIMIT: usize = 1 << 20;

fn malformed(reason: impl Into<String>) -> TensorError {
    TensorError::Malformed {
        format: "safetensors",
        reason: reason.into(),
    }
}

/// Reads one tensor from a safetensors file: the one called `name`, or the
/// only one when `name` is `None`.
pub fn read_safetensors(
    bytes: &[u8],
    name: Option<&str>,
    limits: &Limits,
) -> Result<Tensor, TensorError> {
    check_file_size(bytes, limits)?;
    let Some(len_bytes) = bytes.get(..8) else {
        return Err(malformed("it is shorter than the 8-byte header length"));
    };
    let mut len_le = [0u8; 8];
    len_le.copy_from_slice(len_bytes);
    let header_len = u64::from_le_bytes(len_le);
    if header_len > SAFETENSORS_HEADER_LIMIT as u64 {
        return Err(TensorError::HeaderTooLarge {
            format: Format::Safetensors,
            len: header_len,
            limit: SAFETENSORS_HEADER_LIMIT as u64,
        });
    }
    // header_len <= 1 MiB: no overflow
    let data_start = 8 + header_len as usize;
    if data_start > bytes.len() {
        return Err(malformed(format!(
            "the header declares {header_len} bytes but only {} follow the length prefix",
            bytes.len() - 8
        )));
    }
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| explain(e, &bytes[8..data_start], bytes.len() - data_start))?;
    let mut names: Vec<String> = file.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let wanted = pick_name(Format::Safetensors, &names, name)?;
    let view = file.tensor(wanted).map_err(|e| {
        malformed(format!(
            "tensor '{}' cannot be read ({e})",
            quote_name(wanted)
        ))
    })?;
    let element = match view.dtype() {
        Dtype::BOOL => ElementType::Bool,
        Dtype::U8 => ElementType::U8,
        Dtype::I8 => ElementType::I8,
        Dtype::U16 => ElementType::U16,
        Dtype::I16 => ElementType::I16,
        Dtype::U32 => ElementType::U32,
        Dtype::I32 => ElementType::I32,
        Dtype::U64 => ElementType::U64,
        Dtype::I64 => ElementType::I64,
        Dtype::F16 => ElementType::F16,
        Dtype::BF16 => ElementType::Bf16,
        Dtype::F32 => ElementType::F32,
        Dtype::F64 => ElementType::F64,
        other => {
            return Err(TensorError::UnsupportedDtype {
                format: Format::Safetensors,
                dtype: format!("{other:?}"),
                what: "a type with no f32 conversion",
            });
        }
    };
    let shape = view.shape().to_vec();
    let (_, needed) = checked_sizes(&shape, element, limits)?;
    // the crate already checked this; a second look costs nothing
    if view.data().len() != needed {
        return Err(TensorError::PayloadSize {
            shape: fmt_shape(&shape),
            expected: needed,
            actual: view.data().len(),
        });
    }
    Ok(RawArray {
        shape,
        element,
        big_endian: false,
        bytes: view.data(),
    }
    .into_tensor())
}

/// Turns the crate's error into a message that names the tensor at fault.
fn explain(error: SafeTensorError, header: &[u8], data_len: usize) -> TensorError {
    let detail = match &error {
        SafeTensorError::InvalidHeader(_) => Some("the header is not UTF-8".to_owned()),
        SafeTensorError::InvalidHeaderDeserialization(e) | SafeTensorError::JsonError(e) => {
            Some(format!("the header is not valid safetensors JSON ({e})"))
        }
        SafeTensorError::MisalignedSlice => Some(
            "a tensor uses a sub-byte dtype: only whole-byte numeric dtypes are accepted"
                .to_owned(),
        ),
        _ => diagnose(header, data_len),
    };
    malformed(detail.unwrap_or_else(|| error.to_string()))
}

/// Re-reads the header to find the tensor whose offsets are wrong.
fn diagnose(header: &[u8], data_len: usize) -> Option<String> {
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut entries: Vec<(String, Vec<u64>, u64, u64, u64)> = Vec::new();
    for (name, info) in &map {
        if name == "__metadata__" {
            continue;
        }
        let shape: Vec<u64> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<_>>()?;
        let offsets = info.get("data_offsets")?.as_array()?;
        let (begin, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        let dtype: Dtype = serde_json::from_value(info.get("dtype")?.clone()).ok()?;
        entries.push((
            name.clone(),
            shape,
            begin,
            end,
            (dtype.bitsize() / 8) as u64,
        ));
    }
    entries.sort_by_key(|e| (e.2, e.3));
    let mut expected_begin = 0u64;
    for (name, shape, begin, end, itemsize) in &entries {
        let name = quote_name(name);
        let shape_str = {
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            fmt_shape(&dims)
        };
        if end < begin {
            return Some(format!(
                "tensor '{name}' has data_offsets [{begin}, {end}], which run backwards"
            ));
        }
        if *begin != expected_begin {
            return Some(format!(
                "tensor '{name}' starts at byte {begin} but the previous tensor ends at {expected_begin}: tensors must tile the data section in order, without gaps or overlaps"
            ));
        }
        let needed = shape
            .iter()
            .try_fold(*itemsize, |acc, &d| acc.checked_mul(d));
        match needed {
            None => {
                return Some(format!(
                    "tensor '{name}' has shape {shape_str}, whose size overflows"
                ));
            }
            Some(needed) if needed != end - begin => {
                return Some(format!(
                    "tensor '{name}' has shape {shape_str} and needs {needed} bytes but its data_offsets [{begin}, {end}] cover {}",
                    end - begin
                ));
            }
            Some(_) => {}
        }
        expected_begin = *end;
    }
    if expected_begin != data_len as u64 {
        return Some(format!(
            "the tensors cover {expected_begin} bytes but the data section has {data_len}: the last tensor must end at the end of the file"
        ));
    }
    None
}
