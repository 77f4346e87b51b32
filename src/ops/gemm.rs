//! A safe, strided front for `gemm::gemm` (`vendor/gemm-0.15-shim`): its fixed-order kernels on
//! AVX2 and AVX-512, the same bits on both (gemm 0.19 on CPUs that have neither).

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
