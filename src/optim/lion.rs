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
        let one = 1.0f32;
        for (g, m) in g.iter_mut().zip(m.iter_mut()) {
            let c = *m * self.beta1 + *g * (one - self.beta1);
            *m = *m * self.beta2 + *g * (one - self.beta2);
            // torch.sign: 0 stays 0 and NaN stays NaN (f32::signum would give 1 and NaN).
            let sign = if c > 0.0 {
                one
            } else if c < 0.0 {
                -one
            } else {
                c
            };
            *g = self.lr * sign;
        }
    }
}
