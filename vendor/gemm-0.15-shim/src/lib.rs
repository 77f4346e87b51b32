//! gemm 0.15's API (what dfdx 0.13 calls for its matmuls). Where the CPU has AVX2 or AVX-512,
//! every f32 product goes to kernels of its own (`skinny`, `dot`) that sum in one order on both
//! instruction sets, any cache size and any thread count: the path is chosen by [`isa`]
//! (`RUNNER_ISA` forces one). Elsewhere, and for other types, gemm 0.19 serves it.
//!
//! gemm 0.19's own threading is slow for dfdx's dense-layer shapes (65 GFLOP/s on 2 threads for
//! a batch of 50 against a 3136x1024 weight), so there large products are split into column
//! blocks, each a single-threaded gemm, run in parallel. The blocks depend on the shape only,
//! never on the thread count, so results do not depend on the number of threads there either
//! (but do on the CPU: gemm 0.19 blocks the inner dimension by its cache sizes).

mod dot;
pub mod isa;
mod skinny;
mod vector;

/// The batch-sized products' kernels on a chosen instruction set, for the tests.
#[cfg(test)]
mod testing {
    pub use crate::isa::Isa;

    /// `dst = [dst +] lhs · rhs` through the fixed-order kernels on `isa`, as `gemm` (f32,
    /// alpha and beta one).
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
    ) {
        crate::skinny::gemm(
            isa, m, n, k, dst, dst_cs, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs,
        )
    }
}

pub use gemm19::Parallelism;

/// Products smaller than this (m*n*k) go to gemm 0.19 unsplit.
const SPLIT_MIN_WORK: usize = 1 << 22;
/// Column blocks: at most this many, each at least `MIN_BLOCK_COLS` wide.
const MAX_BLOCKS: usize = 8;
const MIN_BLOCK_COLS: usize = 128;

