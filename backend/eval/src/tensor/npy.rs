//! The `.npy` format (versions 1.0, 2.0 and 3.0), read by hand.
//!
//! Hand-written rather than through a crate because the header is a Python
//! dict literal that must be capped in length before it is read and refused
//! field by field with a precise reason (object dtypes, Fortran order,
//! structured dtypes); the payload is then a plain byte slice whose length must
//! match the shape exactly.
//!
//! Layout: `\x93NUMPY`, major, minor, header length (u16 LE for 1.0, u32 LE
//! for 2.0 and 3.0), the header (latin-1, or UTF-8 for 3.0), then the data.

use super::{
    ElementType, Format, Limits, RawArray, Tensor, TensorError, check_file_size, checked_sizes,
    fmt_shape,
};

pub(super) const MAGIC: &[u8] = b"\x93NUMPY";

/// Longest npy header accepted, in bytes. NumPy's own `np.load` refuses
/// headers above the same 10,000 bytes by default (`max_header_size`); real
/// headers are 118 bytes or so.
pub const NPY_HEADER_LIMIT: usize = 10_000;

/// Deepest nesting of brackets accepted in a header (real ones nest 1 deep;
/// structured dtypes, refused anyway, a few more).
const MAX_LITERAL_DEPTH: usize = 8;

fn malformed(reason: impl Into<String>) -> TensorError {
    TensorError::Malformed {
        format: "npy",
        reason: reason.into(),
    }
}

/// Reads a `.npy` file into `f32` values.
pub fn read_npy(bytes: &[u8], limits: &Limits) -> Result<Tensor, TensorError> {
    let (array, _) = parse(bytes, limits)?;
    Ok(array.into_tensor())
}

/// Reads a `.npy` file of integer labels: a 1-D array of any integer dtype.
pub fn read_npy_labels(bytes: &[u8], limits: &Limits) -> Result<Vec<i64>, TensorError> {
    let (array, descr) = parse(bytes, limits)?;
    if !array.element.is_integer() {
        return Err(TensorError::BadLabels {
            problem: format!("have dtype '{}'", super::quote_name(&descr)),
        });
    }
    if array.shape.len() != 1 {
        return Err(TensorError::BadLabels {
            problem: format!("have shape {}", fmt_shape(&array.shape)),
        });
    }
    array.to_i64(&descr)
}

/// Parses and checks a whole `.npy` file; returns the array and its dtype string.
pub(super) fn parse<'a>(
    bytes: &'a [u8],
    limits: &Limits,
) -> Result<(RawArray<'a>, String), TensorError> {
    check_file_size(bytes, limits)?;
    if !bytes.starts_with(MAGIC) {
        return Err(malformed(
            "it does not start with the npy magic '\\x93NUMPY'",
        ));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err(malformed("it ends inside the version field")),
    };
    let (len_size, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => {
            return Err(malformed(format!(
                "format version {major}.{minor} is unknown: expected 1.0, 2.0 or 3.0"
            )));
        }
    };
    let len_field = bytes
        .get(8..8 + len_size)
        .ok_or_else(|| malformed("it ends inside the header length field"))?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if header_len > NPY_HEADER_LIMIT as u64 {
        return Err(TensorError::HeaderTooLarge {
            format: Format::Npy,
            len: header_len,
            limit: NPY_HEADER_LIMIT as u64,
        });
    }
    // header_len <= 10_000, so these additions cannot overflow
    let header_start = 8 + len_size;
    let data_start = header_start + header_len as usize;
    let header_bytes = bytes.get(header_start..data_start).ok_or_else(|| {
        malformed(format!(
            "the header declares {header_len} bytes but the file ends after {}",
            bytes.len().saturating_sub(header_start)
        ))
    })?;
    let header: String = if utf8 {
        std::str::from_utf8(header_bytes)
            .map_err(|_| malformed("the version 3.0 header is not valid UTF-8"))?
            .to_owned()
    } else {
        // latin-1: every byte is the code point of the same value
        header_bytes.iter().map(|&b| char::from(b)).collect()
    };
    let header = parse_header(&header)?;
    if header.fortran_order {
        return Err(TensorError::FortranOrder);
    }
    let (element, big_endian) = parse_descr(&header.descr)?;
    let (_, needed) = checked_sizes(&header.shape, element, limits)?;
    let payload = &bytes[data_start..];
    if payload.len() != needed {
        return Err(TensorError::PayloadSize {
            shape: fmt_shape(&header.shape),
            expected: needed,
            actual: payload.len(),
        });
    }
    Ok((
        RawArray {
            shape: header.shape,
            element,
            big_endian,
            bytes: payload,
        },
        header.descr,
    ))
}

struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Maps a simple dtype string (`'<f4'`, `'|u1'`, `'>i8'`, ...) to an element
/// type and byte order, refusing everything that is not plain numbers.
fn parse_descr(descr: &str) -> Result<(ElementType, bool), TensorError> {
    let unsupported = |what: &'static str| TensorError::UnsupportedDtype {
        format: Format::Npy,
        dtype: super::quote_name(descr),
        what,
    };
    let (order, code) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let element = match code {
        "b1" | "?" => ElementType::Bool,
        "u1" | "B" => ElementType::U8,
        "i1" | "b" => ElementType::I8,
        "u2" => ElementType::U16,
        "i2" => ElementType::I16,
        "u4" => ElementType::U32,
        "i4" => ElementType::I32,
        "u8" => ElementType::U64,
        "i8" => ElementType::I64,
        "f2" | "e" => ElementType::F16,
        "f4" => ElementType::F32,
        "f8" => ElementType::F64,
        _ => {
            let what = match code.chars().next() {
                Some('O') => "Python objects",
                Some('U') => "Unicode strings",
                Some('S' | 'a') => "byte strings",
                Some('V') => "raw void records",
                Some('M') => "datetimes",
                Some('m') => "timedeltas",
                Some('c') => "complex numbers",
                Some('f') => "floats of an unsupported width",
                Some('i' | 'u') => "integers of an unsupported width",
                _ => "an unknown type",
            };
            return Err(unsupported(what));
        }
    };
    let big_endian = match order {
        '>' => true,
        // '=' (native) and a missing order never occur in files NumPy writes;
        // every machine that produces them in practice is little-endian.
        '<' | '=' => false,
        _ if element.size() == 1 => false,
        _ => {
            return Err(malformed(format!(
                "dtype '{}' has byte order '|' on a multi-byte type: expected '<' or '>'",
                super::quote_name(descr)
            )));
        }
    };
    Ok((element, big_endian))
}

/// A value of the tiny Python-literal subset npy headers use.
#[derive(Debug)]
enum Literal {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

fn parse_header(text: &str) -> Result<Header, TensorError> {
    let mut parser = LiteralParser {
        chars: text.char_indices().peekable(),
        text,
    };
    let value = parser.value(0)?;
    parser.skip_space();
    if let Some((at, c)) = parser.chars.next() {
        return Err(malformed(format!(
            "unexpected {c:?} at byte {at} of the header after the dict"
        )));
    }
    let Literal::Dict(entries) = value else {
        return Err(malformed("the header is not a Python dict"));
    };
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    for (key, value) in entries {
        let Literal::Str(key) = key else {
            return Err(malformed("a header key is not a string"));
        };
        match key.as_str() {
            "descr" => descr = Some(value),
            "fortran_order" => fortran_order = Some(value),
            "shape" => shape = Some(value),
            other => {
                return Err(malformed(format!(
                    "the header has an unknown key '{}': expected only 'descr', 'fortran_order' and 'shape'",
                    super::quote_name(other)
                )));
            }
        }
    }
    let descr = match descr {
        Some(Literal::Str(s)) => s,
        Some(Literal::List(fields)) => {
            return Err(TensorError::UnsupportedDtype {
                format: Format::Npy,
                dtype: format!("[{} fields]", fields.len()),
                what: "a structured record type",
            });
        }
        Some(_) => return Err(malformed("the header's 'descr' is not a string")),
        None => return Err(malformed("the header has no 'descr'")),
    };
    let fortran_order = match fortran_order {
        Some(Literal::Bool(b)) => b,
        Some(_) => {
            return Err(malformed(
                "the header's 'fortran_order' is not True or False",
            ));
        }
        None => return Err(malformed("the header has no 'fortran_order'")),
    };
    let shape = match shape {
        Some(Literal::Tuple(dims)) => dims
            .into_iter()
            .map(|d| match d {
                Literal::Int(n) => usize::try_from(n).map_err(|_| {
                    malformed(format!(
                        "the header's shape has dimension {n}: expected non-negative sizes"
                    ))
                }),
                _ => Err(malformed("the header's shape holds a non-integer")),
            })
            .collect::<Result<Vec<usize>, _>>()?,
        Some(_) => return Err(malformed("the header's 'shape' is not a tuple")),
        None => return Err(malformed("the header has no 'shape'")),
    };
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

struct LiteralParser<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
}

impl LiteralParser<'_> {
    fn skip_space(&mut self) {
        while self.chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    }

    fn unexpected(&mut self, wanted: &str) -> TensorError {
        match self.chars.peek() {
            Some(&(at, c)) => malformed(format!(
                "unexpected {c:?} at byte {at} of the header: expected {wanted}"
            )),
            None => malformed(format!("the header ends early: expected {wanted}")),
        }
    }

