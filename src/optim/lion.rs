//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), as lion-pytorch
//! computes it: the step is `lr * sign(beta1 * m + (1 - beta1) * g)`, then
//! `m = beta2 * m + (1 - beta2) * g`; weight decay is decoupled (`p *= 1 - lr * wd`, here added
//! to the step as `lr * wd * p`).

use super::rule::{Decay, Rule};

#[derive(Debug, Clone, Copy)]
pub struct Lion {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub decay: Decay,
}

impl Rule for Lion {
    /// The moving average of the gradient (lion-pytorch's `exp_avg`).
    fn slots(&self) -> &'static [&'static str] {
        &["exp_avg"]
    }

    fn decay(&self) -> Decay {
        self.decay
    }

    fn step(&self, g: &mut [f32], slots: &mut [&mut [f32]]) {
        let [m] = slots else { unreachable!() };
        lion(self, g, m);
    }
}

/// Each buffer its own argument, never inlined, so that the loop vectorizes (see adam.rs).
#[inline(never)]
fn lion(k: &Lion, g: &mut [f32], m: &mut [f32]) {
    let one = 1.0f32;
    for (g, m) in g.iter_mut().zip(m) {
        let c = *m * k.beta1 + *g * (one - k.beta1);
        *m = *m * k.beta2 + *g * (one - k.beta2);
        // torch.sign: 0 stays 0 and NaN stays NaN (f32::signum would give 1 and NaN).
        let sign = if c > 0.0 {
            one
        } else if c < 0.0 {
            -one
        } else {
            c
        };
        *g = k.lr * sign;
    }
}
