//! `C (+)= X Wᵀ` with a few rows of `X` (the batch) and the rows of both `X` and `W` contiguous:
//! a dense layer's forward pass with the weight in dfdx's `[out][in]` layout. Each output is the
//! dot product of two contiguous rows, so the kernel runs along the inner dimension, with lanes
//! of partial sums added up at the end: no lane is spent on padding a batch of 50 to 64 (the
//! outer-product form in `skinny` must), and the weight is read in place, once.
//!
//! A register tile is 4 rows of `X` by 6 rows of `W` (AVX-512; 3 by 3 with AVX2). The inner
//! dimension is cut into chunks small enough that the tile's `W` rows stay in L1 while every
//! batch row passes; the partial sums wait in a small buffer between chunks. Lane `j` of an
//! output's partial sum adds the products at `j`, `j + 16`, ... in order (16 lanes on both
//! instruction sets: AVX2 runs lanes 0-7, then 8-15), and the lanes are summed in a fixed
//! order: the same bits on AVX2 and AVX-512 and at any thread count (threads take whole `W`
//! panels).

use crate::isa::Isa;
use rayon::prelude::*;

/// Lanes of the partial sums, on both instruction sets: what fixes the order of the sums.
pub const LANES: usize = 16;
/// Vectors of the inner dimension per chunk: 2 KB of each row.
const CHUNK_VECTORS: usize = 32;
/// Tiles of `W` rows per parallel task.
const TILES_PER_TASK: usize = 8;

/// A pointer that may cross threads: tasks read `x` and `w` and write disjoint columns of `c`.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

/// `c[r][o] (+)= Σ_p x[r][p] w[o][p]` for `m` rows of `x`, `n` rows of `w`, inner dimension `k`
/// (a multiple of [`LANES`]); `c` at any strides.
///
/// # Safety
/// The CPU has `isa`; the matrices are valid at their strides; `c` overlaps neither input.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    (c_rs, c_cs): (isize, isize),
    accumulate: bool,
    x: *const f32,
    x_rs: isize,
    w: *const f32,
    w_rs: isize,
) {
    let lanes = LANES;
    assert_eq!(k % lanes, 0, "the inner dimension is whole vectors");
    let (tile_rows, tile_outs) = isa.dot_tile();
    let per_task = TILES_PER_TASK * tile_outs;
    let (c, x, w) = (Ptr(c), Ptr(x as *mut f32), Ptr(w as *mut f32));
    (0..n.div_ceil(per_task)).into_par_iter().for_each(|task| {
        let (c, x, w) = (c, x, w);
        // Partial sums of one tile column: `[row][out][lane]`.
        let stride = tile_outs * lanes;
        let mut partial = vec![0.0f32; m * stride];
        let end = ((task + 1) * per_task).min(n);
        for o0 in (task * per_task..end).step_by(tile_outs) {
            let outs = tile_outs.min(end - o0);
            for chunk in (0..k).step_by(CHUNK_VECTORS * lanes) {
                let vectors = (k - chunk).min(CHUNK_VECTORS * lanes) / lanes;
                for r0 in (0..m).step_by(tile_rows) {
                    let t = Tile {
                        x: x.0.offset(r0 as isize * x_rs).add(chunk),
                        x_rs,
                        w: w.0.offset(o0 as isize * w_rs).add(chunk),
                        w_rs,
                        vectors,
                        partial: partial.as_mut_ptr().add(r0 * stride),
                        stride,
                        first: chunk == 0,
                    };
                    isa.dot_kernel(tile_rows.min(m - r0), outs, &t);
                }
            }
            for r in 0..m {
                for o in 0..outs {
                    let s = isa.sum(partial.as_ptr().add(r * stride + o * lanes));
                    let d = c.0.offset(r as isize * c_rs + (o0 + o) as isize * c_cs);
                    *d = if accumulate { *d + s } else { s };
                }
            }
        }
    });
}

/// One register tile: `x` and `w` at the tile's first row and the chunk's first column,
/// `partial` at the tile's first row.
pub struct Tile {
    x: *const f32,
    x_rs: isize,
    w: *const f32,
    w_rs: isize,
    vectors: usize,
    partial: *mut f32,
    stride: usize,
    /// The first chunk starts the sums from zero; later ones continue them.
    first: bool,
}

#[cfg(target_arch = "x86_64")]
pub mod simd {
    use super::{Tile, LANES};
    use crate::vector::{Pair, Vector};
    use std::arch::x86_64::*;

    const _: () = assert!(<__m512 as Vector>::LANES == LANES && <Pair as Vector>::LANES == LANES);
    const _: () = assert!(2 * <__m256 as Vector>::LANES == LANES);

    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512<const R: usize, const O: usize>(t: &Tile) {
        tile::<__m512, R, O>(t, 0)
    }

    /// The 16 lanes in two passes of 8: lanes 0-7 of every partial sum over the chunk, then
    /// lanes 8-15. Each lane adds the same products in the same order as the AVX-512 kernel's,
    /// and a pass needs one register per partial sum, not two.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<const R: usize, const O: usize>(t: &Tile) {
        tile::<__m256, R, O>(t, 0);
        tile::<__m256, R, O>(t, 8);
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum512(p: *const f32) -> f32 {
        __m512::load(p).sum()
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sum_pair(p: *const f32) -> f32 {
        Pair::load(p).sum()
    }

    /// `R` rows of `x` against `O` rows of `w` over one chunk, for lanes `lane0 ..
    /// lane0 + V::LANES` of the 16.
    #[inline(always)]
    unsafe fn tile<V: Vector, const R: usize, const O: usize>(t: &Tile, lane0: usize) {
        let at = |r: usize, o: usize| t.partial.add(r * t.stride + o * LANES + lane0);
        let mut acc = [[V::zero(); O]; R];
        if !t.first {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (o, acc) in acc.iter_mut().enumerate() {
                    *acc = V::load(at(r, o));
                }
            }
        }
        let xs: [*const f32; R] =
            std::array::from_fn(|r| t.x.offset(r as isize * t.x_rs).add(lane0));
        let ws: [*const f32; O] =
            std::array::from_fn(|o| t.w.offset(o as isize * t.w_rs).add(lane0));
        for v in 0..t.vectors {
            let off = v * LANES;
            let xv: [V; R] = std::array::from_fn(|r| V::load(xs[r].add(off)));
            for (o, w) in ws.iter().enumerate() {
                let wv = V::load(w.add(off));
                for (acc, &x) in acc.iter_mut().zip(&xv) {
                    acc[o] = acc[o].mul_add(x, wv);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (o, acc) in acc.iter().enumerate() {
                acc.store(at(r, o));
            }
        }
    }
}
