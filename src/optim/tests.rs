//! The project's optimizers against dfdx's own, update for update, bit for bit.

use super::*;
use crate::ops::params;
use dfdx::optim::{Adam, Momentum as DfdxMomentum, Optimizer as _, RMSprop, Sgd, WeightDecay};

type Arch = (Linear<6, 5>, ReLU, Linear<5, 3>);
type Model = <Arch as BuildOnDevice<Cpu, f32>>::Built;
const STEPS: usize = 12;

fn model(dev: &Cpu) -> Model {
    let mut m: Model = dev.build_module::<Arch, f32>();
    let mut k = 0.0f32;
    params::write(&mut m, &mut |_, n| {
        Ok((0..n)
            .map(|_| {
                k += 1.0;
                (k * 0.731).sin() * 0.5
            })
            .collect())
    })
    .unwrap();
    m
}

/// Gradients of a fixed loss on step-dependent inputs.
fn grads(dev: &Cpu, m: &Model, step: usize) -> Gradients<f32, Cpu> {
    let x: Vec<f32> = (0..4 * 6)
        .map(|i| ((i * 7 + step * 13) as f32 * 0.37).cos())
        .collect();
    let x = dev.tensor_from_vec(x, (Const::<4>, Const::<6>));
    let y = m.forward(x.leaky_trace());
    (y.square().mean() + 0.1).backward()
}

/// Trains two copies, one with dfdx's optimizer and one with ours, asserting identical bits.
fn check(cfg: OptimizerConfig, mut theirs: impl FnMut(&mut Model, &Gradients<f32, Cpu>)) {
    let dev = Cpu::default();
    let (mut a, mut b) = (model(&dev), model(&dev));
    let mut ours = Optimizer::new(&cfg);
    for step in 0..STEPS {
        let ga = grads(&dev, &a, step);
        theirs(&mut a, &ga);
        let mut gb = grads(&dev, &b, step);
        ours.update(&mut b, &mut gb).unwrap();
        let (pa, pb) = (params::read(&a), params::read(&b));
        for (ta, tb) in pa.iter().zip(&pb) {
            let bits = |t: &NamedTensor| t.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(ta),
                bits(tb),
                "{cfg:?}: {} differs at step {step}",
                ta.name
            );
        }
        assert!(pa.iter().any(|t| t.data.iter().any(|&x| x != 0.0)));
    }
    assert_eq!(ours.steps(), STEPS as u64);
}

fn adam(lr: f64, weight_decay: f64) -> OptimizerConfig {
    OptimizerConfig::Adam {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-7,
        weight_decay,
    }
}

#[test]
fn adam_matches_dfdx() {
    for wd in [0.0, 0.05] {
        let cfg = adam(1e-2, wd);
        let dev = Cpu::default();
        let mut opt = Adam::new(
            &model(&dev),
            AdamConfig {
                lr: 1e-2,
                betas: [0.9, 0.999],
                eps: 1e-7,
                weight_decay: (wd > 0.0).then_some(WeightDecay::L2(wd)),
            },
        );
        check(cfg, |m, g| opt.update(m, g).unwrap());
    }
}

