//! Elementwise update rules on plain slices. Each follows dfdx 0.13's CPU kernel operation for
//! operation (same f32 constants, same order), so results are bit-identical to dfdx's
//! optimizers; being elementwise, they are also independent of how work is split across threads.
//!
//! Every kernel turns the gradient buffer `g` into the step to subtract from the parameters
//! (`p -= g` is applied afterwards), updating its state slots in place.

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

/// Applies weight decay's part before the update rule (`g += wd * p`, L2) or after it
/// (`g += wd * lr * p`, decoupled). As separate passes they round exactly as dfdx's fused loops
/// do, and the update loops stay free of branches.
pub fn decay_before(decay: Decay, p: Option<&[f32]>, g: &mut [f32]) {
    if let (Decay::L2(wd), Some(p)) = (decay, p) {
        add_scaled(g, p, wd);
    }
}

/// See [`decay_before`].
pub fn decay_after(decay: Decay, p: Option<&[f32]>, g: &mut [f32]) {
    if let (Decay::Decoupled(wd_lr), Some(p)) = (decay, p) {
        add_scaled(g, p, wd_lr);
    }
}

fn add_scaled(g: &mut [f32], p: &[f32], s: f32) {
    g.par_chunks_mut(CHUNK)
        .zip(p.par_chunks(CHUNK))
        .for_each(|(g, p)| g.iter_mut().zip(p).for_each(|(g, p)| *g += s * p));
}

/// Adam (AdamW when [`decay_after`] adds decoupled decay): slots are the first and second
/// moments.
pub fn adam(k: &AdamStep, g: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    let one = 1.0f32;
    g.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|((g, m), v)| {
            for ((g, m), v) in g.iter_mut().zip(m).zip(v) {
                *m = *m * k.beta1 + *g * (one - k.beta1);
                *v = *v * k.beta2 + g.powi(2) * (one - k.beta2);
                let m_hat = *m * k.correction1;
                let v_hat = *v * k.correction2;
                *g = k.lr * m_hat / (v_hat.sqrt() + k.eps);
            }
        });
}

/// SGD momentum variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Momentum {
    None,
    Classic(f32),
    Nesterov(f32),
}

/// SGD: the slot is the velocity (left untouched without momentum).
pub fn sgd(lr: f32, momentum: Momentum, g: &mut [f32], vel: &mut [f32]) {
    g.par_chunks_mut(CHUNK)
        .zip(vel.par_chunks_mut(CHUNK))
        .for_each(|(g, vel)| {
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
        });
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
pub fn rmsprop(
    k: &RmsStep,
    g: &mut [f32],
    square_avg: &mut [f32],
    grad_avg: &mut [f32],
    mom: &mut [f32],
) {
    let one = 1.0f32;
    g.par_chunks_mut(CHUNK)
        .zip(square_avg.par_chunks_mut(CHUNK))
        .zip(grad_avg.par_chunks_mut(CHUNK))
        .zip(mom.par_chunks_mut(CHUNK))
        .for_each(|(((g, sa), ga), m)| {
            for (((g, sa), ga), m) in g.iter_mut().zip(sa).zip(ga).zip(m) {
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
        });
}
