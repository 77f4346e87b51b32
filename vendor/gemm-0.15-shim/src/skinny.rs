//! f32 products in a fixed order of arithmetic: every product dfdx and runner make, when the
//! CPU has AVX2 or AVX-512 (gemm 0.19 chooses its blocking of the inner dimension from the
//! CPU's cache sizes, and so sums in an order that differs between machines). Each output is a
//! sum over the inner dimension `p` in order, from zero, by fused multiply-adds, then added to
//! `C` (or written): the same bits on every instruction set, cache size and thread count.
//!
//! Shaped for a dense layer's products with a weight of a few megabytes: the weight is read in
//! place, once per call, and only batch-sized operands are ever copied. `x Wᵀ` (rows of both
//! contiguous along `p`) goes to the dot-product kernels in `dot`. Anything else is put in the
//! form `C[r][c] (+)= Σ_p A[r][p] B[p][c]` where rows of `B` and `C` are contiguous (vector
//! loads along `c`) and `A` is read one scalar at a time (broadcast), at any strides: the
//! product as given or its transpose, whichever needs less copying (the two do the same
//! arithmetic). A tile of `C` (up to 6 rows by 4 vectors with AVX-512) stays in registers while
//! `p` runs over the whole inner dimension. Tiles go to threads in blocks fixed by the shape.

use crate::isa::Isa;
use rayon::prelude::*;

/// Up to this many rows (a batch), threads take column panels; above it, row panels.
const SMALL: usize = 64;
/// Rows of `X` per call of the dot-product kernels.
const DOT_ROWS: usize = 128;

/// Element `(r, c)` of a strided matrix is at `ptr + r * rs + c * cs`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *mut f32,
    rs: isize,
    cs: isize,
}

// SAFETY: tasks read `A` and `B` and write disjoint tiles of `C` (see `run`).
unsafe impl Send for Mat {}
// SAFETY: as for `Send`: shared reads, disjoint writes.
unsafe impl Sync for Mat {}

impl Mat {
    unsafe fn at(self, r: usize, c: usize) -> *mut f32 {
        self.ptr.offset(r as isize * self.rs + c as isize * self.cs)
    }
    fn t(self) -> Mat {
        Mat {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// One way to lay the product out: `c (rows x cols) (+)= a (rows x k) · b (k x cols)`.
#[derive(Clone, Copy)]
struct Form {
    rows: usize,
    cols: usize,
    a: Mat,
    b: Mat,
    c: Mat,
}

impl Form {
    /// Values to copy so that `b`'s and `c`'s rows are contiguous (a last, partial vector is
    /// read and written under a mask).
    fn copies(&self, k: usize, lanes: usize) -> usize {
        let padded = self.cols.next_multiple_of(lanes);
        let b = if self.b.cs == 1 { 0 } else { k * padded };
        let c = if self.c.cs == 1 {
            0
        } else {
            self.rows * padded
        };
        b + c
    }
}

/// `dst (m x n) = [dst +] lhs (m x k) · rhs (k x n)` on `isa`.
///
/// # Safety
/// As `gemm::gemm`: valid, non-overlapping matrices at the given strides; the CPU has `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm(
    isa: Isa,
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_cs: isize,
    dst_rs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_cs: isize,
    lhs_rs: isize,
    rhs: *const f32,
    rhs_cs: isize,
    rhs_rs: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m as isize {
                for c in 0..n as isize {
                    *dst.offset(r * dst_rs + c * dst_cs) = 0.0;
                }
            }
        }
        return;
    }
    if lhs_cs == 1 && rhs_rs == 1 && k.is_multiple_of(crate::dot::LANES) {
        // `lhs · rhs` with `rhs = Wᵀ`: rows of both contiguous along `k`. Many rows (an
        // evaluation batch) go in blocks, so that a block's rows stay in cache while the whole
        // weight passes once per block.
        for r0 in (0..m).step_by(DOT_ROWS) {
            crate::dot::gemm(
                isa,
                (DOT_ROWS.min(m - r0), n, k),
                dst.offset(r0 as isize * dst_rs),
                (dst_rs, dst_cs),
                accumulate,
                lhs.offset(r0 as isize * lhs_rs),
                lhs_rs,
                rhs,
                rhs_cs,
            );
        }
        return;
    }
    let (a, b, c) = (
        Mat {
            ptr: lhs as *mut f32,
            rs: lhs_rs,
            cs: lhs_cs,
        },
        Mat {
            ptr: rhs as *mut f32,
            rs: rhs_rs,
            cs: rhs_cs,
        },
        Mat {
            ptr: dst,
            rs: dst_rs,
            cs: dst_cs,
        },
    );
    let as_given = Form {
        rows: m,
        cols: n,
        a,
        b,
        c,
    };
    // Cᵀ = Bᵀ Aᵀ.
    let transposed = Form {
        rows: n,
        cols: m,
        a: b.t(),
        b: a.t(),
        c: c.t(),
    };
    let lanes = isa.lanes();
    let form = [as_given, transposed]
        .into_iter()
        .min_by_key(|f| f.copies(k, lanes))
        .expect("two forms");
    run(isa, form, k, accumulate);
}

