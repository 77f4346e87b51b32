//! The few vector operations the kernels need, over AVX-512 and AVX2 registers, so that each
//! kernel is written once and compiled per instruction set.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// The few vector operations the tile needs.
pub trait Vector: Copy {
    const LANES: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `a * b + self`, rounded once.
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
    /// The sum of the lanes, in a fixed order.
    unsafe fn sum(self) -> f32;
}

macro_rules! vector {
    ($t:ty, $lanes:literal, $zero:ident, $set1:ident, $load:ident, $store:ident, $fma:ident, $add:ident, $sum:expr) => {
        impl Vector for $t {
            const LANES: usize = $lanes;
            #[inline(always)]
            unsafe fn zero() -> Self {
                $zero()
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> Self {
                $set1(x)
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> Self {
                $load(p)
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut f32) {
                $store(p, self)
            }
            #[inline(always)]
            unsafe fn mul_add(self, a: Self, b: Self) -> Self {
                $fma(a, b, self)
            }
            #[inline(always)]
            unsafe fn add(self, b: Self) -> Self {
                $add(self, b)
            }
            #[inline(always)]
            unsafe fn sum(self) -> f32 {
                $sum(self)
            }
        }
    };
}
vector!(
    __m512,
    16,
    _mm512_setzero_ps,
    _mm512_set1_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    |v| _mm512_reduce_add_ps(v)
);
vector!(
    __m256,
    8,
    _mm256_setzero_ps,
    _mm256_set1_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    sum256
);

/// The lanes of an AVX2 register summed pairwise: halves, then quarters, then the last two.
#[inline(always)]
unsafe fn sum256(v: __m256) -> f32 {
    let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps::<1>(q, q)))
}
