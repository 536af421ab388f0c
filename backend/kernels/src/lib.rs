//! Dense and direct-convolution kernels for the sandboxed model host.
//!
//! tract (0.23.9) runs the MNIST challenge models at a third of onnxruntime's
//! one-thread rate on this project's machines: it lowers every convolution to im2col
//! plus a matrix product (the first layer of a small CNN has k = 9, too short to pay
//! for the gather), and with a fixed batch it packs the activations instead of the
//! weights. The two kernels here cover the layers such models spend their time in:
//!
//! - [`Dense`]: `x · W (+ bias)` with `W` constant, packed once into 32-column panels;
//!   the activations are read in place, 12 rows at a time (6 with AVX2).
//! - [`Conv2d`]: a stride-1, undilated, ungrouped NCHW convolution computed directly
//!   on a zero-padded copy of each image, 16 (AVX2: 8) output pixels of a row per
//!   vector.
//!
//! Both give tract's values **bit for bit** (but for a NaN through a folded
//! `Relu`: see `relu`), so swapping them in changes no score:
//! tract sums every output in one accumulator, over `k` in order, with fused
//! multiply-adds from `0.0`, then adds the bias (skipped when it is all zeros); a
//! convolution's `k` runs over (input channel, kernel row, kernel column), padding
//! taps included as zeros. The kernels do exactly that, only with other loops around
//! it. `tests` check every value's bits against the plain-Rust `reference` functions,
//! and the model host's tests check them against tract itself.
//!
//! The kernels use AVX-512F or, without it, AVX2 and FMA, detected at run time
//! ([`Isa::detect`]); on a machine with neither the host keeps tract's own kernels (the plain-Rust references are
//! exact but slow: they exist to check the fast paths).

mod conv;
mod dense;
mod simd;

pub use conv::{Conv2d, ConvGeometry};
pub use dense::Dense;
pub use simd::Isa;

/// Whether this CPU runs the fast kernels (x86_64 with AVX-512F, or AVX2 and FMA).
pub fn available() -> bool {
    Isa::detect().is_some()
}

/// A shape or length that does not fit the kernel it was given to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

fn check_len(what: &str, len: usize, expected: Option<usize>) -> Result<(), ShapeError> {
    match expected {
        Some(e) if e == len => Ok(()),
        Some(e) => Err(ShapeError(format!("{what} has {len} values, expected {e}"))),
        None => Err(ShapeError(format!("{what}: the shape's size overflows"))),
    }
}

/// ONNX's `Relu` as the kernels fold it into their last step:
/// `if v > 0 { v } else { +0 }` (`_mm*_max_ps(v, 0)` lane by lane), which is
/// `f32::max(v, 0.0)`, tract's own `Max`, on every value a sum from +0 can take
/// (the two could differ only on -0, which such a sum never is). A NaN gives +0.
/// (tract itself is not consistent there: where it fuses a `Relu` into its
/// matrix-product kernel, `vmaxps acc, zero, acc` keeps the NaN.)
fn relu(v: f32) -> f32 {
    if v > 0.0 { v } else { 0.0 }
}

#[cfg(test)]
pub(crate) mod tests {
    /// `len` values in [-2, 2) from a fixed generator, with exact zeros of both signs
    /// mixed in (they decide the sign of a zero sum).
    pub(crate) fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                match i % 23 {
                    0 => 0.0,
                    11 => -0.0,
                    _ => (state >> 40) as f32 / (1u64 << 22) as f32 - 2.0,
                }
            })
            .collect()
    }

    pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }
}
