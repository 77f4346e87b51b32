//! `C (+)= X Wᵀ` with a few rows of `X` (the batch) and the rows of both `X` and `W` contiguous:
//! a dense layer's forward pass with the weight in dfdx's `[out][in]` layout. Each output is the
//! dot product of two contiguous rows, so the kernel runs along the inner dimension, with lanes
//! of partial sums added up at the end: no lane is spent on padding a batch of 50 to 64 (the
//! outer-product form in `skinny` must), and the weight is read in place, once.
//!
//! A register tile is 4 rows of `X` by 6 rows of `W` (AVX-512; 3 by 4 with AVX2). The inner
//! dimension is cut into chunks (`Isa::dot_chunk`): on AVX-512 one chunk of up to 256 vectors,
//! so a tile's sums stay in registers over the reference's whole inner dimension; on AVX2 small
//! ones whose `W` rows are copied into L1 and read by every row tile. The partial sums wait in
//! a buffer between chunks; the chunk loop runs outside the tile loops, so a chunk of every
//! row stays in cache while the task's tiles pass. Lane `j` of an output's partial sum adds the
//! products at `j`, `j + 16`, ... in order (16 lanes on both instruction sets: AVX2 runs lanes
//! 0-7, then 8-15), and the lanes are summed in a fixed order: the same bits on AVX2 and
//! AVX-512, for any chunking and at any thread count (threads take whole `W` panels).

use crate::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

/// Lanes of the partial sums, on both instruction sets: what fixes the order of the sums.
pub const LANES: usize = 16;
/// Tiles of `W` rows per parallel task.
const TILES_PER_TASK: usize = 8;

/// A pointer that may cross threads: tasks read `x` and `w` and write disjoint columns of `c`.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: a plain address; the tasks that share it read `x` and `w` and write disjoint columns
// of `c` (see `dot`), so no two threads touch one element mutably.
unsafe impl Send for Ptr {}
// SAFETY: as for `Send`: shared reads, disjoint writes.
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
    let chunk_len = isa.dot_chunk() * lanes;
    let packed = isa.dot_packed();
    let (c, w) = (Ptr(c), Ptr(w as *mut f32));
    let products = |x: *const f32, x_rs: isize| {
        let x = Ptr(x as *mut f32);
        (0..n.div_ceil(per_task)).into_par_iter().for_each(|task| {
            let (c, x, w) = (c, x, w);
            let (o_start, o_end) = (task * per_task, ((task + 1) * per_task).min(n));
            // Partial sums of the task's outputs: `[row][out][lane]` (the first chunk writes them).
            let stride = (o_end - o_start) * lanes;
            with_buffer(&PARTIAL, m * stride, |partial| {
                let w_len = if packed {
                    tile_outs * chunk_len + LANES
                } else {
                    0
                };
                with_buffer(&W_BUF, w_len, |w_buf| {
                    let w_tile = w_buf
                        .as_mut_ptr()
                        .add(w_buf.as_ptr().align_offset(64).min(LANES));
                    // A chunk of every row of `x` stays in L2 while each tile of `w` rows
                    // passes over it: `x` is read from memory once per task, not per tile.
                    for chunk in (0..k).step_by(chunk_len) {
                        let vectors = (k - chunk).min(chunk_len) / lanes;
                        let width = vectors * lanes;
                        for o0 in (o_start..o_end).step_by(tile_outs) {
                            let outs = tile_outs.min(o_end - o0);
                            let (w_at, w_at_rs) = if packed {
                                for o in 0..outs {
                                    let src = w.0.offset((o0 + o) as isize * w_rs).add(chunk);
                                    pack(src, w_tile.add(o * width), width);
                                    // The next tile's row, fetched while this tile runs.
                                    if o0 + tile_outs + o < o_end {
                                        let next = src.offset(tile_outs as isize * w_rs);
                                        for line in (0..width).step_by(16) {
                                            prefetch(next.add(line));
                                        }
                                    }
                                }
                                (w_tile as *const f32, width as isize)
                            } else {
                                (
                                    w.0.offset(o0 as isize * w_rs).add(chunk) as *const f32,
                                    w_rs,
                                )
                            };
                            // Unpacked, the next tile's rows come from memory (the weight is
                            // megabytes): this tile's row tiles fetch them in turns, a line
                            // per vector step, so the first row tile of the next does not wait.
                            let next_outs = if packed {
                                0
                            } else {
                                tile_outs.min(o_end.saturating_sub(o0 + tile_outs))
                            };
                            // Not dereferenced unless `next_outs > 0`: wrapping, as past the
                            // last tile it points past `w`.
                            let next = (w.0 as *const f32)
                                .wrapping_offset((o0 + outs) as isize * w_rs)
                                .wrapping_add(chunk);
                            let (lines, row_tiles) = (next_outs * vectors, m.div_ceil(tile_rows));
                            for (i, r0) in (0..m).step_by(tile_rows).enumerate() {
                                let t = Tile {
                                    x: x.0.offset(r0 as isize * x_rs).add(chunk),
                                    x_rs,
                                    w: w_at,
                                    w_rs: w_at_rs,
                                    vectors,
                                    half: width / 2,
                                    partial: partial
                                        .as_mut_ptr()
                                        .add(r0 * stride + (o0 - o_start) * lanes),
                                    stride,
                                    first: chunk == 0,
                                    fetch: Fetch {
                                        rows: next,
                                        rs: w_rs,
                                        per_row: vectors,
                                        from: i * lines / row_tiles,
                                        to: (i + 1) * lines / row_tiles,
                                    },
                                };
                                isa.dot_kernel(tile_rows.min(m - r0), outs, &t);
                            }
                        }
                    }
                    for r in 0..m {
                        isa.dot_sums(&Sums {
                            partial: partial.as_ptr().add(r * stride),
                            outs: o_end - o_start,
                            c: c.0.offset(r as isize * c_rs + o_start as isize * c_cs),
                            c_cs,
                            accumulate,
                        });
                    }
                })
            })
        });
    };
    // The kernel's loads of `x` start on a cache line: a vector load that straddles two lines
    // costs two (AVX2, 1000 rows, both inputs 16 bytes past a line: 59 -> 56 ms). Rows that
    // already do (runner's large buffers start on one) are read in place; others are copied,
    // on one thread (2 MB for an evaluation batch of an MLP's 512-wide layer: 5 % of it).
    let lines = |p: isize| p.rem_euclid(64 / std::mem::size_of::<f32>() as isize) == 0;
    if !packed && (x as usize).is_multiple_of(64) && lines(x_rs) {
        return products(x, x_rs);
    }
    with_buffer(&X_BUF, m * k + LANES, |x_buf| {
        let x_start = x_buf.as_ptr().align_offset(64).min(LANES);
        let x_copy = &mut x_buf[x_start..][..m * k];
        for (r, row) in x_copy.chunks_exact_mut(k).enumerate() {
            let src = x.offset(r as isize * x_rs);
            if packed {
                for chunk in (0..k).step_by(chunk_len) {
                    let len = (k - chunk).min(chunk_len);
                    pack(src.add(chunk), row.as_mut_ptr().add(chunk), len);
                }
            } else {
                std::ptr::copy_nonoverlapping(src, row.as_mut_ptr(), k);
            }
        }
        products(x_copy.as_ptr(), k as isize)
    })
}