/// Copies `b` and `c` where their rows are not contiguous, runs the tiles, and copies the
/// output back.
unsafe fn run(isa: Isa, form: Form, k: usize, accumulate: bool) {
    let lanes = isa.lanes();
    let Form { rows, cols, a, .. } = form;
    let padded = cols.next_multiple_of(lanes);
    let mut b_copy = Vec::new();
    let b = if form.b.cs == 1 {
        form.b
    } else {
        b_copy.resize(k * padded, 0.0f32);
        for p in 0..k {
            let row = &mut b_copy[p * padded..][..cols];
            if form.b.cs == 1 {
                row.copy_from_slice(std::slice::from_raw_parts(form.b.at(p, 0), cols));
            } else {
                for (c, v) in row.iter_mut().enumerate() {
                    *v = *form.b.at(p, c);
                }
            }
        }
        Mat {
            ptr: b_copy.as_mut_ptr(),
            rs: padded as isize,
            cs: 1,
        }
    };
    let mut c_copy = Vec::new();
    let c_direct = form.c.cs == 1;
    let out = if c_direct {
        form.c
    } else {
        c_copy.resize(rows * padded, 0.0f32);
        Mat {
            ptr: c_copy.as_mut_ptr(),
            rs: padded as isize,
            cs: 1,
        }
    };
    let (tile_rows, tile_vectors) = isa.tile();
    let tile_cols = tile_vectors * lanes;
    // `A` read along `p` at a stride (a transposed operand: the weight gradient's `gᵀ`, rows
    // 4 KB apart and all in one L1 set) is copied once, each tile's rows side by side.
    let mut a_buf = Vec::new();
    let a_packed = a.cs != 1;
    if a_packed {
        a_buf.resize(rows.next_multiple_of(tile_rows) * k, 0.0f32);
        // Tile by tile, `p` by `p`: sequential writes, no division per value (a scalar loop
        // with one took a third of Caffe's LeNet's step).
        for r0 in (0..rows).step_by(tile_rows) {
            let tile = &mut a_buf[r0 * k..][..tile_rows * k];
            for (p, column) in tile.chunks_exact_mut(tile_rows).enumerate() {
                for (i, v) in column[..tile_rows.min(rows - r0)].iter_mut().enumerate() {
                    *v = *a.at(r0 + i, p);
                }
            }
        }
    }
    let a_copy = Mat {
        ptr: a_buf.as_mut_ptr(),
        rs: 1,
        cs: tile_rows as isize,
    };
    // A tile's rows of `A`, from row `r` (a multiple of `tile_rows`).
    let a_tile = move |r: usize| {
        let packed = a_copy;
        if a_packed {
            Mat {
                ptr: packed.ptr.add(r * k),
                ..packed
            }
        } else {
            Mat {
                ptr: a.at(r, 0),
                ..a
            }
        }
    };
    // Few rows (the batch): tasks are column panels, each `B` panel read from cache for every
    // row tile. Many rows: tasks are row panels, each row of `A` read once.
    let by_columns = rows <= SMALL;
    let (panels, panel) = if by_columns {
        let panel = 2 * tile_cols;
        (padded.div_ceil(panel), panel)
    } else {
        let panel = 8 * tile_rows;
        (rows.div_ceil(panel), panel)
    };
    let tile_accumulates = accumulate && c_direct;
    (0..panels).into_par_iter().for_each(|i| {
        let (r0, r1, c0, c1) = if by_columns {
            (0, rows, i * panel, ((i + 1) * panel).min(padded))
        } else {
            (i * panel, ((i + 1) * panel).min(rows), 0, padded)
        };
        let tile = |r: usize, c: usize| {
            let (nr, nv) = (tile_rows.min(r1 - r), tile_vectors.min((c1 - c) / lanes));
            // Lanes of the tile's last vector inside the matrix: fewer than a register's at the
            // right edge of a width that is not a multiple of it.
            let tail = lanes - (c + nv * lanes).saturating_sub(cols);
            let t = Tile {
                tail,
                k,
                a: a_tile(r),
                b: b.at(0, c),
                b_rs: b.rs,
                c: out.at(r, c),
                c_rs: out.rs,
                accumulate: tile_accumulates,
            };
            isa.tile_kernel(nr, nv, &t);
        };
        // Column tiles outside: one tile column of `B` stays in L1 across the panel's row
        // tiles (and, in a row panel, so do the panel's rows of `A`).
        for c in (c0..c1).step_by(tile_cols) {
            for r in (r0..r1).step_by(tile_rows) {
                tile(r, c);
            }
        }
    });
    if !c_direct {
        for r in 0..rows {
            let row = &c_copy[r * padded..][..cols];
            if form.c.cs == 1 {
                let d = std::slice::from_raw_parts_mut(form.c.at(r, 0), cols);
                if accumulate {
                    d.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
                } else {
                    d.copy_from_slice(row);
                }
            } else {
                for (col, &v) in row.iter().enumerate() {
                    let d = form.c.at(r, col);
                    *d = if accumulate { *d + v } else { v };
                }
            }
        }
    }
}