#[test]
fn adamw_matches_dfdx_decoupled_decay() {
    let cfg = OptimizerConfig::Adamw {
        lr: 3e-3,
        beta1: 0.8,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let dev = Cpu::default();
    let mut opt = Adam::new(
        &model(&dev),
        AdamConfig {
            lr: 3e-3,
            betas: [0.8, 0.99],
            eps: 1e-8,
            weight_decay: Some(WeightDecay::Decoupled(0.1)),
        },
    );
    check(cfg, |m, g| opt.update(m, g).unwrap());
}

#[test]
fn sgd_variants_match_dfdx() {
    for (momentum, nesterov, wd) in [
        (0.0, false, 0.0),
        (0.9, false, 0.0),
        (0.9, true, 0.0),
        (0.5, false, 0.01),
    ] {
        let cfg = OptimizerConfig::Sgd {
            lr: 0.05,
            momentum,
            nesterov,
            weight_decay: wd,
        };
        let dev = Cpu::default();
        let mut opt = Sgd::new(
            &model(&dev),
            SgdConfig {
                lr: 0.05,
                momentum: match (momentum > 0.0, nesterov) {
                    (false, _) => None,
                    (true, false) => Some(DfdxMomentum::Classic(momentum)),
                    (true, true) => Some(DfdxMomentum::Nesterov(momentum)),
                },
                weight_decay: (wd > 0.0).then_some(WeightDecay::L2(wd)),
            },
        );
        check(cfg, |m, g| opt.update(m, g).unwrap());
    }
}

#[test]
fn rmsprop_variants_match_dfdx() {
    for (momentum, centered, wd) in [(0.0, false, 0.0), (0.9, true, 0.0), (0.5, false, 0.02)] {
        let cfg = OptimizerConfig::Rmsprop {
            lr: 1e-3,
            alpha: 0.95,
            eps: 1e-6,
            momentum,
            centered,
            weight_decay: wd,
        };
        let dev = Cpu::default();
        let mut opt = RMSprop::new(
            &model(&dev),
            RMSpropConfig {
                lr: 1e-3,
                alpha: 0.95,
                eps: 1e-6,
                momentum: (momentum > 0.0).then_some(momentum),
                centered,
                weight_decay: (wd > 0.0).then_some(WeightDecay::L2(wd)),
            },
        );
        check(cfg, |m, g| opt.update(m, g).unwrap());
    }
}

/// Export after some steps, import into a fresh optimizer and model, and carry on: the result
/// must equal an uninterrupted run.
#[test]
fn export_then_import_continues_exactly() {
    let dev = Cpu::default();
    let cfg = adam(1e-2, 0.0);
    let (mut straight, mut first) = (model(&dev), model(&dev));
    let mut opt_straight = Optimizer::new(&cfg);
    let mut opt_first = Optimizer::new(&cfg);
    for step in 0..5 {
        let mut g = grads(&dev, &straight, step);
        opt_straight.update(&mut straight, &mut g).unwrap();
        let mut g = grads(&dev, &first, step);
        opt_first.update(&mut first, &mut g).unwrap();
    }
    let state = opt_first.export(&first).unwrap();
    assert_eq!(state.len(), 4 * 2, "two slots for each of four tensors");
    let weights = params::read(&first);
    let mut second = dev.build_module::<Arch, f32>();
    let lookup = |list: &[NamedTensor], name: &str, n: usize| {
        let t = list
            .iter()
            .find(|t| t.name == name)
            .ok_or(name.to_string())?;
        assert_eq!(t.data.len(), n);
        Ok(t.data.clone())
    };
    params::write(&mut second, &mut |name, n| lookup(&weights, name, n)).unwrap();
    let mut opt_second = Optimizer::new(&cfg);
    opt_second
        .import(&second, 5, &mut |name, n| lookup(&state, name, n))
        .unwrap();
    for step in 5..10 {
        let mut g = grads(&dev, &straight, step);
        opt_straight.update(&mut straight, &mut g).unwrap();
        let mut g = grads(&dev, &second, step);
        opt_second.update(&mut second, &mut g).unwrap();
    }
    assert_eq!(params::read(&straight), params::read(&second));

    let missing = Optimizer::new(&cfg).import(&second, 5, &mut |name, _| Err(name.to_string()));
    assert_eq!(missing.unwrap_err(), "0.weight.m");
}

/// Training relies on `update` to zero every gradient for the next backward pass (it no longer
/// calls dfdx's `zero_grads`), under every rule and decay.
#[test]
fn update_leaves_every_gradient_zeroed() {
    let dev = Cpu::default();
    let sgd = OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.01,
    };
    let rmsprop = OptimizerConfig::Rmsprop {
        lr: 1e-3,
        alpha: 0.95,
        eps: 1e-6,
        momentum: 0.5,
        centered: true,
        weight_decay: 0.0,
    };
    for cfg in [adam(1e-2, 0.0), adam(1e-2, 0.05), sgd, rmsprop] {
        let mut m = model(&dev);
        let mut opt = Optimizer::new(&cfg);
        for step in 0..2 {
            let mut g = grads(&dev, &m, step);
            assert!(g.get(&m.0.weight).as_vec().iter().any(|&x| x != 0.0));
            opt.update(&mut m, &mut g).unwrap();
            let left = [
                g.get(&m.0.weight).as_vec(),
                g.get(&m.0.bias).as_vec(),
                g.get(&m.2.weight).as_vec(),
                g.get(&m.2.bias).as_vec(),
            ];
            assert!(left.iter().flatten().all(|&x| x == 0.0), "{cfg:?}");
        }
    }
}

