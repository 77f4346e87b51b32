//! The static model registry: a `[model]` table selects one of the network types compiled
//! into the binary (dfdx needs every parameter shape at compile time).

pub mod init;
pub mod mlp;
pub mod network;

use crate::config::{Experiment, ModelConfig};
use crate::error::{Error, Result};
pub use network::{BatchStats, Trainable};
use network::{Net, Network};
use rand_chacha::ChaCha8Rng;

/// Builds the network an experiment asks for, initialised from `rng`, with its optimizer.
pub fn build(exp: &Experiment, rng: &mut ChaCha8Rng) -> Result<Box<dyn Trainable>> {
    fn make<M: Network>(
        exp: &Experiment,
        rng: &mut ChaCha8Rng,
        init: crate::config::Init,
    ) -> Result<Box<dyn Trainable>> {
        Ok(Box::new(Net::<M>::new(init, &exp.optimizer, rng)?))
    }
    match &exp.model {
        ModelConfig::Mlp { hidden, init } => {
            let unsupported = || unsupported_mlp(hidden);
            match hidden.as_slice() {
                [] => make::<mlp::Mlp0>(exp, rng, *init),
                [a] => {
                    mlp::with_width!(*a, A => make::<mlp::Mlp1<A>>(exp, rng, *init), Err(unsupported()))
                }
                [a, b] => mlp::with_width!(*a, A => mlp::with_width!(*b, B =>
                    make::<mlp::Mlp2<A, B>>(exp, rng, *init), Err(unsupported())), Err(unsupported())),
                _ => Err(unsupported()),
            }
        }
        ModelConfig::Cnn { .. } => Err(Error::Input(
            "model.kind = \"cnn\" is not available in this build yet; supported: \"mlp\"".into(),
        )),
    }
}

fn unsupported_mlp(hidden: &[usize]) -> Error {
    Error::Input(format!(
        "key 'model.hidden': {hidden:?} is not a compiled-in MLP. Supported: zero, one or two hidden \
         layers, each width one of {:?} (e.g. hidden = [256] or hidden = [512, 128])",
        mlp::WIDTHS
    ))
}

/// Whether an experiment's model is in the registry, checked before any data is loaded.
pub fn check_supported(model: &ModelConfig) -> Result<()> {
    match model {
        ModelConfig::Mlp { hidden, .. } => {
            if hidden.len() <= 2 && hidden.iter().all(|w| mlp::WIDTHS.contains(w)) {
                Ok(())
            } else {
                Err(unsupported_mlp(hidden))
            }
        }
        ModelConfig::Cnn { .. } => Err(Error::Input(
            "model.kind = \"cnn\" is not available in this build yet; supported: \"mlp\"".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_width_dispatches() {
        for &w in mlp::WIDTHS {
            let hit = mlp::with_width!(w, W => W, 0);
            assert_eq!(hit, w);
        }
        assert_eq!(mlp::with_width!(100usize, W => W, 0), 0);
    }
}
