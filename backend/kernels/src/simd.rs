//! The vector operations the kernels use, for AVX-512F (16 lanes) and AVX2 + FMA
//! (8 lanes).
//!
//! The kernels are generic over [`Simd`] and marked `#[inline(always)]`; each
//! instruction set has one entry point compiled with `#[target_feature]` that
//! instantiates them, so the intrinsics inline into code built for that set.
#![allow(unsafe_code)]

/// The instruction set this CPU runs the kernels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// The best set this CPU has, if any.
    pub fn detect() -> Option<Isa> {
        Self::all_supported().first().copied()
    }

    /// Whether this CPU has the set.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Every set this CPU has (the tests run each).
    pub fn all_supported() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    /// f32 lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2 => 8,
        }
    }
}

/// One vector of f32 lanes.
///
/// # Safety
/// Every method needs the CPU to have the instruction set of its type, and every
/// pointer to cover the lanes it reads or writes.
pub(crate) trait Simd: Copy {
    const LANES: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    /// The first `lanes` values from `p`, zeros after; reads nothing past them.
    unsafe fn load_first(p: *const f32, lanes: usize) -> Self;
    /// Writes the first `lanes` values to `p`; touches nothing past them.
    unsafe fn store_first(self, p: *mut f32, lanes: usize);
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    /// Lane by lane `if a > b { a } else { b }` (so `b` where `a` is NaN).
    unsafe fn max(a: Self, b: Self) -> Self;

    /// `crate::relu` lane by lane when `on`.
    #[inline(always)]
    unsafe fn relu(self, on: bool) -> Self {
        // SAFETY: the caller's.
        unsafe {
            if on {
                Self::max(self, Self::zero())
            } else {
                self
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::{V8, V16};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub(crate) struct V16(__m512);

    #[derive(Clone, Copy)]
    pub(crate) struct V8(__m256);

    fn mask16(lanes: usize) -> __mmask16 {
        if lanes >= 16 { !0 } else { (1u16 << lanes) - 1 }
    }

    impl Simd for V16 {
        const LANES: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            V16(unsafe { _mm512_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            V16(unsafe { _mm512_set1_ps(v) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            V16(unsafe { _mm512_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, lanes: usize) -> Self {
            V16(unsafe { _mm512_maskz_loadu_ps(mask16(lanes), p) })
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, lanes: usize) {
            if lanes >= 16 {
                unsafe { _mm512_storeu_ps(p, self.0) }
            } else {
                unsafe { _mm512_mask_storeu_ps(p, mask16(lanes), self.0) }
            }
        }
        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            V16(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            V16(unsafe { _mm512_add_ps(a.0, b.0) })
        }
        #[inline(always)]
        unsafe fn max(a: Self, b: Self) -> Self {
            V16(unsafe { _mm512_max_ps(a.0, b.0) })
        }
    }

    /// An AVX2 lane mask: all ones in the first `lanes` lanes.
    #[inline(always)]
    unsafe fn mask8(lanes: usize) -> __m256i {
        let lanes = lanes.min(8) as i32;
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(lanes),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }

    impl Simd for V8 {
        const LANES: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            V8(unsafe { _mm256_setzero_ps() })
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            V8(unsafe { _mm256_set1_ps(v) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            V8(unsafe { _mm256_loadu_ps(p) })
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f32, lanes: usize) -> Self {
            V8(unsafe { _mm256_maskload_ps(p, mask8(lanes)) })
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f32, lanes: usize) {
            if lanes >= 8 {
                unsafe { _mm256_storeu_ps(p, self.0) }
            } else {
                unsafe { _mm256_maskstore_ps(p, mask8(lanes), self.0) }
            }
        }
        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            V8(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
        }
        #[inline(always)]
        unsafe fn add(a: Self, b: Self) -> Self {
            V8(unsafe { _mm256_add_ps(a.0, b.0) })
        }
        #[inline(always)]
        unsafe fn max(a: Self, b: Self) -> Self {
            V8(unsafe { _mm256_max_ps(a.0, b.0) })
        }
    }
}
