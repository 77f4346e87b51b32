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
        let one = 1.0f32;
        let elements = g
            .iter_mut()
            .zip(square_avg.iter_mut())
            .zip(grad_avg.iter_mut())
            .zip(mom.iter_mut());
        for (((g, sa), ga), m) in elements {
            *sa += (one - self.alpha) * (*g * *g - *sa);
            let avg = if self.centered {
                *ga += (one - self.alpha) * (*g - *ga);
                (*sa - ga.powi(2) + self.eps).sqrt()
            } else {
                (*sa + self.eps).sqrt()
            };
            *g /= avg;
            match self.momentum {
                Some(u) => {
                    *m = *m * u + *g;
                    *g = *m * self.lr;
                }
                None => *g *= self.lr,
            }
        }
    }
}
