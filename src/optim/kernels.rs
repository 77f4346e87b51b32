//! Elementwise update rules on plain slices. Each follows dfdx 0.13's CPU kernel operation for
//! operation (same f32 constants, same order), so results are bit-identical to dfdx's
//! optimizers; being elementwise, they are also independent of how work is split across threads.
//!
//! Each rule turns the gradient buffer `g` into the step to subtract from the parameters,
//! updating its state slots in place; [`update`] runs a rule and applies its step.

use rayon::prelude::*;

/// Elements per parallel task: big enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;

/// Weight decay as dfdx applies it: `L2` adds `wd * p` to the gradient; `Decoupled` adds
/// `wd * lr * p` to the step (AdamW).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    None,
    L2(f32),
    Decoupled(f32),
}

impl Decay {
    /// `Decoupled` carries `wd * lr`, multiplied in f64 as dfdx does.
    pub fn decoupled(wd: f64, lr: f64) -> Decay {
        if wd > 0.0 {
            Decay::Decoupled((wd * lr) as f32)
        } else {
            Decay::None
        }
    }

    pub fn l2(wd: f64) -> Decay {
        if wd > 0.0 {
            Decay::L2(wd as f32)
        } else {
            Decay::None
        }
    }
}

/// Adam hyperparameters for one step `t` (1-based), bias corrections precomputed.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `1 / (1 - beta1^t)`
    pub correction1: f32,
    /// `1 / (1 - beta2^t)`
    pub correction2: f32,
}

impl AdamStep {
    pub fn new(lr: f64, betas: [f64; 2], eps: f64, t: i32) -> Self {
        let (beta1, beta2) = (betas[0] as f32, betas[1] as f32);
        AdamStep {
            lr: lr as f32,
            beta1,
            beta2,
            eps: eps as f32,
            correction1: (1.0 - beta1.powi(t)).recip(),
            correction2: (1.0 - beta2.powi(t)).recip(),
        }
    }
}

/// What one update computes from the gradient, before `p -= step`.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    Adam(AdamStep),
    Sgd { lr: f32, momentum: Momentum },
    RmsProp(RmsStep),
}

/// Updates one parameter in place: weight decay, the rule's step (updating its state `slots`),
/// `p -= step`, and `g = 0` ready for the next backward pass. One parallel pass over fixed
/// chunks, each cache-resident while its sub-passes run: the update is memory-bound, and this
/// reads and writes every buffer once. Every element's arithmetic is independent of the others,
/// so the split does not change results.
pub fn update(rule: Rule, decay: Decay, p: &mut [f32], g: &mut [f32], slots: &mut [&mut [f32]]) {
    assert_eq!(p.len(), g.len());
    assert!(slots.iter().all(|s| s.len() == p.len()));
    let mut slot_chunks: Vec<_> = slots.iter_mut().map(|s| s.chunks_mut(CHUNK)).collect();
    let work: Vec<_> = p
        .chunks_mut(CHUNK)
        .zip(g.chunks_mut(CHUNK))
        .map(|(p, g)| {
            let slots: Vec<&mut [f32]> = slot_chunks.iter_mut().flat_map(|c| c.next()).collect();
            (p, g, slots)
        })
        .collect();
    work.into_par_iter()
        .for_each(|(p, g, mut slots)| update_chunk(rule, decay, p, g, &mut slots));
}

/// Weight decay as dfdx applies it (`g += wd * p` before the rule, `g += wd * lr * p` after it),
/// as separate passes: they round exactly as dfdx's fused loops do, and the rule's loops stay
/// free of branches.
fn update_chunk(rule: Rule, decay: Decay, p: &mut [f32], g: &mut [f32], slots: &mut [&mut [f32]]) {
    if let (Rule::Adam(k), Decay::None, [m, v]) = (rule, decay, &mut *slots) {
        return adam_in_place(&k, p, g, m, v);
    }
    if let Decay::L2(wd) = decay {
        add_scaled(g, p, wd);
    }
    match (rule, slots) {
        (Rule::Adam(k), [m, v]) => adam(&k, g, m, v),
        (Rule::Sgd { lr, momentum }, [vel]) => sgd(lr, momentum, g, vel),
        (Rule::RmsProp(k), [sa, ga, mom]) => rmsprop(&k, g, sa, ga, mom),
        _ => unreachable!("one slot per state buffer of the rule"),
    }
    if let Decay::Decoupled(wd_lr) = decay {
        add_scaled(g, p, wd_lr);
    }
    for (p, g) in p.iter_mut().zip(g) {
        *p -= *g;
        *g = 0.0;
    }
}

