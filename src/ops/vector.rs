//! The few vector operations runner's kernels need, over AVX-512 and AVX2 registers,
//! so that each kernel is written once and compiled per instruction set.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

/// One vector register of f32 lanes.
///
/// # Safety
///
/// Every method is an instruction of the implementing register's instruction set (AVX-512F for
/// `__m512`; AVX2 and FMA for `__m256`): callers must have checked that the CPU has it (the
/// kernels do once, through `Isa`, before they enter their `#[target_feature]` functions).
/// `load` and `store` read or write `LANES` consecutive f32 at `p` and `store_indices` `LANES`
/// u32, all in bounds of one allocation; no alignment is required (unaligned moves).
pub trait Vector: Copy {
    const LANES: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// `a * b + self`, rounded once.
    unsafe fn mul_add(self, a: Self, b: Self) -> Self;
    unsafe fn add(self, b: Self) -> Self;
    unsafe fn sub(self, b: Self) -> Self;
    unsafe fn mul(self, b: Self) -> Self;
    /// Lane indices `base, base + 1, ...`.
    unsafe fn indices(base: usize) -> Self::Indices;
    /// Per lane, `(v, vi)` where `v > best` (false for NaN), else `(best, best_i)`.
    unsafe fn keep_greater(
        self,
        best_i: Self::Indices,
        v: Self,
        vi: Self::Indices,
    ) -> (Self, Self::Indices);
    unsafe fn store_indices(i: Self::Indices, p: *mut u32);
    type Indices: Copy;
}

/// Bias and 2x2 max-pool of one window for a vector of channels: `y[dy][dx]` are its outputs,
/// `first` is the index of its top-left output (and first channel) in the image's convolution
/// output, `row` the index step of one output row. Stores the maximum at `out` and its index at
/// `arg`; strict `>` in window order, so the first maximum wins (as `pool::forward_image`).
///
/// # Safety
///
/// As [`Vector`]'s methods: the CPU has `V`'s instruction set, and `out` and `arg` have
/// `V::LANES` writable values each.
#[inline(always)]
pub unsafe fn pool_window<V: Vector>(
    y: [[V; 2]; 2],
    bias: V,
    (first, row, cout): (usize, usize, usize),
    out: *mut f32,
    arg: *mut u32,
) {
    // SAFETY: the caller's contract: the CPU has `V`'s instruction set, `out` and `arg` cover
    // `V::LANES` values.
    unsafe {
        let at = |dy: usize, dx: usize| V::indices(first + dy * row + dx * cout);
        let (mut best, mut best_at) = (y[0][0].add(bias), at(0, 0));
        for (dy, dx) in [(0, 1), (1, 0), (1, 1)] {
            (best, best_at) = best.keep_greater(best_at, y[dy][dx].add(bias), at(dy, dx));
        }
        best.store(out);
        V::store_indices(best_at, arg);
    }
}

impl Vector for __m512 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm512_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the CPU has this register's instruction set and `p` covers `LANES` values (the trait's contract).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the CPU has this register's instruction set and `p` covers `LANES` values (the trait's contract).
        unsafe { _mm512_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm512_fmadd_ps(a, b, self) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm512_add_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm512_sub_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm512_mul_ps(self, b) }
    }
    type Indices = __m512i;
    #[inline(always)]
    unsafe fn indices(base: usize) -> __m512i {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe {
            let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            _mm512_add_epi32(iota, _mm512_set1_epi32(base as i32))
        }
    }
    #[inline(always)]
    unsafe fn keep_greater(self, best_i: __m512i, v: Self, vi: __m512i) -> (Self, __m512i) {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe {
            let m = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, self);
            (
                _mm512_mask_blend_ps(m, self, v),
                _mm512_mask_blend_epi32(m, best_i, vi),
            )
        }
    }
    #[inline(always)]
    unsafe fn store_indices(i: __m512i, p: *mut u32) {
        // SAFETY: the CPU has this register's instruction set and `p` covers `LANES` values (the trait's contract).
        unsafe { _mm512_storeu_si512(p.cast(), i) }
    }
}

impl Vector for __m256 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm256_setzero_ps() }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the CPU has this register's instruction set and `p` covers `LANES` values (the trait's contract).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the CPU has this register's instruction set and `p` covers `LANES` values (the trait's contract).
        unsafe { _mm256_storeu_ps(p, self) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, a: Self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm256_fmadd_ps(a, b, self) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm256_add_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm256_sub_ps(self, b) }
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe { _mm256_mul_ps(self, b) }
    }
    type Indices = __m256i;
    #[inline(always)]
    unsafe fn indices(base: usize) -> __m256i {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe {
            let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            _mm256_add_epi32(iota, _mm256_set1_epi32(base as i32))
        }
    }
    #[inline(always)]
    unsafe fn keep_greater(self, best_i: __m256i, v: Self, vi: __m256i) -> (Self, __m256i) {
        // SAFETY: the CPU has this register's instruction set (the trait's contract).
        unsafe {
            let m = _mm256_cmp_ps::<_CMP_GT_OQ>(v, self);
            (
                _mm256_blendv_ps(self, v, m),
                _mm256_blendv_epi8(best_i, vi, _mm256_castps_si256(m)),
            )
        }
    }
    #[inline(always)]
    unsafe fn store_indices(i: __m256i, p: *mut u32) {
        // SAFETY: the CPU has this register's instruction set and `p` covers `LANES` values (the trait's contract).
        unsafe { _mm256_storeu_si256(p.cast(), i) }
    }
}