    // Long on purpose: one arm per token of the header's literal grammar.
    fn value(&mut self, depth: usize) -> Result<Literal, TensorError> {
        if depth > MAX_LITERAL_DEPTH {
            return Err(malformed("the header nests brackets too deeply"));
        }
        self.skip_space();
        let Some(&(start, c)) = self.chars.peek() else {
            return Err(self.unexpected("a value"));
        };
        match c {
            '{' => {
                self.chars.next();
                let mut entries = Vec::new();
                loop {
                    self.skip_space();
                    if self.chars.next_if(|(_, c)| *c == '}').is_some() {
                        return Ok(Literal::Dict(entries));
                    }
                    let key = self.value(depth + 1)?;
                    self.skip_space();
                    if self.chars.next_if(|(_, c)| *c == ':').is_none() {
                        return Err(self.unexpected("':'"));
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                    self.skip_space();
                    if self.chars.next_if(|(_, c)| *c == ',').is_none() {
                        self.skip_space();
                        if self.chars.next_if(|(_, c)| *c == '}').is_some() {
                            return Ok(Literal::Dict(entries));
                        }
                        return Err(self.unexpected("',' or '}'"));
                    }
                }
            }
            '(' | '[' => {
                self.chars.next();
                let close = if c == '(' { ')' } else { ']' };
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    if self.chars.next_if(|(_, c)| *c == close).is_some() {
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    self.skip_space();
                    if self.chars.next_if(|(_, c)| *c == ',').is_none() {
                        self.skip_space();
                        if self.chars.next_if(|(_, c)| *c == close).is_some() {
                            break;
                        }
                        return Err(self.unexpected("',' or a closing bracket"));
                    }
                }
                Ok(if c == '(' {
                    Literal::Tuple(items)
                } else {
                    Literal::List(items)
                })
            }
            '\'' | '"' => {
                self.chars.next();
                let mut s = String::new();
                loop {
                    match self.chars.next() {
                        Some((_, q)) if q == c => return Ok(Literal::Str(s)),
                        Some((_, '\\')) => match self.chars.next() {
                            Some((_, e)) => s.push(e),
                            None => break,
                        },
                        Some((_, ch)) => s.push(ch),
                        None => break,
                    }
                }
                Err(malformed("the header has an unterminated string"))
            }
            '-' | '0'..='9' => {
                self.chars.next();
                let mut end = start + c.len_utf8();
                while let Some((at, d)) = self.chars.next_if(|(_, d)| d.is_ascii_digit()) {
                    end = at + d.len_utf8();
                }
                // Python 2 wrote longs as `3L`
                let _ = self.chars.next_if(|(_, c)| *c == 'L');
                let digits = &self.text[start..end];
                digits.parse::<i128>().map(Literal::Int).map_err(|_| {
                    malformed(format!(
                        "the header holds '{}', which is not an integer that fits",
                        super::quote_name(digits)
                    ))
                })
            }
            c if c.is_ascii_alphabetic() => {
                let mut end = start;
                while let Some((at, w)) = self.chars.next_if(|(_, w)| w.is_ascii_alphanumeric()) {
                    end = at + w.len_utf8();
                }
                match &self.text[start..end] {
                    "True" => Ok(Literal::Bool(true)),
                    "False" => Ok(Literal::Bool(false)),
                    "None" => Ok(Literal::None),
                    word => Err(malformed(format!(
                        "the header holds the name '{}': expected a literal",
                        super::quote_name(word)
                    ))),
                }
            }
            _ => Err(self.unexpected("a value")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_numpy_headers() {
        let h = parse_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1, 28, 28), }          \n",
        )
        .unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![1000, 1, 28, 28]);
        let h = parse_header("{\"descr\": \"|u1\", \"fortran_order\": True, \"shape\": (3L,)}")
            .unwrap();
        assert_eq!(h.shape, vec![3]);
        assert!(h.fortran_order);
        let h = parse_header("{'descr': '<f8', 'fortran_order': False, 'shape': ()}").unwrap();
        assert!(h.shape.is_empty());
    }

    #[test]
    fn refuses_odd_headers() {
        for bad in [
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} trailing",
            "{'descr': '<f4', 'fortran_order': __import__, 'shape': (1,)}",
            "{'descr': '<f4",
            "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999999999999999999999,)}",
        ] {
            assert!(parse_header(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn descr_codes() {
        assert_eq!(parse_descr("<f4").unwrap(), (ElementType::F32, false));
        assert_eq!(parse_descr(">i8").unwrap(), (ElementType::I64, true));
        assert_eq!(parse_descr("|u1").unwrap(), (ElementType::U8, false));
        assert_eq!(parse_descr("|b1").unwrap(), (ElementType::Bool, false));
        assert_eq!(parse_descr("<f2").unwrap(), (ElementType::F16, false));
        assert_eq!(
            parse_descr("|O").unwrap_err().to_string(),
            "npy header declares dtype '|O' (Python objects): only numeric dtypes are accepted"
        );
        assert!(parse_descr("<U10").is_err());
        assert!(parse_descr("<c8").is_err());
        assert!(parse_descr("<M8[ns]").is_err());
        assert!(parse_descr("|f4").is_err());
        assert!(parse_descr("<f16").is_err());
    }
}
