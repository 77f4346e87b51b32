//! RMSprop (PyTorch's form: `eps` inside the square root, as in dfdx), except that the squared
//! average starts at one, as in dfdx and TensorFlow 1.

use super::rule::{Decay, Rule};

#[derive(Debug, Clone, Copy)]
pub struct RmsProp {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
    pub momentum: Option<f32>,
    pub centered: bool,
    pub decay: Decay,
}

impl Rule for RmsProp {
    /// The squared-gradient average, the gradient average (centered only) and the momentum
    /// buffer.
    fn slots(&self) -> &'static [&'static str] {
        &["square_avg", "grad_avg", "momentum"]
    }

    fn decay(&self) -> Decay {
        self.decay
    }

    fn first_update(&self, slots: &mut [&mut [f32]]) {
        slots[0].fill(1.0);
    }

    fn step(&self, g: &mut [f32], slots: &mut [&mut [f32]]) {
        let [square_avg, grad_avg, mom] = slots else {
            unreachable!()
        };
        rmsprop(self, g, square_avg, grad_avg, mom);
    }
}

/// Each buffer its own argument, never inlined, so that the loop vectorizes (see adam.rs).
#[inline(never)]
fn rmsprop(
    k: &RmsProp,
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
