//! `x · W (+ bias)` with a constant `W`: the fully connected layer.

use crate::simd::Isa;
use crate::{ShapeError, check_len};

/// A fully connected layer whose weights were packed once, at load.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    k: usize,
    n: usize,
    /// The instruction set `run` uses (none: the plain-Rust reference).
    isa: Option<Isa>,
    /// Columns per panel: two vectors.
    panel: usize,
    /// `W` as `ceil(n / panel)` panels of `[k][panel]`, zero past column `n`.
    panels: Vec<f32>,
    bias: Option<Vec<f32>>,
    /// Whether ONNX's `Relu` follows the bias ([`Dense::with_relu`]).
    relu: bool,
}

impl Dense {
    /// `weights` holds `W` as `[k, n]`, row-major, or as `[n, k]` when `transposed`
    /// (ONNX `Gemm` with `transB = 1`, as PyTorch exports `Linear`); `bias` has `n`
    /// values and is added after the sum.
    pub fn new(
        weights: &[f32],
        k: usize,
        n: usize,
        transposed: bool,
        bias: Option<&[f32]>,
    ) -> Result<Self, ShapeError> {
        Self::for_isa(Isa::detect(), weights, k, n, transposed, bias)
    }

    /// [`Dense::new`] for a given instruction set (`None`: the reference), which
    /// the CPU must have ([`Isa::supported`]).
    pub fn for_isa(
        isa: Option<Isa>,
        weights: &[f32],
        k: usize,
        n: usize,
        transposed: bool,
        bias: Option<&[f32]>,
    ) -> Result<Self, ShapeError> {
        if let Some(isa) = isa.filter(|i| !i.supported()) {
            return Err(ShapeError(format!("this CPU cannot run {isa:?}")));
        }
        let panel = 2 * isa.map_or(16, Isa::lanes);
        if k == 0 || n == 0 {
            return Err(ShapeError(format!(
                "a dense layer needs k, n >= 1, got {k}x{n}"
            )));
        }
        check_len("the weights", weights.len(), k.checked_mul(n))?;
        if let Some(b) = bias {
            check_len("the bias", b.len(), Some(n))?;
        }
        // At most `panel - 1` padding columns per row beyond the weights in memory.
        let mut panels = vec![0f32; n.div_ceil(panel) * k * panel];
        for kk in 0..k {
            for j in 0..n {
                let w = if transposed {
                    weights[j * k + kk]
                } else {
                    weights[kk * n + j]
                };
                panels[(j / panel) * k * panel + kk * panel + j % panel] = w;
            }
        }
        Ok(Dense {
            k,
            n,
            isa,
            panel,
            panels,
            bias: bias.map(<[f32]>::to_vec),
            relu: false,
        })
    }