/// A pointer that may cross threads: the blocks write disjoint columns of `dst`.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: a plain address; the blocks that share it write disjoint columns of `dst` and only
// read the other matrices.
unsafe impl<T> Send for SendPtr<T> {}
// SAFETY: as for `Send`: shared reads, disjoint writes.
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
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`.
        let (alpha, beta) = (
            *(&alpha as *const T as *const f32),
            *(&beta as *const T as *const f32),
        );
        if let (true, Some(isa)) = (
            beta == 1.0 && (!read_dst || alpha == 1.0) && !(conj_dst || conj_lhs || conj_rhs),
            isa::selected(),
        ) {
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
            );
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

#[cfg(test)]
mod tests {
    use crate::testing::{skinny, Isa};

    /// The fixed-order kernels (`skinny.rs`, `dot.rs`) on every instruction set this CPU has,
    /// against f64 sums, and the instruction sets against each other, bit for bit: every layout
    /// of the three matrices (row- or column-major each, which selects the dot-product form, the
    /// product as given or transposed, and the copies of either operand), writing and
    /// accumulating, shapes with partial register tiles, rows that are not whole vectors (read and
    /// written in place under a mask, never past the matrix), inner
    /// dimensions that are and are not multiples of 16 (and longer than one chunk, with a last
    /// chunk of one or two vectors), and more rows than a batch and than one block of rows; with
    /// `A` starting on a cache line (read in place by the dot-product form) and 16 bytes past one
    /// (copied first).
    #[test]
    fn products_match_f64_sums_and_agree_bit_for_bit_on_every_instruction_set() {
        let sets = Isa::available();
        if sets.is_empty() {
            eprintln!("no AVX2 or AVX-512 on this CPU: the shim falls back to gemm 0.19");
            return;
        }
        let val = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|j| ((j * 7919 + seed * 131) % 1009) as f32 / 1009.0 - 0.5)
                .collect()
        };
        // (rows, cols) -> (row stride, column stride).
        let layout = |col_major: bool, r: usize, c: usize| -> (isize, isize) {
            if col_major {
                (1, r as isize)
            } else {
                (c as isize, 1)
            }
        };
        // `v` in a buffer, starting `shift` values past a 64-byte line: (buffer, start).
        let placed = |v: &[f32], shift: usize| -> (Vec<f32>, usize) {
            let mut buf = vec![0.0f32; v.len() + 32];
            let start = buf.as_ptr().align_offset(64) + shift;
            buf[start..start + v.len()].copy_from_slice(v);
            (buf, start)
        };
        let mut checked = 0;
        for (m, n, k) in [
            (50, 96, 70),
            (7, 40, 33),
            (64, 48, 5),
            (1, 16, 9),
            (13, 50, 64),
            (50, 20, 1040),
            (5, 100, 48),
            (130, 24, 40),
            (100, 70, 120),
            (140, 30, 544),
            (3, 5, 0),
        ] {
            let (a, b) = (val(m * k, 1), val(k * n, 2));
            for (mask, shift) in (0..8).flat_map(|mask| [(mask, 0), (mask, 4)]) {
                let (a_buf, a_start) = placed(&a, shift);
                let (la, lb, lc) = (
                    layout(mask & 1 != 0, m, k),
                    layout(mask & 2 != 0, k, n),
                    layout(mask & 4 != 0, m, n),
                );
                let start = val(m * n, 3);
                for accumulate in [false, true] {
                    let mut first: Option<Vec<f32>> = None;
                    for &isa in &sets {
                        // A register's worth of sentinels past `C`: the masked last vectors of
                        // a partial width must not write there.
                        let mut c = start.clone();
                        c.extend([f32::MAX; 16]);
                        // SAFETY: each matrix is its slice in the stated layout; `c` is apart.
                        unsafe {
                            skinny(
                                isa,
                                (m, n, k),
                                c.as_mut_ptr(),
                                lc,
                                accumulate,
                                a_buf[a_start..].as_ptr(),
                                la,
                                b.as_ptr(),
                                lb,
                            )
                        };
                        assert!(
                            c.split_off(m * n).iter().all(|&v| v == f32::MAX),
                            "{isa:?} {m}x{n}x{k} layout {mask}: written past C"
                        );
                        let at = |(rs, cs): (isize, isize), r: usize, q: usize| {
                            (r as isize * rs + q as isize * cs) as usize
                        };
                        for r in 0..m {
                            for q in 0..n {
                                let mut want: f64 = (0..k)
                                    .map(|p| a[at(la, r, p)] as f64 * b[at(lb, p, q)] as f64)
                                    .sum();
                                if accumulate {
                                    want += start[at(lc, r, q)] as f64;
                                }
                                let got = c[at(lc, r, q)] as f64;
                                assert!(
                                    (got - want).abs() < 1e-5 * (k as f64 + 1.0),
                                    "{isa:?} {m}x{n}x{k} layout {mask} acc {accumulate} \
                                     ({r}, {q}): {got} vs {want}"
                                );
                            }
                        }
                        match &first {
                            None => first = Some(c),
                            Some(f) => assert!(
                                f.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()),
                                "{isa:?} differs from {:?}: {m}x{n}x{k} layout {mask} acc \
                                 {accumulate}",
                                sets[0]
                            ),
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 352 * sets.len(), "{checked} cases");
    }
}

#[cfg(test)]
mod timing {
    /// Median times of the reference's hidden layer's three products (batch 50, 3136 -> 1024)
    /// with the layouts dfdx passes: `cargo test --release -p gemm timing -- --ignored
    /// --nocapture` (`RAYON_NUM_THREADS=1` for one thread).
    #[test]
    #[ignore]
    fn reference_dense_products() {
        let (b, i, o) = (50usize, 3136usize, 1024usize);
        let val = |n: usize, f: f32| -> Vec<f32> { (0..n).map(|j| (j as f32 * f).sin()).collect() };
        let (x, w, gy) = (val(b * i, 0.37), val(o * i, 0.11), val(b * o, 0.53));
        let (mut y, mut gx, mut gw) = (
            vec![0.0f32; b * o],
            vec![0.0f32; b * i],
            vec![0.0f32; o * i],
        );
        let time = |name: &str, f: &mut dyn FnMut()| {
            let mut t: Vec<f64> = (0..50)
                .map(|_| {
                    let s = std::time::Instant::now();
                    f();
                    s.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(f64::total_cmp);
            eprintln!("{name}: {:.3} ms", t[t.len() / 2]);
        };
        let p = crate::Parallelism::Rayon(0);
        // SAFETY: each matrix is its vector at the strides given; the outputs are apart.
        unsafe {
            time("forward, y = x Wᵀ", &mut || {
                crate::gemm(
                    b,
                    o,
                    i,
                    y.as_mut_ptr(),
                    1,
                    o as isize,
                    false,
                    x.as_ptr(),
                    1,
                    i as isize,
                    w.as_ptr(),
                    i as isize,
                    1,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    p,
                )
            });
            time("input gradient, gx += gy W", &mut || {
                crate::gemm(
                    b,
                    i,
                    o,
                    gx.as_mut_ptr(),
                    1,
                    i as isize,
                    true,
                    gy.as_ptr(),
                    1,
                    o as isize,
                    w.as_ptr(),
                    1,
                    i as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    p,
                )
            });
            // dfdx's weight gradient is that of `Wᵀ`: a 3136 x 1024 view of `gw`.
            time("weight gradient, gWᵀ += xᵀ gy", &mut || {
                crate::gemm(
                    i,
                    o,
                    b,
                    gw.as_mut_ptr(),
                    i as isize,
                    1,
                    true,
                    x.as_ptr(),
                    i as isize,
                    1,
                    gy.as_ptr(),
                    1,
                    o as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    p,
                )
            });
        }
    }
}
