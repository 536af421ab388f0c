//! A direct 2-D convolution: NCHW, stride 1, no dilation, one group.

use crate::simd::Isa;
use crate::{ShapeError, check_len};

/// What a [`Conv2d`] convolves with: channels, kernel size and zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub c_in: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    /// Zero rows above and below, zero columns left and right, each below the
    /// kernel's size in that direction (wider padding only adds all-zero outputs).
    pub pad_top: usize,
    pub pad_bottom: usize,
    pub pad_left: usize,
    pub pad_right: usize,
}

/// A convolution whose weights were laid out once, at load.
#[derive(Debug, Clone, PartialEq)]
pub struct Conv2d {
    g: ConvGeometry,
    /// The instruction set `run` uses (none: the plain-Rust reference).
    isa: Option<Isa>,
    /// OIHW.
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Whether ONNX's `Relu` follows the bias ([`Conv2d::with_relu`]).
    relu: bool,
}

impl Conv2d {
    /// `weights` is OIHW (`[c_out, c_in, kh, kw]`); `bias` has `c_out` values and is
    /// added after the sum.
    pub fn new(g: ConvGeometry, weights: &[f32], bias: Option<&[f32]>) -> Result<Self, ShapeError> {
        Self::for_isa(Isa::detect(), g, weights, bias)
    }

    /// [`Conv2d::new`] for a given instruction set (`None`: the reference), which
    /// the CPU must have ([`Isa::supported`]).
    pub fn for_isa(
        isa: Option<Isa>,
        g: ConvGeometry,
        weights: &[f32],
        bias: Option<&[f32]>,
    ) -> Result<Self, ShapeError> {
        if let Some(isa) = isa.filter(|i| !i.supported()) {
            return Err(ShapeError(format!("this CPU cannot run {isa:?}")));
        }
        if g.c_in == 0 || g.c_out == 0 || g.kh == 0 || g.kw == 0 {
            return Err(ShapeError(format!("an empty convolution: {g:?}")));
        }
        if g.pad_top.max(g.pad_bottom) >= g.kh || g.pad_left.max(g.pad_right) >= g.kw {
            return Err(ShapeError(format!(
                "padding {g:?} is not below the kernel's {}x{}",
                g.kh, g.kw
            )));
        }
        let kvol = g.c_in.checked_mul(g.kh).and_then(|v| v.checked_mul(g.kw));
        check_len(
            "the weights",
            weights.len(),
            kvol.and_then(|v| v.checked_mul(g.c_out)),
        )?;
        if let Some(b) = bias {
            check_len("the bias", b.len(), Some(g.c_out))?;
        }
        Ok(Conv2d {
            g,
            isa,
            weights: weights.to_vec(),
            bias: bias.map(<[f32]>::to_vec),
            relu: false,
        })
    }