fn add_scaled(g: &mut [f32], p: &[f32], s: f32) {
    g.iter_mut().zip(p).for_each(|(g, p)| *g += s * p);
}

/// Adam (AdamW when [`decay_after`] adds decoupled decay): slots are the first and second
/// moments.
fn adam(k: &AdamStep, g: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    let one = 1.0f32;
    for ((g, m), v) in g.iter_mut().zip(m).zip(v) {
        *m = *m * k.beta1 + *g * (one - k.beta1);
        *v = *v * k.beta2 + g.powi(2) * (one - k.beta2);
        let m_hat = *m * k.correction1;
        let v_hat = *v * k.correction2;
        *g = k.lr * m_hat / (v_hat.sqrt() + k.eps);
    }
}

/// [`adam`], then `p -= step` and `g = 0`, in one pass: Adam without weight decay (the common
/// case) reads and writes each buffer once instead of twice. The same operations per element.
fn adam_in_place(k: &AdamStep, p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    let one = 1.0f32;
    for (((p, g), m), v) in p.iter_mut().zip(g.iter_mut()).zip(m).zip(v) {
        *m = *m * k.beta1 + *g * (one - k.beta1);
        *v = *v * k.beta2 + g.powi(2) * (one - k.beta2);
        let m_hat = *m * k.correction1;
        let v_hat = *v * k.correction2;
        *p -= k.lr * m_hat / (v_hat.sqrt() + k.eps);
        *g = 0.0;
    }
}

/// SGD momentum variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Momentum {
    None,
    Classic(f32),
    Nesterov(f32),
}

/// SGD: the slot is the velocity (left untouched without momentum).
fn sgd(lr: f32, momentum: Momentum, g: &mut [f32], vel: &mut [f32]) {
    let pairs = g.iter_mut().zip(vel);
    match momentum {
        Momentum::Classic(u) => pairs.for_each(|(g, v)| {
            *v = *g + u * *v;
            *g = *v * lr;
        }),
        Momentum::Nesterov(u) => pairs.for_each(|(g, v)| {
            *v = *g + u * *v;
            *g = (*g + u * *v) * lr;
        }),
        Momentum::None => pairs.for_each(|(g, _)| *g *= lr),
    }
}

/// RMSprop hyperparameters (PyTorch's form: `eps` inside the square root, as in dfdx).
#[derive(Debug, Clone, Copy)]
pub struct RmsStep {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
    pub momentum: Option<f32>,
    pub centered: bool,
    pub decay: Decay,
}

/// RMSprop: slots are the squared-gradient average, the gradient average (centered only) and
/// the momentum buffer.
fn rmsprop(
    k: &RmsStep,
    g: &mut [f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    mom: &mut [f32],
) {
    let one = 1.0f32;
    for (((g, sa), ga), m) in g.iter_mut().zip(square_avg).zip(grad_avg).zip(mom) {
        *sa += (one - k.alpha) * (*g * *g - *sa);
        let avg = if k.centered {
            *ga += (one - k.alpha) * (*g - *ga);
            (*sa - ga.powi(2) + k.eps).sqrt()
        } else {
            (*sa + k.eps).sqrt()
        };
        *g /= avg;
        match k.momentum {
            Some(u) => {
                *m = *m * u + *g;
                *g = *m * k.lr;
            }
            None => *g *= k.lr,
        }
    }
}
