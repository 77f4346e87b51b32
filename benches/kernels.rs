//! Micro-benchmarks of the project's kernels on the baseline network's shapes (batch 50), and of
//! the whole training step and test-set evaluation. Prints the median time and GFLOP/s of each.
//!
//!     cargo bench --bench kernels
//!     cargo bench --bench kernels -- --eval experiments/mlp.toml   # any network's evaluation
//!
//! GFLOP/s counts 2 flops per multiply-add of the convolution or GEMM; the first lines measure
//! the machine's peak the same way (independent vector multiply-adds, no memory traffic), since
//! it is not the data sheet's: Zen 4 runs an AVX-512 multiply-add as two 256-bit halves, and
//! clocks move with load.

use rand::SeedableRng;
use runner::config::{self};
use runner::data::mnist::{Source, IMAGE_PIXELS};
use runner::data::Dataset;
use runner::ops::conv2d::cpu::{self as conv, Geometry};
use runner::ops::conv_block;
use runner::ops::pool2d::cpu as pool;
use std::path::Path;
use std::time::Instant;

/// Median wall time of `f` over `reps` runs (after one warm-up run), in milliseconds.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn report(name: &str, ms: f64, flops: f64) {
    if flops > 0.0 {
        println!("{name:34} {ms:9.3} ms {:8.1} GFLOP/s", flops / ms / 1e6);
    } else {
        println!("{name:34} {ms:9.3} ms");
    }
}

fn filled(n: usize, seed: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (i as f32 * 0.618 + seed).sin() * 0.5)
        .collect()
}

/// A layer's input, weights and bias, and the flops of its dense convolution.
fn layer_inputs(g: &Geometry) -> (Vec<f32>, Vec<f32>, Vec<f32>, f64) {
    let (oh, ow) = g.out_hw().unwrap();
    let patch = g.k * g.k * g.cin;
    (
        filled(g.batch * g.h * g.w * g.cin, 0.1),
        filled(g.cout * patch, 0.2),
        filled(g.cout, 0.3),
        2.0 * (g.batch * oh * ow * g.cout * patch) as f64,
    )
}

fn conv_layer(name: &str, g: Geometry) {
    let (x, w, b, flops) = layer_inputs(&g);
    let mut out = vec![0.0; g.batch * g.out_len()];
    report(
        &format!("{name} forward"),
        median_ms(20, || conv::forward(&g, &x, &w, &b, &mut out)),
        flops,
    );
    let gy = filled(out.len(), 0.4);
    let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    report(
        &format!("{name} backward (dx, dw, db)"),
        median_ms(20, || {
            conv::backward(&g, &x, &w, &gy, Some(&mut gx), &mut gw, &mut gb)
        }),
        2.0 * flops,
    );
}

/// The fused block (convolution, pool, ReLU) as the network runs it: on this CPU's vector
/// kernels where they apply. Its backward pass skips the pool's losers, so GFLOP/s there count
/// the dense convolution's flops (what the im2col path computes).
fn block_layer(name: &str, g: Geometry) {
    let (x, w, b, flops) = layer_inputs(&g);
    let mut out = vec![0.0; g.batch * conv_block::pooled_len(&g)];
    let mut arg = vec![0u32; out.len()];
    report(
        &format!("{name} fused forward"),
        median_ms(20, || {
            conv_block::forward(&g, &x, &w, &b, &mut out, Some(&mut arg), true)
        }),
        flops,
    );
    let gy = filled(out.len(), 0.4);
    let (mut gx, mut gw, mut gb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    report(
        &format!("{name} fused backward"),
        median_ms(20, || {
            let gx = (g.cin > 1).then_some(&mut gx[..]);
            conv_block::backward(&g, &x, &w, &arg, &gy, gx, &mut gw, &mut gb)
        }),
        2.0 * flops,
    );
}

/// The baseline's hidden dense layer through dfdx (its matmuls run on gemm 0.19 via the shim in
/// `vendor/`): forward alone, and forward plus backward (input, weight and bias gradients).
fn dense_layer() {
    use dfdx::prelude::*;
    let dev = Cpu::default();
    let layer: dfdx::nn::modules::Linear<3136, 1024, f32, Cpu> = BuildModule::build(&dev);
    let x = dev.tensor_from_vec(filled(50 * 3136, 0.6), (50, Const::<3136>));
    let flops = 2.0 * 50.0 * 3136.0 * 1024.0;
    report(
        "dense 3136->1024 forward",
        median_ms(20, || {
            layer.forward(x.clone());
        }),
        flops,
    );
    let mut grads = layer.alloc_grads();
    report(
        "dense 3136->1024 forward+backward",
        median_ms(20, || {
            let y = layer.forward(x.trace(grads.clone()));
            grads = y.sum().backward();
        }),
        3.0 * flops,
    );
}

/// `iters` rounds of 12 independent 16-lane multiply-add chains (enough in flight to fill two
/// pipes of 4-cycle latency); returns a lane so the work is kept.
///
/// # Safety
/// The CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains_512(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    acc.iter().map(|&x| _mm512_reduce_add_ps(x)).sum()
}

/// [`fma_chains_512`] with 8-lane AVX2 vectors.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains_256(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(1.0); 12];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    for x in acc {
        let mut v = [0.0f32; 8];
        // SAFETY: `v` has room for the 8 lanes stored.
        unsafe { _mm256_storeu_ps(v.as_mut_ptr(), x) };
        lanes.iter_mut().zip(v).for_each(|(l, v)| *l += v);
    }
    lanes.iter().sum()
}

