//! SGD, with optional classic or Nesterov momentum (dfdx's and PyTorch's form).

use super::rule::{Decay, Rule};

/// SGD momentum variants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Momentum {
    None,
    Classic(f32),
    Nesterov(f32),
}

#[derive(Debug, Clone, Copy)]
pub struct Sgd {
    pub lr: f32,
    pub momentum: Momentum,
    pub decay: Decay,
}

impl Rule for Sgd {
    /// The velocity (left untouched without momentum).
    fn slots(&self) -> &'static [&'static str] {
        &["velocity"]
    }

    fn decay(&self) -> Decay {
        self.decay
    }

    fn step(&self, g: &mut [f32], slots: &mut [&mut [f32]]) {
        let [vel] = slots else { unreachable!() };
        sgd(self.lr, self.momentum, g, vel);
    }
}

/// Each buffer its own argument, never inlined, so that the loops vectorize (see adam.rs).
#[inline(never)]
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
