//! A safe, strided front for the `gemm` crate. 0.19 with `x86-v4`: AVX-512 kernels, chosen at
//! run time where the CPU has them (dfdx 0.13 itself uses gemm 0.15, AVX2 at most).

/// A read-only matrix view: `rows x cols`, element `(r, c)` at `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major `cols x rows` matrix, without copying.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        View {
            data,
            rows,
            cols,
            rs: 1,
            cs: rows,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `out (row-major m x n) = a · b`, or `out += a · b` when `accumulate`. Single-threaded: callers
/// parallelise over independent blocks, which keeps results independent of the thread count.
pub fn matmul(a: View, b: View, out: &mut [f32], accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    assert!(a.fits() && b.fits(), "matrix view exceeds its slice");
    assert_eq!(out.len(), m * n, "output has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above keep every index the kernel touches inside the three slices,
    // and `out` is borrowed mutably, so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dfdx's matmul goes through `vendor/gemm-0.15-shim`, which splits large products into
    /// column blocks: check the dense layer's three products against a naive loop, and that 1
    /// and 3 threads give the same bits.
    #[test]
    fn dfdx_matmul_through_the_gemm_shim_is_exact_and_thread_independent() {
        use dfdx::prelude::*;
        let dev = Cpu::default();
        let (b, i, o) = (50, 3136, 1024);
        let val = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|j| ((j * 7919 + seed) % 1009) as f32 / 1009.0 - 0.5)
                .collect()
        };
        let (xs, ws, gs) = (val(b * i, 1), val(o * i, 2), val(b * o, 3));
        let products = || {
            let x = dev.tensor_from_vec(xs.clone(), (b, i));
            let w = dev.tensor_from_vec(ws.clone(), (o, i));
            let g = dev.tensor_from_vec(gs.clone(), (b, o));
            [
                x.clone().matmul(w.clone().permute()).as_vec(), // forward: x Wᵀ
                g.clone().matmul(w).as_vec(),                   // input gradient: g W
                g.permute().matmul(x).as_vec(),                 // weight gradient: gᵀ x
            ]
        };
        let pool = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        };
        let one = pool(1).install(products);
        let three = pool(3).install(products);
        for (p, (a, c)) in one.iter().zip(&three).enumerate() {
            assert!(
                a.iter().zip(c).all(|(u, v)| u.to_bits() == v.to_bits()),
                "product {p}"
            );
        }
        // Spot checks against f64 sums.
        let dot = |f: &dyn Fn(usize) -> (f32, f32), n: usize| -> f64 {
            (0..n)
                .map(|p| {
                    let (u, v) = f(p);
                    u as f64 * v as f64
                })
                .sum()
        };
        for (r, c) in [(0, 0), (17, 1000), (49, 1023)] {
            let want = dot(&|p| (xs[r * i + p], ws[c * i + p]), i);
            assert!(
                (one[0][r * o + c] as f64 - want).abs() < 1e-3,
                "x Wᵀ at {r},{c}"
            );
        }
        for (r, c) in [(0, 0), (30, 3000), (49, 3135)] {
            let want = dot(&|p| (gs[r * o + p], ws[p * i + c]), o);
            assert!(
                (one[1][r * i + c] as f64 - want).abs() < 1e-3,
                "g W at {r},{c}"
            );
        }
        for (r, c) in [(0, 0), (500, 2000), (1023, 3135)] {
            let want = dot(&|p| (gs[p * o + r], xs[p * i + c]), b);
            assert!(
                (one[2][r * i + c] as f64 - want).abs() < 1e-4,
                "gᵀ x at {r},{c}"
            );
        }
    }

    /// The shim's kernels for batch-sized products (`vendor/gemm-0.15-shim/src/skinny.rs`), on
    /// every instruction set this CPU has, against f64 sums: every layout of the three matrices
    /// (row- or column-major each, which selects the product as given or transposed and the
    /// copies of either operand), writing and accumulating, shapes with partial register tiles
    /// and rows that are not whole vectors.
    #[test]
    fn skinny_products_match_f64_sums_on_every_instruction_set() {
        use gemm_shim::testing::{skinny, Isa};
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
        let mut checked = 0;
        for isa in sets {
            for (m, n, k) in [
                (50, 96, 70),
                (7, 40, 33),
                (64, 48, 5),
                (1, 16, 9),
                (13, 50, 64),
                (50, 20, 1040),
                (5, 100, 48),
            ] {
                let (a, b) = (val(m * k, 1), val(k * n, 2));
                for mask in 0..8 {
                    let (la, lb, lc) = (
                        layout(mask & 1 != 0, m, k),
                        layout(mask & 2 != 0, k, n),
                        layout(mask & 4 != 0, m, n),
                    );
                    let start = val(m * n, 3);
                    for accumulate in [false, true] {
                        let mut c = start.clone();
                        // SAFETY: each matrix is its slice in the stated layout; `c` is apart.
                        let served = unsafe {
                            skinny(
                                isa,
                                (m, n, k),
                                c.as_mut_ptr(),
                                lc,
                                accumulate,
                                a.as_ptr(),
                                la,
                                b.as_ptr(),
                                lb,
                            )
                        };
                        assert!(served, "{isa:?} {m}x{n}x{k}");
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
                        checked += 1;
                    }
                }
            }
            // Larger batches go to gemm 0.19.
            let (mut c, a, b) = (vec![0.0; 65 * 16], val(65, 1), val(16, 2));
            // SAFETY: as above.
            let served = unsafe {
                skinny(
                    isa,
                    (65, 16, 1),
                    c.as_mut_ptr(),
                    (16, 1),
                    false,
                    a.as_ptr(),
                    (1, 1),
                    b.as_ptr(),
                    (16, 1),
                )
            };
            assert!(!served);
        }
        assert!(checked >= 112, "{checked} cases");
    }

    fn naive(a: View, b: View) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                for p in 0..a.cols {
                    out[i * b.cols + j] +=
                        a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_loops_for_plain_and_transposed_views() {
        let (m, k, n) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.91).cos()).collect();
        for (va, vb) in [
            (View::rows(&a, m, k), View::rows(&b, k, n)),
            (View::transposed(&a, m, k), View::transposed(&b, k, n)),
        ] {
            let mut out = vec![1.0; m * n];
            matmul(va, vb, &mut out, false);
            let expected = naive(va, vb);
            for (x, y) in out.iter().zip(&expected) {
                assert!((x - y).abs() < 1e-5);
            }
            matmul(va, vb, &mut out, true);
            for (x, y) in out.iter().zip(&expected) {
                assert!((x - 2.0 * y).abs() < 1e-5);
            }
        }
    }
}