/// One register tile's operands: `a` at its first row, `b` and `c` at its first column.
struct Tile {
    k: usize,
    /// Lanes of the last vector to read and write: `lanes` but at a partial right edge.
    tail: usize,
    a: Mat,
    b: *const f32,
    b_rs: isize,
    c: *mut f32,
    c_rs: isize,
    accumulate: bool,
}

impl Isa {
    pub(crate) fn lanes(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 16,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 8,
        }
    }

    /// Rows and vectors of the largest register tile: accumulators plus one row of `B` within
    /// the register file (32 registers with AVX-512, 16 with AVX2, one for the broadcast).
    fn tile(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (6, 4),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (4, 3),
        }
    }

    /// Rows of `X` and of `W` in the dot-product form's register tile (see `dot`): accumulators
    /// plus one vector per `X` row and one for `W` within the register file.
    pub(crate) fn dot_tile(self) -> (usize, usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => (4, 6),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => (3, 4),
        }
    }

    /// Vectors of [`crate::dot::LANES`] per chunk of the dot-product form's inner dimension
    /// (any chunking gives the same sums). AVX-512: 16 KB of each row, the whole inner
    /// dimension of the reference's first dense layer, so its tiles never leave registers
    /// (34 against 37 ms over 64 vectors for 1000 rows). AVX2: chunks whose tile of `W` rows,
    /// packed, stays in L1 (see [`Isa::dot_packed`]).
    pub(crate) fn dot_chunk(self) -> usize {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => 256,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => 32,
        }
    }

    /// Whether the dot-product form packs its operands: AVX2 runs each chunk twice, lanes 0-7
    /// then 8-15, and reads each half from contiguous memory when `X` and each tile of `W`
    /// rows are copied that way (the copy of `W` is read by every row tile).
    pub(crate) fn dot_packed(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => false,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => true,
        }
    }

    /// A row of the dot-product form's outputs, each the sum of its [`crate::dot::LANES`]
    /// partial sums in a fixed order (the same on both instruction sets).
    pub(crate) unsafe fn dot_sums(self, s: &crate::dot::Sums) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => crate::dot::simd::sums512(s),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => crate::dot::simd::sums_pair(s),
        }
    }

    /// Runs the dot-product form's `rows x outs` tile (within [`Isa::dot_tile`]).
    pub(crate) unsafe fn dot_kernel(self, rows: usize, outs: usize, t: &crate::dot::Tile) {
        #[cfg(target_arch = "x86_64")]
        {
            macro_rules! dispatch {
                ($f:ident; $($r:literal $o:literal),+) => {
                    match (rows, outs) {
                        $(($r, $o) => crate::dot::simd::$f::<$r, $o>(t),)+
                        _ => unreachable!("tile {rows}x{outs}"),
                    }
                };
            }
            match self {
                Isa::Avx512 => dispatch!(avx512; 1 1, 1 2, 1 3, 1 4, 1 5, 1 6, 2 1, 2 2, 2 3, 2 4,
                    2 5, 2 6, 3 1, 3 2, 3 3, 3 4, 3 5, 3 6, 4 1, 4 2, 4 3, 4 4, 4 5, 4 6),
                Isa::Avx2 => dispatch!(avx2; 1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4, 3 1, 3 2,
                    3 3, 3 4),
            }
        }
    }

    /// Runs the `rows x vectors` tile (within [`Isa::tile`]).
    unsafe fn tile_kernel(self, rows: usize, vectors: usize, t: &Tile) {
        #[cfg(target_arch = "x86_64")]
        {
            let masked = t.tail < self.lanes();
            macro_rules! dispatch {
                ($f:ident; $($r:literal $v:literal),+) => {
                    match (rows, vectors, masked) {
                        $(($r, $v, false) => simd::$f::<$r, $v, false>(t),
                          ($r, $v, true) => simd::$f::<$r, $v, true>(t),)+
                        _ => unreachable!("tile {rows}x{vectors}"),
                    }
                };
            }
            match self {
                Isa::Avx512 => dispatch!(avx512; 1 1, 1 2, 1 3, 1 4, 2 1, 2 2, 2 3, 2 4,
                    3 1, 3 2, 3 3, 3 4, 4 1, 4 2, 4 3, 4 4, 5 1, 5 2, 5 3, 5 4, 6 1, 6 2, 6 3, 6 4),
                Isa::Avx2 => dispatch!(avx2; 1 1, 1 2, 1 3, 2 1, 2 2, 2 3, 3 1, 3 2, 3 3,
                    4 1, 4 2, 4 3),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::Tile;
    use crate::vector::Partial;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512<const R: usize, const V: usize, const M: bool>(t: &Tile) {
        tile::<__m512, R, V, M>(t)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<const R: usize, const V: usize, const M: bool>(t: &Tile) {
        tile::<__m256, R, V, M>(t)
    }

    /// Rows of `B` fetched ahead: in the input gradient they are a weight row apart (12.5 KB
    /// in the baseline), too far for the hardware prefetcher (1.6 against 1.75 ms alone).
    const PREFETCH: isize = 24;

    /// `R` rows by `V` vectors of `C`: the whole inner dimension in registers, then stored.
    /// `MASKED`: the last vector's lanes past `t.tail` lie outside `B` and `C`, and are neither
    /// read nor written (each lane's sums are the same either way).
    #[inline(always)]
    unsafe fn tile<T: Partial, const R: usize, const V: usize, const MASKED: bool>(t: &Tile) {
        let partial = |v: usize| MASKED && v == V - 1;
        let rows: [*const f32; R] =
            std::array::from_fn(|r| t.a.ptr.offset(r as isize * t.a.rs) as *const f32);
        // The tile's `C` is only touched after the whole inner dimension: fetch it meanwhile (the
        // weight gradient's `C` is megabytes, out of cache, and read at every tile).
        for r in 0..R {
            let c = t.c.offset(r as isize * t.c_rs);
            for v in 0..V {
                _mm_prefetch::<_MM_HINT_T0>(c.add(v * T::LANES) as *const i8);
            }
        }
        let mut acc = [[T::zero(); V]; R];
        for p in 0..t.k as isize {
            let b = t.b.offset(p * t.b_rs);
            // A hint only: past the last row it points outside `B` and fetches nothing needed.
            let ahead = b.wrapping_offset(PREFETCH * t.b_rs);
            for v in 0..V {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(v * T::LANES) as *const i8);
            }
            let bv: [T; V] = std::array::from_fn(|v| {
                let b = b.add(v * T::LANES);
                if partial(v) {
                    T::load_first(b, t.tail)
                } else {
                    T::load(b)
                }
            });
            let off = p * t.a.cs;
            for (acc, row) in acc.iter_mut().zip(rows) {
                let a = T::splat(*row.offset(off));
                for (acc, &b) in acc.iter_mut().zip(&bv) {
                    *acc = acc.mul_add(a, b);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            let c = t.c.offset(r as isize * t.c_rs);
            for (v, &acc) in acc.iter().enumerate() {
                let c = c.add(v * T::LANES);
                if partial(v) {
                    let sum = if t.accumulate {
                        T::load_first(c, t.tail).add(acc)
                    } else {
                        acc
                    };
                    sum.store_first(c, t.tail);
                } else {
                    let sum = if t.accumulate {
                        T::load(c).add(acc)
                    } else {
                        acc
                    };
                    sum.store(c);
                }
            }
        }
    }
}