thread_local! {
    /// The copy of `x`, a task's partial sums and its packed tile of `w`, kept from call to call:
    /// zeroing fresh ones took 5 % of an MLP's evaluation. Every value read is written first.
    static X_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PARTIAL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static W_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on the first `len` values of this thread's `key` (stale values; grown as needed), or on
/// a fresh buffer where `key` is in use further up the stack (a task stolen while waiting).
fn with_buffer<R>(
    key: &'static LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|v| match v.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0.0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Copies `len` values (whole vectors of [`LANES`]) as AVX2 reads them, in two passes: lanes 0-7
/// of every vector, then lanes 8-15, each half contiguous.
unsafe fn pack(src: *const f32, dst: *mut f32, len: usize) {
    let (half, vectors) = (LANES / 2, len / LANES);
    for v in 0..vectors {
        for h in 0..2 {
            std::ptr::copy_nonoverlapping(
                src.add(v * LANES + h * half),
                dst.add(h * vectors * half + v * half),
                half,
            );
        }
    }
}

/// A hint to fetch the cache line at `p` into L1.
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
}

/// One row's outputs from their partial sums: `c[o] (+)= sum(partial[o])` for `o < outs`.
pub struct Sums {
    partial: *const f32,
    outs: usize,
    c: *mut f32,
    c_cs: isize,
    accumulate: bool,
}

/// One register tile: `x` and `w` at the tile's first row and the chunk's first column,
/// `partial` at the tile's first row.
pub struct Tile {
    x: *const f32,
    x_rs: isize,
    w: *const f32,
    w_rs: isize,
    vectors: usize,
    /// Where lanes 8-15 start in a packed chunk (AVX2; see [`pack`]).
    half: usize,
    partial: *mut f32,
    stride: usize,
    /// The first chunk starts the sums from zero; later ones continue them.
    first: bool,
    fetch: Fetch,
}

/// Lines `from..to` of `rows` (`per_row` lines each, rows `rs` values apart) to fetch into the
/// cache while a tile runs, one per vector step.
pub struct Fetch {
    rows: *const f32,
    rs: isize,
    per_row: usize,
    from: usize,
    to: usize,
}

#[cfg(target_arch = "x86_64")]
pub mod simd {
    use super::{Sums, Tile, LANES};
    use crate::vector::{Pair, Vector};
    use std::arch::x86_64::*;

    const _: () = assert!(<__m512 as Vector>::LANES == LANES && <Pair as Vector>::LANES == LANES);
    const _: () = assert!(2 * <__m256 as Vector>::LANES == LANES);

    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512<const R: usize, const O: usize>(t: &Tile) {
        tile::<__m512, R, O, LANES>(t, 0)
    }

    /// The 16 lanes in two passes of 8 over the packed chunk: lanes 0-7 of every partial sum,
    /// then lanes 8-15. Each lane adds the same products in the same order as the AVX-512
    /// kernel's, and a pass needs one register per partial sum, not two.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<const R: usize, const O: usize>(t: &Tile) {
        tile::<__m256, R, O, { LANES / 2 }>(t, 0);
        tile::<__m256, R, O, { LANES / 2 }>(t, 1);
    }

    /// Sixteen outputs at a time in one register ([`sum16`]) where `c`'s row is contiguous,
    /// the rest one by one.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sums512(s: &Sums) {
        let whole = if s.c_cs == 1 { s.outs / 16 * 16 } else { 0 };
        for o0 in (0..whole).step_by(16) {
            let r = sum16(std::array::from_fn(|i| {
                _mm512_loadu_ps(s.partial.add((o0 + i) * LANES))
            }));
            let d = s.c.add(o0);
            let r = if s.accumulate {
                _mm512_add_ps(_mm512_loadu_ps(d), r)
            } else {
                r
            };
            _mm512_storeu_ps(d, r);
        }
        sums::<__m512>(&Sums {
            partial: s.partial.add(whole * LANES),
            outs: s.outs - whole,
            c: s.c.offset(whole as isize * s.c_cs),
            ..*s
        })
    }

    /// `[sum(a[0]), ..., sum(a[15])]`, each by the pairwise tree of `Vector::sum` (`sum512`):
    /// lane `i` plus `i + 8`, then `i + 4`, `i + 2`, `i + 1`, the lower lanes first in every
    /// addition, so the same bits. 15 additions and 31 shuffles for sixteen outputs, where one
    /// output's horizontal sum takes 4 and 6 (one by one, 6.5 % of an MLP's evaluation on one
    /// thread).
    #[inline(always)]
    unsafe fn sum16(a: [__m512; 16]) -> __m512 {
        // Lanes i and i + 8 of a[2p] and a[2p + 1]: 256-bit halves [a[2p], a[2p + 1]].
        let b: [__m512; 8] = std::array::from_fn(|p| {
            let (x, y) = (a[2 * p], a[2 * p + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x44>(x, y),
                _mm512_shuffle_f32x4::<0xEE>(x, y),
            )
        });
        // Then i + 4: 128-bit quarter j of c[u] is output 4u + j's four sums.
        let c: [__m512; 4] = std::array::from_fn(|u| {
            let (x, y) = (b[2 * u], b[2 * u + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0x88>(x, y),
                _mm512_shuffle_f32x4::<0xDD>(x, y),
            )
        });
        // Then i + 2: quarter j of d[v] is outputs 8v + j and 8v + 4 + j's two sums each.
        let d: [__m512; 2] = std::array::from_fn(|v| {
            let (x, y) = (c[2 * v], c[2 * v + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(x, y),
                _mm512_shuffle_ps::<0xEE>(x, y),
            )
        });
        // Then i + 1: lane 4j + t is output j + 4t; put back in order.
        let e = _mm512_add_ps(
            _mm512_shuffle_ps::<0x88>(d[0], d[1]),
            _mm512_shuffle_ps::<0xDD>(d[0], d[1]),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(order, e)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sums_pair(s: &Sums) {
        sums::<Pair>(s)
    }

    /// Each output's [`LANES`] partial sums added in the fixed order of [`Vector::sum`].
    #[inline(always)]
    unsafe fn sums<V: Vector>(s: &Sums) {
        for o in 0..s.outs {
            let sum = V::load(s.partial.add(o * LANES)).sum();
            let d = s.c.offset(o as isize * s.c_cs);
            *d = if s.accumulate { *d + sum } else { sum };
        }
    }

    /// `R` rows of `x` against `O` rows of `w` over one chunk, for lanes `pass * V::LANES ..`
    /// of the 16: a vector every `STEP` values from `pass * t.half`.
    #[inline(always)]
    unsafe fn tile<V: Vector, const R: usize, const O: usize, const STEP: usize>(
        t: &Tile,
        pass: usize,
    ) {
        let lane0 = pass * V::LANES;
        let at = |r: usize, o: usize| t.partial.add(r * t.stride + o * LANES + lane0);
        let mut acc = [[V::zero(); O]; R];
        if !t.first {
            for (r, acc) in acc.iter_mut().enumerate() {
                for (o, acc) in acc.iter_mut().enumerate() {
                    *acc = V::load(at(r, o));
                }
            }
        }
        let start = pass * t.half;
        let xs: [*const f32; R] =
            std::array::from_fn(|r| t.x.offset(r as isize * t.x_rs).add(start));
        let ws: [*const f32; O] =
            std::array::from_fn(|o| t.w.offset(o as isize * t.w_rs).add(start));
        let f = &t.fetch;
        // `per_row` is the chunk's vectors: at least one.
        let (mut row, mut col) = (f.from / f.per_row, f.from % f.per_row);
        let mut left = f.to - f.from;
        for v in 0..t.vectors {
            if left > 0 {
                let line = f
                    .rows
                    .wrapping_offset(row as isize * f.rs)
                    .wrapping_add(col * LANES);
                _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
                left -= 1;
                col += 1;
                if col == f.per_row {
                    (row, col) = (row + 1, 0);
                }
            }
            let off = v * STEP;
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
