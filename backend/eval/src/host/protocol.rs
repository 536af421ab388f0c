//! The byte protocol between the server and a model host, over the child's stdin/stdout.
//!
//! Every message is a frame: a little-endian `u32` length, then that many bytes. The
//! first byte of a frame's body says what it is.
//!
//! ```text
//! parent -> child   frame 1: JSON InitConfig           frame 2: the ONNX model bytes
//! child  -> parent  READY + JSON ReadyInfo | ERROR + kind + UTF-8 message
//! parent -> child   PREDICT + n: u32 + n*example_len f32 (LE)
//! child  -> parent  OK + n: u32 + classes: u32 + n*classes f32 (LE) | ERROR + kind + message
//! parent -> child   PREDICT_SHARED + n: u32   (n*example_len f32 in the shared buffer)
//! child  -> parent  OK_SHARED + n: u32 + classes: u32   (n*classes f32 in the shared buffer)
//!                   | OK ... | ERROR ...   (as for PREDICT)
//! ```
//!
//! The shared buffer (see `host/shared.rs`) is a memfd the parent creates and the child
//! inherits, announced by [`InitConfig::shared_buffer`]; without it, or for a request
//! that does not fit, the tensors travel in the frames.
//!
//! Both sides check every length against a limit before allocating for it.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::sandbox::LockdownReport;

/// Largest config frame either side accepts.
pub const MAX_CONFIG_FRAME: u32 = 64 * 1024;
/// Largest error or ready frame the parent accepts.
pub const MAX_CONTROL_FRAME: u32 = 1024 * 1024;
/// Hard ceiling on any frame (the model frame is further capped by the config).
pub const MAX_FRAME: u32 = 1 << 30;

pub const TAG_READY: u8 = b'R';
pub const TAG_OK: u8 = b'O';
pub const TAG_ERROR: u8 = b'E';
pub const TAG_PREDICT: u8 = b'P';
pub const TAG_PREDICT_SHARED: u8 = b'S';
pub const TAG_OK_SHARED: u8 = b'o';
/// Test-only probes: honoured only by a host started with test probes enabled.
pub const TAG_PROBE: u8 = b'X';
pub const PROBE_OPEN_FILE: u8 = 1;
pub const PROBE_SOCKET: u8 = 2;
pub const PROBE_SPIN: u8 = 3;

/// Why the child answered with an error frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorKind {
    Load = 1,
    BadRequest = 2,
    Inference = 3,
    OutOfMemory = 4,
    Lockdown = 5,
}

impl ErrorKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Load,
            2 => Self::BadRequest,
            3 => Self::Inference,
            4 => Self::OutOfMemory,
            5 => Self::Lockdown,
            _ => return None,
        })
    }
}

/// What the parent tells a fresh host before sending the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitConfig {
    pub version: u32,
    /// One example's shape (no batch dimension); empty: take it from the model.
    pub input_shape: Vec<usize>,
    /// Expected number of classes, checked against the model's output.
    pub classes: Option<usize>,
    /// Name of the output to run; `None`: the first.
    #[serde(default)]
    pub output: Option<String>,
    /// Batch sizes to build fixed-shape plans for; empty: one symbolic-batch plan.
    pub batch_sizes: Vec<usize>,
    pub max_batch: usize,
    pub max_model_bytes: u64,
    pub memory_bytes: u64,
    pub cpu_load_secs: u64,
    pub cpu_per_request_secs: u64,
    pub cpu_lifetime_secs: u64,
    /// The memfd the child inherited for requests and answers; `None`: frames only.
    #[serde(default)]
    pub shared_buffer: Option<SharedBufferSpec>,
}

/// Where the child finds the shared buffer: an inherited descriptor and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedBufferSpec {
    pub fd: i32,
    pub bytes: u64,
}

pub const PROTOCOL_VERSION: u32 = 1;

/// What a host reports once it has loaded its model and locked itself down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub input_shape: Vec<usize>,
    pub classes: usize,
    /// Fixed batch sizes it built plans for (empty: one symbolic-batch plan).
    pub batch_sizes: Vec<usize>,
    pub lockdown: LockdownReport,
}

/// Reads one frame body of at most `max` bytes. `Ok(None)` on a clean EOF before the
/// length; an error for a truncated frame or one over the limit.
pub fn read_frame(r: &mut impl Read, max: u32) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let k = r.read(&mut len[got..])?;
        if k == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated frame length",
            ));
        }
        got += k;
    }
    let len = u32::from_le_bytes(len);
    if len > max.min(MAX_FRAME) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is over the limit of {max}"),
        ));
    }
    // The length is within the limit checked above, so allocating it at once is safe
    // and saves growing the buffer while a large batch streams in.
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated frame of {len} bytes"),
        ),
        _ => e,
    })?;
    Ok(Some(body))
}

/// Writes one frame made of the concatenation of `parts`.
pub fn write_frame(w: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&len.to_le_bytes())?;
    for p in parts {
        w.write_all(p)?;
    }
    w.flush()
}

/// Encodes f32 values as little-endian bytes.
pub fn f32s_to_le(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes little-endian f32 values; `None` if the length is not a multiple of 4.
pub fn le_to_f32s(bytes: &[u8]) -> Option<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// Reads a little-endian u32 at `at`, if the slice is long enough.
pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_reject_truncation() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &[b"ab", b"cd"]).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r, 16).unwrap().unwrap(), b"abcd");
        assert!(read_frame(&mut r, 16).unwrap().is_none());
        let mut short = &buf[..5];
        assert!(read_frame(&mut short, 16).is_err());
        let mut over = &buf[..];
        assert!(read_frame(&mut over, 3).is_err());
        let mut half_len = &buf[..2];
        assert!(read_frame(&mut half_len, 16).is_err());
    }

    #[test]
    fn f32_codec_round_trips() {
        let v = [1.5f32, -0.0, f32::MAX];
        assert_eq!(le_to_f32s(&f32s_to_le(&v)).unwrap(), v);
        assert!(le_to_f32s(&[0, 1, 2]).is_none());
    }
}
