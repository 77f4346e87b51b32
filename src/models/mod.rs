//! The static model registry: a `[model]` table selects one of the network types compiled
//! into the binary (dfdx needs every parameter shape at compile time).

pub mod cnn;
pub mod init;
pub mod mlp;
pub mod network;

use crate::config::{Experiment, ModelConfig};
use crate::error::{Error, Result};
pub use network::{BatchStats, Trainable};
use network::{Net, Network};
use rand_chacha::ChaCha8Rng;

/// Builds the network an experiment asks for, initialised from `rng`.
pub fn build(exp: &Experiment, rng: &mut ChaCha8Rng) -> Result<Box<dyn Trainable>> {
    fn make<M: Network>(
        rng: &mut ChaCha8Rng,
        init: crate::config::Init,
    ) -> Result<Box<dyn Trainable>> {
        Ok(Box::new(Net::<M>::new(init, rng)?))
    }
    match &exp.model {
        ModelConfig::Mlp { hidden, init } => {
            let unsupported = || unsupported_mlp(hidden);
            match hidden.as_slice() {
                [] => make::<mlp::Mlp0>(rng, *init),
                [a] => {
                    mlp::with_width!(*a, A => make::<mlp::Mlp1<A>>(rng, *init), Err(unsupported()))
                }
                [a, b] => mlp::with_width!(*a, A => mlp::with_width!(*b, B =>
                    make::<mlp::Mlp2<A, B>>(rng, *init), Err(unsupported())), Err(unsupported())),
                _ => Err(unsupported()),
            }
        }
        ModelConfig::Cnn { init, .. } => {
            let arch = cnn_arch(&exp.model)?;
            cnn::build(&arch, *init, rng).expect("cnn_arch only returns registry entries")
        }
    }
}

/// The registry entry for a CNN config, or an error listing the nearest supported ones.
fn cnn_arch(model: &ModelConfig) -> Result<cnn::Arch> {
    let ModelConfig::Cnn {
        conv,
        kernel,
        padding,
        hidden,
        ..
    } = model
    else {
        unreachable!("called for CNN configs only")
    };
    if let Some(arch) = cnn::ARCHS.iter().find(|a| {
        a.conv == conv.as_slice()
            && a.kernel == *kernel
            && a.padding == *padding
            && a.hidden == hidden.as_slice()
    }) {
        return Ok(*arch);
    }
    // Entries that differ from the request in one axis at most are the useful suggestions.
    let differences = |a: &cnn::Arch| {
        usize::from(a.conv != conv.as_slice())
            + usize::from(a.kernel != *kernel || a.padding != *padding)
            + usize::from(a.hidden != hidden.as_slice())
    };
    let near: Vec<String> = cnn::ARCHS
        .iter()
        .filter(|a| differences(a) <= 1)
        .map(|a| format!("  {a}"))
        .collect();
    let listing = if near.is_empty() {
        format!(
            "Supported CNNs (`runner models` lists them all):\n{}",
            cnn::ARCHS
                .iter()
                .map(|a| format!("  {a}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    } else {
        format!(
            "Supported CNNs one change away (`runner models` lists all {}):\n{}",
            cnn::ARCHS.len(),
            near.join("\n")
        )
    };
    let padding = match padding {
        crate::config::Padding::Same => "same",
        crate::config::Padding::Valid => "valid",
    };
    Err(Error::Input(format!(
        "[model] conv = {conv:?}, kernel = {kernel}, padding = \"{padding}\", hidden = {hidden:?} is not a \
         compiled-in CNN. {listing}"
    )))
}

/// Human listing of every compiled-in architecture (`runner models`).
pub fn describe_registry() -> String {
    let mut out = format!(
        "[model] kind = \"mlp\": hidden = [] (no hidden layer), [A] or [A, B], with A and B from {:?}\n\n\
         [model] kind = \"cnn\" ({} architectures):\n",
        mlp::WIDTHS,
        cnn::ARCHS.len()
    );
    for arch in cnn::ARCHS {
        out.push_str(&format!("  {arch}\n"));
    }
    out
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
        ModelConfig::Cnn { .. } => cnn_arch(model).map(|_| ()),
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