    /// The same layer followed by ONNX's `Relu` (after the bias): every output
    /// `v` becomes `if v > 0 { v } else { +0 }`, as `f32::max(v, 0.0)`.
    pub fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }

    /// Whether [`Dense::with_relu`] was applied.
    pub fn has_relu(&self) -> bool {
        self.relu
    }

    /// The length of one input row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The length of one output row.
    pub fn n(&self) -> usize {
        self.n
    }

    fn weight(&self, kk: usize, j: usize) -> f32 {
        let p = self.panel;
        self.panels[(j / p) * self.k * p + kk * p + j % p]
    }

    /// `out[i][j] = Σ_k x[i][k] · W[k][j] (+ bias[j])` for the `m` rows of `x`
    /// (`[m, k]`) into `out` (`[m, n]`), with the fast kernel when the CPU has it.
    pub fn run(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_len("the input", x.len(), m.checked_mul(self.k))?;
        check_len("the output", out.len(), m.checked_mul(self.n))?;
        #[cfg(target_arch = "x86_64")]
        if let Some(isa) = self.isa {
            // SAFETY: `isa` was checked against the CPU at construction, and `x`
            // and `out` hold `m` rows each (checked above), all the kernel touches.
            #[allow(unsafe_code)]
            unsafe {
                fast::dense(isa, self, x, m, out)
            };
            return Ok(());
        }
        self.reference(x, m, out)
    }

    /// [`Dense::run`] in plain Rust, one fused multiply-add at a time in tract's
    /// order: exact, and slow.
    pub fn reference(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<(), ShapeError> {
        check_len("the input", x.len(), m.checked_mul(self.k))?;
        check_len("the output", out.len(), m.checked_mul(self.n))?;
        for (row, out_row) in x.chunks_exact(self.k).zip(out.chunks_exact_mut(self.n)) {
            for (j, o) in out_row.iter_mut().enumerate() {
                let mut acc = 0f32;
                for (kk, xv) in row.iter().enumerate() {
                    acc = xv.mul_add(self.weight(kk, j), acc);
                }
                if let Some(b) = &self.bias {
                    acc += b[j];
                }
                *o = if self.relu { crate::relu(acc) } else { acc };
            }
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod fast {
    use super::Dense;
    use crate::simd::{Isa, Simd, V8, V16};

    /// # Safety
    /// The CPU has `isa`, `d` was packed for it; `x` is `[m, d.k]`, `out` `[m, d.n]`.
    pub(super) unsafe fn dense(isa: Isa, d: &Dense, x: &[f32], m: usize, out: &mut [f32]) {
        // SAFETY: passed on.
        unsafe {
            match isa {
                Isa::Avx512 => avx512(d, x, m, out),
                Isa::Avx2 => avx2(d, x, m, out),
            }
        }
    }

    /// 12 rows x 2 vectors = 24 accumulators of the 32 registers.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(d: &Dense, x: &[f32], m: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run::<V16, 12>(d, x, m, out) }
    }

    /// 6 rows x 2 vectors = 12 accumulators of the 16 registers.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(d: &Dense, x: &[f32], m: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run::<V8, 6>(d, x, m, out) }
    }

    macro_rules! by_rows {
        ($rows:expr, $max:expr, $v:literal, $($arg:expr),*) => {
            match $rows.min($max) {
                1 => tile::<S, 1, $v>($($arg),*),
                2 => tile::<S, 2, $v>($($arg),*),
                3 => tile::<S, 3, $v>($($arg),*),
                4 => tile::<S, 4, $v>($($arg),*),
                5 => tile::<S, 5, $v>($($arg),*),
                6 => tile::<S, 6, $v>($($arg),*),
                7 => tile::<S, 7, $v>($($arg),*),
                8 => tile::<S, 8, $v>($($arg),*),
                9 => tile::<S, 9, $v>($($arg),*),
                10 => tile::<S, 10, $v>($($arg),*),
                11 => tile::<S, 11, $v>($($arg),*),
                _ => tile::<S, 12, $v>($($arg),*),
            }
        };
    }

    /// Panel by panel of `W` (which stays in cache), `ROWS` rows of `x` at a time.
    #[inline(always)]
    unsafe fn run<S: Simd, const ROWS: usize>(d: &Dense, x: &[f32], m: usize, out: &mut [f32]) {
        let (k, n, panel) = (d.k, d.n, d.panel);
        for p in 0..n.div_ceil(panel) {
            let panel_ptr = d.panels[p * k * panel..][..k * panel].as_ptr();
            let col0 = p * panel;
            let cols = (n - col0).min(panel);
            let bias = d.bias.as_ref().map(|b| &b[col0..col0 + cols]);
            let relu = d.relu;
            let mut i = 0;
            while i < m {
                let rows = (m - i).min(ROWS);
                // SAFETY: rows i..i + rows exist in both; the tile reads k values of
                // each x row and writes `cols` values of each out row from col0.
                unsafe {
                    let xr = x.as_ptr().add(i * k);
                    let o = out.as_mut_ptr().add(i * n + col0);
                    if cols > S::LANES {
                        by_rows!(
                            rows, ROWS, 2, xr, k, k, panel_ptr, panel, o, n, cols, bias, relu
                        );
                    } else {
                        by_rows!(
                            rows, ROWS, 1, xr, k, k, panel_ptr, panel, o, n, cols, bias, relu
                        );
                    }
                }
                i += rows;
            }
        }
    }

    /// `R` rows by `V` vectors of columns: one accumulator per output value, summed
    /// over `k` in order from zero, then the bias, then the ReLU if `relu`, then a
    /// store of `cols` values.
    ///
    /// # Safety
    /// The CPU has `S`'s set; `x` has `R` rows of stride `ldx` with `k` values,
    /// `panel` has `k` rows of `width` values (`V` vectors fit in one), `out` has
    /// `R` rows of stride `ldo` with `cols` values (`cols <= V` vectors), `bias`
    /// (if any) has `cols` values.
    #[inline(always)]
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    unsafe fn tile<S: Simd, const R: usize, const V: usize>(
        x: *const f32,
        ldx: usize,
        k: usize,
        panel: *const f32,
        width: usize,
        out: *mut f32,
        ldo: usize,
        cols: usize,
        bias: Option<&[f32]>,
        relu: bool,
    ) {
        // SAFETY (the whole body): every pointer offset stays inside the bounds
        // above; partial loads and stores touch only their first lanes.
        unsafe {
            let mut acc = [[S::zero(); V]; R];
            for kk in 0..k {
                let mut w = [S::zero(); V];
                for v in 0..V {
                    w[v] = S::load(panel.add(kk * width + S::LANES * v));
                }
                for r in 0..R {
                    let a = S::splat(*x.add(r * ldx + kk));
                    for v in 0..V {
                        acc[r][v] = S::fma(a, w[v], acc[r][v]);
                    }
                }
            }
            for v in 0..V {
                let lanes = cols.saturating_sub(S::LANES * v).min(S::LANES);
                if lanes == 0 {
                    continue;
                }
                let b = bias.map(|b| S::load_first(b.as_ptr().add(S::LANES * v), lanes));
                for r in 0..R {
                    let value = match b {
                        Some(b) => S::add(acc[r][v], b),
                        None => acc[r][v],
                    }
                    .relu(relu);
                    value.store_first(out.add(r * ldo + S::LANES * v), lanes);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::simd::Isa;
    use crate::tests::{bits, values};

    fn check(m: usize, k: usize, n: usize, transposed: bool, with_bias: bool) {
        check_with(m, k, n, transposed, with_bias, false);
        check_with(m, k, n, transposed, with_bias, true);
    }

    fn check_with(m: usize, k: usize, n: usize, transposed: bool, with_bias: bool, relu: bool) {
        let w = values(k * n, 3);
        let b = values(n, 5);
        let x = values(m * k, 7);
        for isa in Isa::all_supported() {
            let mut d =
                Dense::for_isa(Some(isa), &w, k, n, transposed, with_bias.then_some(&b[..]))
                    .unwrap();
            if relu {
                d = d.with_relu();
            }
            let mut fast = vec![f32::NAN; m * n];
            let mut slow = vec![f32::NAN; m * n];
            d.run(&x, m, &mut fast).unwrap();
            d.reference(&x, m, &mut slow).unwrap();
            assert_eq!(
                bits(&fast),
                bits(&slow),
                "{isa:?} m={m} k={k} n={n} t={transposed} relu={relu}"
            );
        }
    }

    #[test]
    fn the_kernel_gives_the_reference_bits_on_every_tail() {
        for m in [1, 2, 11, 12, 13, 25, 37] {
            for (k, n) in [
                (1, 1),
                (3, 10),
                (17, 16),
                (33, 17),
                (9, 32),
                (40, 33),
                (64, 70),
            ] {
                check(m, k, n, false, true);
                check(m, k, n, true, false);
            }
        }
    }

    #[test]
    fn a_hand_computed_layer() {
        // W = [[1, 2], [3, 4], [5, 6]] (k = 3, n = 2), bias [0.5, -1].
        let d = Dense::new(&[1., 2., 3., 4., 5., 6.], 3, 2, false, Some(&[0.5, -1.])).unwrap();
        let mut out = [0f32; 4];
        d.run(&[1., 0., -1., 2., 1., 0.5], 2, &mut out).unwrap();
        // [1 0 -1]·W = [-4, -4]; [2 1 .5]·W = [7.5, 11].
        assert_eq!(out, [-3.5, -5., 8., 10.]);
        let t = Dense::new(&[1., 3., 5., 2., 4., 6.], 3, 2, true, None).unwrap();
        t.run(&[1., 0., -1., 2., 1., 0.5], 2, &mut out).unwrap();
        assert_eq!(out, [-4., -4., 7.5, 11.]);
    }

    #[test]
    fn the_relu_zeroes_negatives_and_nan() {
        // W = [[1, -1, 0]] (k = 1, n = 3); x = -2, NaN, -0, 3.
        let w = [1., -1., 0.];
        let x = [-2., f32::NAN, -0., 3.];
        let mut isas: Vec<Option<Isa>> = Isa::all_supported().into_iter().map(Some).collect();
        isas.push(None);
        for isa in isas {
            let d = Dense::for_isa(isa, &w, 1, 3, false, None)
                .unwrap()
                .with_relu();
            let mut out = [f32::NAN; 12];
            d.run(&x, 4, &mut out).unwrap();
            assert_eq!(
                bits(&out),
                bits(&[0., 2., 0., 0., 0., 0., 0., 0., 0., 3., 0., 0.]),
                "{isa:?}"
            );
        }
        // Without the ReLU, 0 * -2 and -0 * 1 still sum to +0 from +0.
        let d = Dense::new(&w, 1, 3, false, None).unwrap();
        let mut out = [f32::NAN; 6];
        d.run(&[-2., -0.], 2, &mut out).unwrap();
        assert_eq!(bits(&out), bits(&[-2., 2., 0., 0., 0., 0.]));
    }

    #[test]
    fn a_wrong_length_is_an_error_not_a_panic() {
        assert!(Dense::new(&[1., 2., 3.], 2, 2, false, None).is_err());
        assert!(Dense::new(&[1., 2.], 1, 2, false, Some(&[1.])).is_err());
        assert!(Dense::new(&[], 0, 2, false, None).is_err());
        let d = Dense::new(&[1., 2.], 1, 2, false, None).unwrap();
        let mut out = [0f32; 3];
        let err = d.run(&[1., 2.], 2, &mut out).unwrap_err();
        assert_eq!(err.0, "the output has 3 values, expected 4");
        assert!(d.run(&[1.], 2, &mut [0f32; 4]).is_err());
        assert!(d.run(&[1.], usize::MAX, &mut [0f32; 4]).is_err());
    }
}
