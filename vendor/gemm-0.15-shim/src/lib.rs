//! gemm 0.15's API (what dfdx 0.13 calls for its matmuls), served by gemm 0.19, whose
//! runtime-dispatched AVX-512 kernels are faster. One change of strategy: gemm 0.19's own
//! threading is slow for dfdx's dense-layer shapes (a batch of 50 rows against a 3136x1024
//! weight: 65 GFLOP/s on 2 threads), so large products are split into column blocks, each a
//! single-threaded gemm, run in parallel (210-270 GFLOP/s). Each output element is still
//! computed by one kernel call over the whole inner dimension, and the blocks depend on the
//! shape only, never on the thread count, so results do not depend on the number of threads.
//! On the project's networks they are bit-identical to gemm 0.15's (checked by full-run digests).

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
    let threads = match parallelism {
        Parallelism::None => 1,
        Parallelism::Rayon(0) => rayon::current_num_threads(),
        Parallelism::Rayon(t) => t,
    };
    let blocks = (n / MIN_BLOCK_COLS).min(MAX_BLOCKS);
    if threads <= 1 || blocks < 2 || m.saturating_mul(n).saturating_mul(k) < SPLIT_MIN_WORK {
        return gemm19::gemm(
            m, n, k, dst, dst_cs, dst_rs, read_dst, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs,
            alpha, beta, conj_dst, conj_lhs, conj_rhs, parallelism,
        );
    }
    let width = n.div_ceil(blocks);
    let (d, l, r) = (
        SendPtr(dst),
        SendPtr(lhs as *mut T),
        SendPtr(rhs as *mut T),
    );
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
