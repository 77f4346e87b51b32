//! Adam with bias correction (PyTorch's form), and AdamW through [`Decay::Decoupled`].

use super::rule::{Decay, Rule};

/// Adam's hyperparameters for one step `t` (1-based), bias corrections precomputed.
#[derive(Debug, Clone, Copy)]
pub struct Adam {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// `1 / (1 - beta1^t)`
    pub correction1: f32,
    /// `1 / (1 - beta2^t)`
    pub correction2: f32,
    pub decay: Decay,
}

impl Adam {
    pub fn new(lr: f64, betas: [f64; 2], eps: f64, t: i32, decay: Decay) -> Self {
        let (beta1, beta2) = (betas[0] as f32, betas[1] as f32);
        Adam {
            lr: lr as f32,
            beta1,
            beta2,
            eps: eps as f32,
            correction1: (1.0 - beta1.powi(t)).recip(),
            correction2: (1.0 - beta2.powi(t)).recip(),
            decay,
        }
    }
}

impl Rule for Adam {
    /// The first and second moments.
    fn slots(&self) -> &'static [&'static str] {
        &["m", "v"]
    }

    fn decay(&self) -> Decay {
        self.decay
    }

    fn step(&self, g: &mut [f32], slots: &mut [&mut [f32]]) {
        let [m, v] = slots else { unreachable!() };
        adam(self, g, m, v);
    }

    /// Adam without weight decay (the common case) reads and writes each buffer once instead
    /// of twice. The same operations per element as [`Rule::step`] then `p -= step`.
    fn fused(&self, p: &mut [f32], g: &mut [f32], slots: &mut [&mut [f32]]) -> bool {
        let [m, v] = slots else { unreachable!() };
        adam_in_place(self, p, g, m, v);
        true
    }
}

// The loops are functions of their own, never inlined, taking every buffer as its own
// `&mut [f32]` argument: the compiler then knows the buffers do not overlap and vectorizes the
// loop. Inlined into the `Rule` methods, which reach the buffers through `slots`, the MLP's
// training step was 8-13 % slower (bench/ab.py, 1500 steps).

#[inline(never)]
fn adam(k: &Adam, g: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    let one = 1.0f32;
    for ((g, m), v) in g.iter_mut().zip(m).zip(v) {
        *m = *m * k.beta1 + *g * (one - k.beta1);
        *v = *v * k.beta2 + g.powi(2) * (one - k.beta2);
        let m_hat = *m * k.correction1;
        let v_hat = *v * k.correction2;
        *g = k.lr * m_hat / (v_hat.sqrt() + k.eps);
    }
}

#[inline(never)]
fn adam_in_place(k: &Adam, p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32]) {
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
