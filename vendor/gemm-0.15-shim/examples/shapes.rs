//! Times the dense layers' products of the reference network on the fixed-order kernels and on
//! gemm 0.19: `cargo run --release -p gemm@0.15.99 --example shapes` (RUNNER_ISA chooses).
//! ONLY=text times the shapes whose name contains it; SHIFT=n starts both inputs n floats past
//! a cache line (allocators often give 16 bytes past one: SHIFT=4), which costs split loads.

use std::time::Instant;

/// `(name, m, n, k, lhs (rs, cs), rhs (rs, cs), accumulate)`; outputs row-major.
type Shape = (
    &'static str,
    usize,
    usize,
    usize,
    (isize, isize),
    (isize, isize),
    bool,
);

fn main() {
    let shapes: &[Shape] = &[
        (
            "fc1 forward x Wt (50)",
            50,
            1024,
            3136,
            (3136, 1),
            (1, 3136),
            false,
        ),
        (
            "fc1 input grad g W",
            50,
            3136,
            1024,
            (1024, 1),
            (3136, 1),
            false,
        ),
        (
            "fc1 weight grad gt x",
            1024,
            3136,
            50,
            (1, 1024),
            (3136, 1),
            true,
        ),
        (
            "fc1 forward x Wt (1000)",
            1000,
            1024,
            3136,
            (3136, 1),
            (1, 3136),
            false,
        ),
        ("fc2 forward", 50, 10, 1024, (1024, 1), (1, 1024), false),
        (
            "mlp forward x Wt (128)",
            128,
            1024,
            784,
            (784, 1),
            (1, 784),
            false,
        ),
        (
            "mlp weight grad gt x (128)",
            1024,
            784,
            128,
            (1, 1024),
            (784, 1),
            true,
        ),
        ("fc2 weight grad", 10, 1024, 50, (1, 10), (1024, 1), true),
        ("fc2 input grad", 50, 1024, 10, (10, 1), (1024, 1), false),
        (
            "fc2 forward (1000)",
            1000,
            10,
            1024,
            (1024, 1),
            (1, 1024),
            false,
        ),
    ];
    let isa = gemm::isa::selected().map_or("generic", |i| i.name());
    let only = std::env::var("ONLY").unwrap_or_default();
    for &(name, m, n, k, (ars, acs), (brs, bcs), acc) in shapes {
        if !name.contains(&only) {
            continue;
        }
        let shift: usize = std::env::var("SHIFT").map_or(0, |s| s.parse().unwrap());
        let aligned = |n: usize, f: &dyn Fn(usize) -> f32| -> (Vec<f32>, usize) {
            let mut v = vec![0.0f32; n + 32];
            let off = (v.as_ptr() as usize / 4).wrapping_neg() % 16 + shift;
            for i in 0..n {
                v[off + i] = f(i);
            }
            (v, off)
        };
        let (a, ao) = aligned(m * k, &|i| (i % 97) as f32 / 97.0 - 0.5);
        let (b, bo) = aligned(k * n, &|i| (i % 89) as f32 / 89.0 - 0.5);
        let mut c = vec![0.0f32; m * n];
        let reps = (2e9 / (2.0 * (m * n * k) as f64)).clamp(5.0, 2000.0) as usize;
        let mut time = |shim: bool| {
            let t = Instant::now();
            for _ in 0..reps {
                // SAFETY: the slices hold the matrices at these strides; `c` is apart.
                unsafe {
                    let args = (c.as_mut_ptr(), a.as_ptr().add(ao), b.as_ptr().add(bo));
                    if shim {
                        gemm::gemm(
                            m,
                            n,
                            k,
                            args.0,
                            1,
                            n as isize,
                            acc,
                            args.1,
                            acs,
                            ars,
                            args.2,
                            bcs,
                            brs,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::Rayon(0),
                        );
                    } else {
                        gemm19::gemm(
                            m,
                            n,
                            k,
                            args.0,
                            1,
                            n as isize,
                            acc,
                            args.1,
                            acs,
                            ars,
                            args.2,
                            bcs,
                            brs,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm19::Parallelism::Rayon(0),
                        );
                    }
                }
            }
            t.elapsed().as_secs_f64() / reps as f64 * 1e3
        };
        let (ours, theirs) = (time(true), time(false));
        let (ours2, theirs2) = (time(true), time(false));
        println!(
            "{isa} {name:<26} fixed order {:7.3} ms   gemm 0.19 {:7.3} ms   ratio {:.2}",
            ours.min(ours2),
            theirs.min(theirs2),
            ours.min(ours2) / theirs.min(theirs2)
        );
    }
}