/// The update works on the parameters themselves: a value written between updates (a reset,
/// a test) is where the next update starts, as with dfdx's optimizer, bit for bit.
#[test]
fn a_parameter_written_between_updates_is_where_the_next_update_starts() {
    let dev = Cpu::default();
    let (mut a, mut b) = (model(&dev), model(&dev));
    let mut theirs = Adam::new(
        &a,
        AdamConfig {
            lr: 1e-2,
            betas: [0.9, 0.999],
            eps: 1e-7,
            weight_decay: None,
        },
    );
    let mut ours = Optimizer::new(&adam(1e-2, 0.0));
    for step in 0..3 {
        if step == 2 {
            a.0.bias.copy_from(&[0.5; 5]);
            b.0.bias.copy_from(&[0.5; 5]);
        }
        let (ga, mut gb) = (grads(&dev, &a, step), grads(&dev, &b, step));
        theirs.update(&mut a, &ga).unwrap();
        ours.update(&mut b, &mut gb).unwrap();
    }
    let bits = |m: &Model| {
        params::read(m)
            .into_iter()
            .flat_map(|t| t.data.into_iter().map(f32::to_bits))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(&a), bits(&b));
    assert!(a.0.bias.as_vec().iter().all(|&x| (x - 0.5).abs() < 0.05));
}

/// Lion against lion-pytorch's update written out in f64, in its own order: `p *= 1 - lr * wd`,
/// `p -= lr * sign(beta1 * m + (1 - beta1) * g)`, `m = beta2 * m + (1 - beta2) * g`.
#[test]
fn lion_follows_lion_pytorch() {
    let (lr, beta1, beta2) = (0.01f64, 0.9f64, 0.99f64);
    for wd in [0.0, 0.1] {
        let cfg = OptimizerConfig::Lion {
            lr,
            beta1,
            beta2,
            weight_decay: wd,
        };
        let rule = rule_for(&cfg, 1);
        assert_eq!(rule.slots(), ["exp_avg"]);
        let n = 1000;
        let mut p: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37).sin()).collect();
        let mut m = vec![0.0f32; n];
        let (mut p_ref, mut m_ref): (Vec<f64>, Vec<f64>) =
            (p.iter().map(|&x| x as f64).collect(), vec![0.0; n]);
        for step in 0..20 {
            let g: Vec<f32> = (0..n)
                .map(|i| ((i * 7 + step * 13) as f32 * 0.11).cos() + 0.3)
                .collect();
            let mut g_ours = g.clone();
            rule::update(
                &*rule_for(&cfg, step as i32 + 1),
                &mut p,
                &mut g_ours,
                &mut [&mut m],
            );
            assert!(
                g_ours.iter().all(|&x| x == 0.0),
                "gradients are left zeroed"
            );
            for i in 0..n {
                let g = g[i] as f64;
                p_ref[i] *= 1.0 - lr * wd;
                let c = beta1 * m_ref[i] + (1.0 - beta1) * g;
                p_ref[i] -= lr
                    * if c > 0.0 {
                        1.0
                    } else if c < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                m_ref[i] = beta2 * m_ref[i] + (1.0 - beta2) * g;
            }
            for i in 0..n {
                assert!(
                    (p[i] as f64 - p_ref[i]).abs() < 1e-5,
                    "wd {wd} step {step} p[{i}]"
                );
                assert!(
                    (m[i] as f64 - m_ref[i]).abs() < 1e-5,
                    "wd {wd} step {step} m[{i}]"
                );
            }
        }
    }
    // A known value: p = 1, g = 0.5, m = 0, lr = 0.1: c = 0.05 > 0, so p = 0.9; m = 0.005.
    let one_step = lion::Lion {
        lr: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        decay: Decay::None,
    };
    let (mut p, mut g, mut m) = ([1.0f32], [0.5f32], [0.0f32]);
    rule::update(&one_step, &mut p, &mut g, &mut [&mut m]);
    assert_eq!(p[0], 0.9);
    assert!((m[0] - 0.005).abs() < 1e-8, "{}", m[0]);
}
