//! The static model registry: a `[model]` table selects one of the network types compiled
//! into the binary (dfdx needs every parameter shape at compile time).

pub mod cnn;
pub mod init;
pub mod network;
mod registry;

use crate::config::{Experiment, Init, ModelConfig};
use crate::error::{Error, Result};
pub use network::{BatchStats, Trainable};
use rand_chacha::ChaCha8Rng;
use runner_spec::network::Network;
use std::path::Path;

/// The networks compiled into this binary: key, declaration, and the files that asked for each
/// (`built-in` for the reference and what the tests use).
pub use registry::COMPILED;

fn init_of(model: &ModelConfig) -> Init {
    match model {
        ModelConfig::Mlp { init, .. } | ModelConfig::Cnn { init, .. } => *init,
    }
}

/// Builds the network an experiment asks for, initialised from `rng`.
pub fn build(exp: &Experiment, rng: &mut ChaCha8Rng) -> Result<Box<dyn Trainable>> {
    let net = Network::of(&exp.model).map_err(Error::Input)?;
    registry::build_network(&net.key(), init_of(&exp.model), rng)
        .unwrap_or_else(|| Err(not_compiled(None, &net)))
}

/// Whether the network `file` declares can be built and is compiled into this binary, checked
/// before any data is loaded. Errors name the file and, for a network that is not compiled
/// in, the command that adds it.
pub fn check_supported(model: &ModelConfig, file: &Path) -> Result<()> {
    let net = Network::of(model).map_err(|e| Error::Input(format!("{}: {e}", file.display())))?;
    if COMPILED.iter().any(|(key, _, _)| *key == net.key()) {
        Ok(())
    } else {
        Err(not_compiled(Some(file), &net))
    }
}

fn not_compiled(file: Option<&Path>, net: &Network) -> Error {
    let repo = env!("CARGO_MANIFEST_DIR");
    let (origin, add) = match file {
        Some(f) => {
            let dir = std::path::absolute(f)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_default();
            (
                format!("{}: ", f.display()),
                format!(
                    "To add it, rebuild with the file's directory among the experiment \
                     directories:\n  RUNNER_EXPERIMENTS={} cargo install --path {repo}\nor, in \
                     the checkout, put the file under {repo}/experiments and run it with \
                     `cargo run --release -- run <file>`.",
                    dir.display()
                ),
            )
        }
        None => (String::new(), String::new()),
    };
    Error::Input(format!(
        "{origin}the network [model] {net} is not compiled into this binary: networks are \
         generated at build time from the experiment and sweep files under {repo}/experiments \
         and the directories in RUNNER_EXPERIMENTS (`runner models` lists them). {add}"
    ))
}

/// Human listing of every compiled network and the files that asked for it (`runner models`).
pub fn describe_registry() -> String {
    let mut out = format!(
        "{} networks compiled into this binary (from the experiment and sweep files at build \
         time):\n",
        COMPILED.len()
    );
    for (_, declaration, files) in COMPILED {
        out += &format!("  {declaration}\n      from {}\n", files.join(", "));
    }
    out
}