    /// The same convolution followed by ONNX's `Relu`, as [`crate::Dense::with_relu`].
    pub fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }

    /// Whether [`Conv2d::with_relu`] was applied.
    pub fn has_relu(&self) -> bool {
        self.relu
    }

    pub fn geometry(&self) -> ConvGeometry {
        self.g
    }

    /// The output's height and width for an `h x w` input (errors if the padded
    /// input is smaller than the kernel).
    pub fn output_hw(&self, h: usize, w: usize) -> Result<(usize, usize), ShapeError> {
        let g = &self.g;
        let oh = h
            .checked_add(g.pad_top + g.pad_bottom + 1)
            .and_then(|v| v.checked_sub(g.kh));
        let ow = w
            .checked_add(g.pad_left + g.pad_right + 1)
            .and_then(|v| v.checked_sub(g.kw));
        match (oh, ow) {
            (Some(oh), Some(ow)) if oh > 0 && ow > 0 => Ok((oh, ow)),
            _ => Err(ShapeError(format!(
                "a {h}x{w} input padded by {g:?} is smaller than the {}x{} kernel",
                g.kh, g.kw
            ))),
        }
    }

    fn check(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &[f32],
    ) -> Result<(), ShapeError> {
        let (oh, ow) = self.output_hw(h, w)?;
        let input = n
            .checked_mul(self.g.c_in)
            .and_then(|v| v.checked_mul(h))
            .and_then(|v| v.checked_mul(w));
        check_len("the input", x.len(), input)?;
        let output = n
            .checked_mul(self.g.c_out)
            .and_then(|v| v.checked_mul(oh))
            .and_then(|v| v.checked_mul(ow));
        check_len("the output", out.len(), output)
    }

    /// Convolves `n` images `[c_in, h, w]` of `x` into `out` (`[n, c_out, oh, ow]`),
    /// with the fast kernel when the CPU has it.
    pub fn run(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
    ) -> Result<(), ShapeError> {
        self.check(x, n, h, w, out)?;
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = self.isa {
            // SAFETY: `isa` was checked against the CPU at construction, and the
            // lengths above.
            #[allow(unsafe_code)]
            unsafe {
                fast::conv(isa, self, x, n, h, w, out)
            };
            return Ok(());
        }
        self.reference(x, n, h, w, out)
    }

    /// [`Conv2d::run`] in plain Rust, one fused multiply-add at a time in tract's
    /// order (input channel, kernel row, kernel column; padding as zeros): exact,
    /// and slow.
    pub fn reference(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
    ) -> Result<(), ShapeError> {
        self.check(x, n, h, w, out)?;
        let g = &self.g;
        let (oh, ow) = self.output_hw(h, w)?;
        let kvol = g.c_in * g.kh * g.kw;
        let mut i = 0;
        for img in 0..n {
            let image = &x[img * g.c_in * h * w..][..g.c_in * h * w];
            for oc in 0..g.c_out {
                let kernel = &self.weights[oc * kvol..][..kvol];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0f32;
                        let mut t = 0;
                        for ci in 0..g.c_in {
                            for ky in 0..g.kh {
                                for kx in 0..g.kw {
                                    let (y, xx) = (
                                        (oy + ky).checked_sub(g.pad_top),
                                        (ox + kx).checked_sub(g.pad_left),
                                    );
                                    let v = match (y, xx) {
                                        (Some(y), Some(xx)) if y < h && xx < w => {
                                            image[(ci * h + y) * w + xx]
                                        }
                                        _ => 0.0,
                                    };
                                    acc = v.mul_add(kernel[t], acc);
                                    t += 1;
                                }
                            }
                        }
                        if let Some(b) = &self.bias {
                            acc += b[oc];
                        }
                        out[i] = if self.relu { crate::relu(acc) } else { acc };
                        i += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod fast {
    use super::Conv2d;
    use crate::simd::{Isa, Simd, V8, V16};

    /// # Safety
    /// The CPU has `isa`; `x` and `out` have the lengths [`Conv2d::check`] wants.
    pub(super) unsafe fn conv(
        isa: Isa,
        c: &Conv2d,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
    ) {
        // SAFETY: passed on.
        unsafe {
            match isa {
                Isa::Avx512 => avx512(c, x, n, h, w, out),
                Isa::Avx2 => avx2(c, x, n, h, w, out),
            }
        }
    }

    /// Tiles of 16 channels x 1 vector, or 8 x 2 (16 accumulators of 32 registers).
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(c: &Conv2d, x: &[f32], n: usize, h: usize, w: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run::<V16, 16, 8>(c, x, n, h, w, out) }
    }

    /// Tiles of 12 channels x 1 vector, or 6 x 2 (12 accumulators of 16 registers).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(c: &Conv2d, x: &[f32], n: usize, h: usize, w: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run::<V8, 12, 6>(c, x, n, h, w, out) }
    }

    macro_rules! by_channels {
        ($tile:expr, $ocs:expr, $v:literal, $($arg:expr),*) => {
            match $ocs {
                1 => $tile.run::<S, 1, $v>($($arg),*),
                2 => $tile.run::<S, 2, $v>($($arg),*),
                3 => $tile.run::<S, 3, $v>($($arg),*),
                4 => $tile.run::<S, 4, $v>($($arg),*),
                5 => $tile.run::<S, 5, $v>($($arg),*),
                6 => $tile.run::<S, 6, $v>($($arg),*),
                7 => $tile.run::<S, 7, $v>($($arg),*),
                8 => $tile.run::<S, 8, $v>($($arg),*),
                9 => $tile.run::<S, 9, $v>($($arg),*),
                10 => $tile.run::<S, 10, $v>($($arg),*),
                11 => $tile.run::<S, 11, $v>($($arg),*),
                12 => $tile.run::<S, 12, $v>($($arg),*),
                13 => $tile.run::<S, 13, $v>($($arg),*),
                14 => $tile.run::<S, 14, $v>($($arg),*),
                15 => $tile.run::<S, 15, $v>($($arg),*),
                _ => $tile.run::<S, 16, $v>($($arg),*),
            }
        };
    }

    /// Image by image: the image goes into a zero-padded buffer, then each output
    /// row is computed in tiles of up to `OC1` channels x 1 vector of pixels (rows
    /// that fit one vector) or up to `OC2` channels x 2 vectors.
    #[inline(always)]
    unsafe fn run<S: Simd, const OC1: usize, const OC2: usize>(
        c: &Conv2d,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
    ) {
        let g = &c.g;
        let Ok((oh, ow)) = c.output_hw(h, w) else {
            return;
        };
        let chunk = if ow <= S::LANES {
            S::LANES
        } else {
            2 * S::LANES
        };
        // Wide enough that a chunk starting at any output column, shifted by any
        // kernel column, stays inside its row (the last chunk computes past `ow`
        // on zeros and stores only the `ow` values).
        let ws = ow.next_multiple_of(chunk) + g.kw - 1;
        let hp = h + g.pad_top + g.pad_bottom;
        let plane_in = hp * ws;
        let mut padded = vec![0f32; g.c_in * plane_in];
        let kvol = g.c_in * g.kh * g.kw;
        let plane_out = oh * ow;
        let oc_step = if chunk == S::LANES { OC1 } else { OC2 };
        for img in 0..n {
            let image = &x[img * g.c_in * h * w..][..g.c_in * h * w];
            // Only the interior changes from image to image: the padding stays zero.
            for (ci, channel) in image.chunks_exact(h * w).enumerate() {
                for (y, row) in channel.chunks_exact(w).enumerate() {
                    let at = ci * plane_in + (g.pad_top + y) * ws + g.pad_left;
                    padded[at..at + w].copy_from_slice(row);
                }
            }
            let out_img = &mut out[img * g.c_out * plane_out..][..g.c_out * plane_out];
            // Channels split evenly over the fewest tiles (32 channels in tiles of at
            // most 6: 6, 6, 5, 5, 5, 5), so no tile computes a padding channel.
            let blocks = g.c_out.div_ceil(oc_step);
            let (base, extra) = (g.c_out / blocks, g.c_out % blocks);
            for block in 0..blocks {
                let oc0 = block * base + block.min(extra);
                let ocs = base + usize::from(block < extra);
                let weights = c.weights[oc0 * kvol..][..ocs * kvol].as_ptr();
                let bias = c.bias.as_ref().map(|b| &b[oc0..oc0 + ocs]);
                for oy in 0..oh {
                    for ox0 in (0..ow).step_by(chunk) {
                        let tile = Tile {
                            padded: padded.as_ptr(),
                            ws,
                            plane_in,
                            c_in: g.c_in,
                            kh: g.kh,
                            kw: g.kw,
                            kvol,
                            oy,
                            ox0,
                            lanes: (ow - ox0).min(chunk),
                            plane_out,
                            relu: c.relu,
                        };
                        // SAFETY: see `Tile`; out rows oc0..oc0 + ocs, row oy, from ox0.
                        unsafe {
                            let o = out_img.as_mut_ptr().add(oc0 * plane_out + oy * ow + ox0);
                            if chunk == S::LANES {
                                by_channels!(tile, ocs.min(OC1), 1, weights, o, bias);
                            } else {
                                by_channels!(tile, ocs.min(OC2), 2, weights, o, bias);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Where one tile reads: `V` vectors of output pixels of row `oy` from `ox0`.
    struct Tile {
        padded: *const f32,
        ws: usize,
        plane_in: usize,
        c_in: usize,
        kh: usize,
        kw: usize,
        kvol: usize,
        oy: usize,
        ox0: usize,
        /// Output pixels to store (at most `V` vectors).
        lanes: usize,
        plane_out: usize,
        relu: bool,
    }

    impl Tile {
        /// `OC` output channels by `V` vectors of pixels: one accumulator per output
        /// value, summed over (input channel, kernel row, kernel column) in order
        /// from zero, then the bias, then the ReLU if `relu`, then a store of `lanes`
        /// pixels per channel.
        ///
        /// # Safety
        /// The CPU has `S`'s set; `weights` has `OC` rows of `kvol`; `padded` is laid
        /// out as `run` built it; `out` has `OC` rows of stride `plane_out` with
        /// `lanes` values; `bias` (if any) has `OC` values.
        #[inline(always)]
        #[allow(clippy::needless_range_loop)]
        unsafe fn run<S: Simd, const OC: usize, const V: usize>(
            &self,
            weights: *const f32,
            out: *mut f32,
            bias: Option<&[f32]>,
        ) {
            // SAFETY (the whole body): the row and every column up to
            // ox0 + kx + V lanes - 1 < ws lie inside `padded`; o < OC rows of `kvol`
            // weights, t < kvol; partial stores touch only `lanes` values.
            unsafe {
                let mut acc = [[S::zero(); V]; OC];
                let mut t = 0;
                for ci in 0..self.c_in {
                    for ky in 0..self.kh {
                        let row = self
                            .padded
                            .add(ci * self.plane_in + (self.oy + ky) * self.ws + self.ox0);
                        for kx in 0..self.kw {
                            let mut xv = [S::zero(); V];
                            for v in 0..V {
                                xv[v] = S::load(row.add(kx + S::LANES * v));
                            }
                            for o in 0..OC {
                                let wv = S::splat(*weights.add(o * self.kvol + t));
                                for v in 0..V {
                                    acc[o][v] = S::fma(wv, xv[v], acc[o][v]);
                                }
                            }
                            t += 1;
                        }
                    }
                }
                for v in 0..V {
                    let lanes = self.lanes.saturating_sub(S::LANES * v).min(S::LANES);
                    if lanes == 0 {
                        continue;
                    }
                    for o in 0..OC {
                        let value = match bias {
                            Some(b) => S::add(acc[o][v], S::splat(b[o])),
                            None => acc[o][v],
                        }
                        .relu(self.relu);
                        value.store_first(out.add(o * self.plane_out + S::LANES * v), lanes);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tests::{bits, values};

    fn geometry(c_in: usize, c_out: usize, k: (usize, usize), pads: [usize; 4]) -> ConvGeometry {
        ConvGeometry {
            c_in,
            c_out,
            kh: k.0,
            kw: k.1,
            pad_top: pads[0],
            pad_bottom: pads[1],
            pad_left: pads[2],
            pad_right: pads[3],
        }
    }

    fn check(g: ConvGeometry, n: usize, h: usize, w: usize, with_bias: bool) {
        let weights = values(g.c_out * g.c_in * g.kh * g.kw, 3);
        let bias = values(g.c_out, 5);
        let x = values(n * g.c_in * h * w, 7);
        for isa in Isa::all_supported() {
            for relu in [false, true] {
                let mut c = Conv2d::for_isa(Some(isa), g, &weights, with_bias.then_some(&bias[..]))
                    .unwrap();
                if relu {
                    c = c.with_relu();
                }
                let (oh, ow) = c.output_hw(h, w).unwrap();
                let mut fast = vec![f32::NAN; n * g.c_out * oh * ow];
                let mut slow = vec![f32::NAN; n * g.c_out * oh * ow];
                c.run(&x, n, h, w, &mut fast).unwrap();
                c.reference(&x, n, h, w, &mut slow).unwrap();
                let what = format!("{isa:?} {g:?} n={n} {h}x{w} relu={relu}");
                assert_eq!(bits(&fast), bits(&slow), "{what}");
                assert!(
                    !relu || slow.iter().all(|v| v.to_bits() >> 31 == 0),
                    "{what}"
                );
            }
        }
    }

    #[test]
    fn the_kernel_gives_the_reference_bits_on_every_shape() {
        // Rows of one vector, two vectors and more; channel counts off the blocks;
        // asymmetric padding and kernels.
        check(geometry(1, 16, (3, 3), [1, 1, 1, 1]), 2, 28, 28, true);
        check(geometry(16, 32, (3, 3), [1, 1, 1, 1]), 2, 14, 14, true);
        check(geometry(3, 5, (3, 3), [0, 0, 0, 0]), 1, 9, 40, false);
        check(geometry(2, 19, (2, 4), [1, 0, 3, 2]), 3, 7, 5, true);
        check(geometry(4, 9, (5, 5), [2, 2, 2, 2]), 1, 33, 70, true);
        check(geometry(1, 1, (1, 1), [0, 0, 0, 0]), 1, 1, 1, false);
    }

    #[test]
    fn a_hand_computed_convolution() {
        // One 3x3 input, a 2x2 kernel [[1, 2], [3, 4]], bias 1, padding 1 on the left only.
        let g = geometry(1, 1, (2, 2), [0, 0, 1, 0]);
        let c = Conv2d::new(g, &[1., 2., 3., 4.], Some(&[1.])).unwrap();
        assert_eq!(c.output_hw(3, 3).unwrap(), (2, 3));
        let x = [1., 2., 3., 4., 5., 6., 7., 8., 9.];
        let mut out = [0f32; 6];
        c.run(&x, 1, 3, 3, &mut out).unwrap();
        // Row 0: [0 1; 0 4]=2*1+4*4=18, [1 2; 4 5]=1+4+12+20=37, [2 3; 5 6]=2+6+15+24=47.
        // Row 1: [0 4; 0 7]=8+28=36, [4 5; 7 8]=4+10+21+32=67, [5 6; 8 9]=5+12+24+36=77.
        assert_eq!(out, [19., 38., 48., 37., 68., 78.]);
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let g = geometry(1, 1, (3, 3), [1, 1, 1, 1]);
        assert!(Conv2d::new(g, &[0.; 8], None).is_err());
        assert!(Conv2d::new(geometry(1, 1, (3, 3), [3, 0, 0, 0]), &[0.; 9], None).is_err());
        assert!(Conv2d::new(geometry(0, 1, (3, 3), [0; 4]), &[], None).is_err());
        let c = Conv2d::new(geometry(1, 1, (3, 3), [0; 4]), &[0.; 9], None).unwrap();
        assert!(c.output_hw(2, 5).is_err());
        let mut out = [0f32; 1];
        assert!(c.run(&[0.; 9], 1, 3, 3, &mut out).is_ok());
        assert!(c.run(&[0.; 8], 1, 3, 3, &mut out).is_err());
        assert!(c.run(&[0.; 9], usize::MAX, 3, 3, &mut out).is_err());
    }
}
