//! gemm 0.15's API (what dfdx 0.13 calls for its matmuls), served by gemm 0.19, whose
//! runtime-dispatched AVX-512 kernels are faster, and by kernels of its own for products with
//! at most 64 rows on the left (a dense layer's forward pass and input gradient at a training
//! batch): see `skinny` and `dot`. gemm 0.19 packs the whole weight on every such call.
//!
//! Larger products: gemm 0.19's own threading is slow for dfdx's dense-layer shapes (65
//! GFLOP/s on 2 threads for a batch of 50 against a 3136x1024 weight), so they are split into
//! column blocks, each a single-threaded gemm, run in parallel (210-270 GFLOP/s). Each output
//! element is computed by one kernel call over the whole inner dimension, and the blocks depend
//! on the shape only, never on the thread count, so results do not depend on the number of
//! threads (nor do the skinny kernels').

mod dot;
mod skinny;
mod vector;

/// The batch-sized products' kernels on a chosen instruction set, for the tests of the crate
/// that vendors this one (its test command does not build this crate's own tests).
#[doc(hidden)]
pub mod testing {
    pub use crate::skinny::Isa;

    /// `dst = [dst +] lhs · rhs` through the skinny kernels on `isa`, as `gemm` (f32, alpha and
    /// beta one); `false` if they do not serve the shape.
    ///
    /// # Safety
    /// As `gemm`; the CPU has `isa` (see `Isa::available`).
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn skinny(
        isa: Isa,
        (m, n, k): (usize, usize, usize),
        dst: *mut f32,
        (dst_rs, dst_cs): (isize, isize),
        accumulate: bool,
        lhs: *const f32,
        (lhs_rs, lhs_cs): (isize, isize),
        rhs: *const f32,
        (rhs_rs, rhs_cs): (isize, isize),
    ) -> bool {
        crate::skinny::gemm(
            isa, m, n, k, dst, dst_cs, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs,
        )
    }
}

pub use gemm19::Parallelism;

/// Products smaller than this (m*n*k) go to gemm 0.19 unchanged.
const SPLIT_MIN_WORK: usize = 1 << 22;
/// Column blocks: at most this many, each at least `MIN_BLOCK_COLS` wide.
const MAX_BLOCKS: usize = 8;
const MIN_BLOCK_COLS: usize = 128;

/// A pointer that may cross threads: the blocks write disjoint columns of `dst`.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// `dst := alpha * dst + beta * lhs * rhs` (m x n, inner dimension k), as gemm 0.15.
///
/// # Safety
/// As `gemm::gemm`: the pointers and strides must describe valid, non-overlapping matrices.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm<T: 'static + Copy + Send + Sync>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_cs: isize,
    dst_rs: isize,
    read_dst: bool,
    lhs: *const T,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const T,
    rhs_cs: isize,
    rhs_rs: isize,
    alpha: T,
    beta: T,
    conj_dst: bool,
    conj_lhs: bool,
    conj_rhs: bool,
    parallelism: Parallelism,
) {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
        && m.saturating_mul(n).saturating_mul(k) >= SPLIT_MIN_WORK
    {
        // SAFETY: `T` is `f32`.
        let (alpha, beta) = (
            *(&alpha as *const T as *const f32),
            *(&beta as *const T as *const f32),
        );
        if beta == 1.0
            && (!read_dst || alpha == 1.0)
            && !(conj_dst || conj_lhs || conj_rhs)
            && skinny::Isa::detect().is_some_and(|isa| {
                skinny::gemm(
                    isa,
                    m,
                    n,
                    k,
                    dst as *mut f32,
                    dst_cs,
                    dst_rs,
                    read_dst,
                    lhs as *const f32,
                    lhs_cs,
                    lhs_rs,
                    rhs as *const f32,
                    rhs_cs,
                    rhs_rs,
                )
            })
        {
            return;
        }
    }
    let threads = match parallelism {
        Parallelism::None => 1,
        Parallelism::Rayon(0) => rayon::current_num_threads(),
        Parallelism::Rayon(t) => t,
    };
    let blocks = (n / MIN_BLOCK_COLS).min(MAX_BLOCKS);
    if threads <= 1 || blocks < 2 || m.saturating_mul(n).saturating_mul(k) < SPLIT_MIN_WORK {
        return gemm19::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            read_dst,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            alpha,
            beta,
            conj_dst,
            conj_lhs,
            conj_rhs,
            parallelism,
        );
    }
    let width = n.div_ceil(blocks);
    let (d, l, r) = (SendPtr(dst), SendPtr(lhs as *mut T), SendPtr(rhs as *mut T));
    use rayon::prelude::*;
    (0..blocks).into_par_iter().for_each(move |b| {
        let (c0, c1) = (b * width, ((b + 1) * width).min(n));
        if c0 >= c1 {
            return;
        }
        let (d, l, r) = (d, l, r);
        gemm19::gemm(
            m,
            c1 - c0,
            k,
            d.0.wrapping_offset(c0 as isize * dst_cs),
            dst_cs,
            dst_rs,
            read_dst,
            l.0 as *const T,
            lhs_cs,
            lhs_rs,
            (r.0 as *const T).wrapping_offset(c0 as isize * rhs_cs),
            rhs_cs,
            rhs_rs,
            alpha,
            beta,
            conj_dst,
            conj_lhs,
            conj_rhs,
            Parallelism::None,
        );
    });
}
