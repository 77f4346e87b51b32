//! Conv2D against a direct-loop reference and against finite differences.

use super::cpu::{self, naive, Geometry};
use super::*;
use crate::ops::Maps;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// max |a - b| / max |b|: the error relative to the reference's scale.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs() as f64))
        .max(1e-12);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs() as f64))
        / scale
}

/// Shapes covering batch 1, one channel, odd sizes, kernels 3, 5 and 7, both paddings, and a
/// batch of 12 on 14x14 maps: three parallel chunks of images, the last one short.
fn geometries() -> Vec<Geometry> {
    let mut v = Vec::new();
    for &(batch, h, w, cin, cout) in &[
        (1, 5, 5, 1, 1),
        (2, 7, 9, 3, 4),
        (3, 11, 6, 2, 5),
        (1, 28, 28, 1, 8),
        (4, 14, 14, 8, 16),
        (12, 14, 14, 2, 4),
    ] {
        for k in [3, 5, 7] {
            for pad in [k / 2, 0] {
                let g = Geometry {
                    batch,
                    h,
                    w,
                    cin,
                    cout,
                    k,
                    pad,
                };
                if g.out_hw().is_some() {
                    v.push(g);
                }
            }
        }
    }
    v
}

#[test]
fn im2col_kernels_match_the_direct_loops() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (mut worst_fwd, mut worst_bwd) = (0.0f64, 0.0f64);
    for g in geometries() {
        let (oh, ow) = g.out_hw().unwrap();
        let x = random(g.batch * g.h * g.w * g.cin, &mut rng);
        let w = random(g.cout * g.k * g.k * g.cin, &mut rng);
        let b = random(g.cout, &mut rng);
        let mut out = vec![0.0; g.batch * oh * ow * g.cout];
        cpu::forward(&g, &x, &w, &b, &mut out);
        let e = rel_err(&out, &naive::forward(&g, &x, &w, &b));
        assert!(e < 1e-5, "{g:?}: forward error {e}");
        worst_fwd = worst_fwd.max(e);

        let gy = random(out.len(), &mut rng);
        // Accumulation: start the gradients at 1 and check they are added to, not replaced.
        let (mut gx, mut gw, mut gb) = (vec![1.0; x.len()], vec![1.0; w.len()], vec![1.0; b.len()]);
        cpu::backward(&g, &x, &w, &gy, Some(&mut gx), &mut gw, &mut gb);
        let (rx, rw, rb) = naive::backward(&g, &x, &w, &gy);
        let shift = |v: Vec<f32>| v.into_iter().map(|x| x + 1.0).collect::<Vec<_>>();
        for (name, got, want) in [
            ("x", gx, shift(rx)),
            ("weight", gw, shift(rw)),
            ("bias", gb, shift(rb)),
        ] {
            let e = rel_err(&got, &want);
            assert!(e < 1e-5, "{g:?}: grad {name} error {e}");
            worst_bwd = worst_bwd.max(e);
        }
    }
    eprintln!("conv2d vs direct loops: largest relative error forward {worst_fwd:.2e}, backward {worst_bwd:.2e}");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let g = Geometry {
        batch: 9,
        h: 14,
        w: 14,
        cin: 8,
        cout: 16,
        k: 5,
        pad: 2,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let x = random(g.batch * g.h * g.w * g.cin, &mut rng);
    let w = random(g.cout * g.k * g.k * g.cin, &mut rng);
    let gy = random(g.batch * g.h * g.w * g.cout, &mut rng);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (mut gx, mut gw, mut gb) =
                (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; g.cout]);
            cpu::backward(&g, &x, &w, &gy, Some(&mut gx), &mut gw, &mut gb);
            (gx, gw, gb)
        })
    };
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
}

/// Finite differences of `L = sum(conv(x) * r)` (the direct loops, in f64) against the
/// gradients that the module puts on dfdx's tape.
#[test]
fn tape_gradients_match_finite_differences() {
    const I: usize = 2;
    const O: usize = 3;
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (h, w) in [(5usize, 6usize), (7, 7)] {
        check_fd::<5, 2>(&dev, &mut rng, h, w);
        check_fd::<3, 0>(&dev, &mut rng, h, w);
    }

    fn check_fd<const K: usize, const P: usize>(
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
        h: usize,
        w: usize,
    ) {
        let batch = 2;
        let mut conv: Conv2D<I, O, K, P> = Conv2D::build(dev);
        conv.weight.copy_from(&random(O * K * K * I, rng));
        conv.bias.copy_from(&random(O, rng));
        let xs = random(batch * h * w * I, rng);
        let x: Maps<I> = dev.tensor_from_vec(xs.clone(), (batch, h, w, Const::<I>));
        let y = conv.forward(x.leaky_trace());
        let r = random(y.shape().num_elements(), rng);
        let rt = dev.tensor_from_vec(r.clone(), *y.shape());
        let grads = (y * rt).sum().backward();

        let (g, _) = super::geometry::<I, O, K, P>(&(batch, h, w, Const::<I>));
        let (ws, bs) = (conv.weight.as_vec(), conv.bias.as_vec());
        let loss = |x: &[f32], wt: &[f32], b: &[f32]| -> f64 {
            naive::forward(&g, x, wt, b)
                .iter()
                .zip(&r)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        let eps = 1e-2f32;
        let fd = |which: usize, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    let (mut x, mut wt, mut b) = (xs.clone(), ws.clone(), bs.clone());
                    let v = [&mut x, &mut wt, &mut b][which].get_mut(i).unwrap() as *mut f32;
                    // SAFETY: `v` points into one of the three local vectors, alive here.
                    unsafe { *v += eps };
                    let plus = loss(&x, &wt, &b);
                    // SAFETY: as above; nothing else borrows the vectors between the two writes.
                    unsafe { *v -= 2.0 * eps };
                    let minus = loss(&x, &wt, &b);
                    ((plus - minus) / (2.0 * eps as f64)) as f32
                })
                .collect()
        };
        let errs = [
            ("input", rel_err(&grads.get(&x).as_vec(), &fd(0, xs.len()))),
            (
                "weight",
                rel_err(&grads.get(&conv.weight).as_vec(), &fd(1, ws.len())),
            ),
            (
                "bias",
                rel_err(&grads.get(&conv.bias).as_vec(), &fd(2, bs.len())),
            ),
        ];
        for (name, e) in errs {
            assert!(
                e < 1e-4,
                "K={K} P={P} {h}x{w}: {name} gradient relative error {e}"
            );
        }
        eprintln!("conv2d finite differences K={K} P={P} {h}x{w}: {errs:?}");
    }
}