/// The multiply-add peak on one thread and on every rayon thread, per instruction set the CPU has.
#[cfg(target_arch = "x86_64")]
fn fma_peak() {
    const ITERS: usize = 2_000_000;
    let threads = rayon::current_num_threads() as f64;
    let probe = |name: &str, lanes: f64, f: fn(usize) -> f32| {
        let flops = 2.0 * lanes * 12.0 * ITERS as f64;
        let one = median_ms(5, || {
            std::hint::black_box(f(ITERS));
        });
        report(&format!("peak FMA {name}, 1 thread"), one, flops);
        let all = median_ms(5, || {
            std::hint::black_box(rayon::broadcast(|_| f(ITERS)));
        });
        report(
            &format!("peak FMA {name}, all threads"),
            all,
            flops * threads,
        );
    };
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked above).
        probe("AVX-512", 16.0, |n| unsafe { fma_chains_512(n) });
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        probe("AVX2", 8.0, |n| unsafe { fma_chains_256(n) });
    }
}

fn main() {
    // `cargo test --all-targets` runs bench targets too (without `--bench`): skip the work there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("kernels: run with `cargo bench --bench kernels`");
        return;
    }
    runner::malloc::tune();
    runner::pool::install();
    println!("{} rayon threads", rayon::current_num_threads());
    if let Some(at) = std::env::args().position(|a| a == "--eval") {
        let file = std::env::args()
            .nth(at + 1)
            .expect("--eval EXPERIMENT.toml");
        return evaluation(Path::new(&file));
    }
    #[cfg(target_arch = "x86_64")]
    fma_peak();
    let geometry = |h, cin, cout| Geometry {
        batch: 50,
        h,
        w: h,
        cin,
        cout,
        k: 5,
        pad: 2,
    };
    conv_layer("conv1 28x28x1->32", geometry(28, 1, 32));
    conv_layer("conv2 14x14x32->64", geometry(14, 32, 64));
    block_layer("block1 28x28x1->32", geometry(28, 1, 32));
    block_layer("block2 14x14x32->64", geometry(14, 32, 64));
    dense_layer();
    // Caffe's LeNet: 'valid' 5x5 blocks on channels that are not whole vectors (im2col path).
    let valid = |h, cin, cout| Geometry {
        pad: 0,
        ..geometry(h, cin, cout)
    };
    block_layer("lenet-caffe block1 28x28x1->20", valid(28, 1, 20));
    block_layer("lenet-caffe block2 12x12x20->50", valid(12, 20, 50));
    for (h, c) in [(28, 32), (14, 64)] {
        let x = filled(50 * h * h * c, 0.5);
        let mut out = vec![0.0; 50 * (h / 2) * (h / 2) * c];
        let mut arg = vec![0u32; out.len()];
        report(
            &format!("pool {h}x{h}x{c} forward"),
            median_ms(20, || pool::forward(&x, (50, h, h, c), &mut out, &mut arg)),
            0.0,
        );
        let mut gx = vec![0.0; x.len()];
        report(
            &format!("pool {h}x{h}x{c} backward"),
            median_ms(20, || pool::backward(&arg, &out, h * h * c, &mut gx)),
            0.0,
        );
    }

    // The whole step and evaluation, through the same code `runner run` uses.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exp = config::load(&root.join("experiments/baseline.toml"), &[]).expect("baseline config");
    let data = Dataset::load(&Source::for_config(&exp.data)).expect("vendored MNIST");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut model = runner::models::build(&exp, &mut rng).expect("baseline network");
    let mut opt = runner::optim::Optimizer::new(&exp.optimizer);
    let batch = exp.train.batch_size;
    let mut images = vec![0.0f32; batch * IMAGE_PIXELS];
    for (i, chunk) in images.chunks_exact_mut(IMAGE_PIXELS).enumerate() {
        data.train.write_image(i, chunk);
    }
    let labels = data.train.labels[..batch].to_vec();
    let step_flops = 3.0 * 50.0 * 27.7e6; // forward ~27.7 MFLOP per image; backward twice that
    report(
        "train step (batch 50)",
        median_ms(30, || {
            let step = opt.steps() + 1;
            model
                .train_step(&mut opt, step, images.clone(), &labels)
                .unwrap();
        }),
        step_flops,
    );
    report(
        "evaluate 10,000 test images",
        median_ms(3, || {
            runner::train::evaluate(model.as_ref(), &data.test).unwrap();
        }),
        10_000.0 * 27.7e6,
    );
}

/// Test-set evaluation of `file`'s network (freshly initialised): the first call and the median
/// and fastest of 14 more, as `runner run` evaluates. On a shared machine, compare builds by
/// alternating runs of this.
fn evaluation(file: &Path) {
    let exp = config::load(file, &[]).expect("experiment file");
    let data = Dataset::load(&Source::for_config(&exp.data)).expect("dataset");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let model = runner::models::build(&exp, &mut rng).expect("a network compiled in");
    let mut ms: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            runner::train::evaluate(model.as_ref(), &data.test).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let first = ms.remove(0);
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!(
        "evaluate {}: first {first:.1} ms, median {median:.1} ms ({:.0} img/s), fastest {:.1} ms",
        file.display(),
        data.test.len() as f64 / median * 1e3,
        ms[0]
    );
}
