//! What generated network code names: the layer types of `runner_spec::network::Network::
//! rust_type`, [`make`], and the [`Compiled`] entry. build.rs's table and the crates that
//! `runner` compiles on demand (one per network, written by the `compile` module) both `use` this module
//! whole, so a network's code is the same wherever it is compiled.

pub use super::layers::{Block, ConvRelu, Dense, FirstBlock, FirstDense};
pub use super::network::Setup;
use super::network::{Net, Network as DfdxNetwork};
pub use super::Trainable;
pub use crate::ops::activation::Hidden;
pub use crate::ops::{Flatten, ToImage};
use crate::Result;
pub use rand_chacha::ChaCha8Rng;

/// Builds a network, initialised from the generator.
pub type MakeFn = fn(Setup, &mut ChaCha8Rng) -> Result<Box<dyn Trainable>>;

/// One compiled network.
#[derive(Debug, Clone, Copy)]
pub struct Compiled {
    /// `runner_spec::network::Network::key`.
    pub key: &'static str,
    /// The `[model]` keys that declare it.
    pub declaration: &'static str,
    /// Its dfdx type, as generated.
    pub rust_type: &'static str,
    /// The files that asked for it (`built-in` for the reference and what the tests use).
    pub files: &'static [&'static str],
    pub make: MakeFn,
}

/// The network `M`, initialised from `rng`: monomorphised wherever it is named, so a crate that
/// names it compiles that network and nothing else.
pub fn make<M: DfdxNetwork>(setup: Setup, rng: &mut ChaCha8Rng) -> Result<Box<dyn Trainable>> {
    Ok(Box::new(Net::<M>::new(setup, rng)?))
}
