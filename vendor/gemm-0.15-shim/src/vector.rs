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
    sum512
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

/// Loads and stores of a register's first `n` lanes (`n < LANES`), for a matrix's last, partial
/// vector: the lanes past `n` are neither read (loads give zero there) nor written, so a row
/// whose length is not a multiple of the register needs no padded copy.
pub trait Partial: Vector {
    unsafe fn load_first(p: *const f32, n: usize) -> Self;
    unsafe fn store_first(self, p: *mut f32, n: usize);
}

impl Partial for __m512 {
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p)
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, self)
    }
}

/// An AVX2 mask of the first `n` lanes.
#[inline(always)]
unsafe fn first_lanes256(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

impl Partial for __m256 {
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        _mm256_maskload_ps(p, first_lanes256(n))
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        _mm256_maskstore_ps(p, first_lanes256(n), self)
    }
}

/// The lanes of an AVX2 register summed pairwise: halves, then quarters, then the last two.
#[inline(always)]
unsafe fn sum256(v: __m256) -> f32 {
    let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps::<1>(q, q)))
}

/// The 16 lanes of an AVX-512 register summed as [`Pair`]'s: lane `i` plus lane `i + 8`, then
/// as [`sum256`].
#[inline(always)]
unsafe fn sum512(v: __m512) -> f32 {
    let lo = _mm512_castps512_ps256(v);
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    sum256(_mm256_add_ps(lo, hi))
}

/// 16 lanes in two AVX2 registers (lanes 0-7, 8-15): the AVX-512 kernels' arithmetic, lane for
/// lane, on CPUs without AVX-512.
#[derive(Clone, Copy)]
pub struct Pair(__m256, __m256);

impl Vector for Pair {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Pair(_mm256_setzero_ps(), _mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Pair(_mm256_set1_ps(x), _mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Pair(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0);
        _mm256_storeu_ps(p.add(8), self.1);
    }
    #[inline(always)]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        Pair(
            _mm256_fmadd_ps(a.0, b.0, self.0),
            _mm256_fmadd_ps(a.1, b.1, self.1),
        )
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Pair(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        sum256(_mm256_add_ps(self.0, self.1))
    }
}
