//! The layers the generated networks are made of (see [`super::registry`]). CNNs: conv blocks
//! of (convolution, activation, 2x2 max-pool), then hidden dense layers and 10 logits;
//! safetensors names `1.<block>.0.weight|bias` for the convolutions (`[out, k, k, in]`),
//! `3.<2i>.weight|bias` for the dense layers (`[out, in]`). MLPs: dense layers only, `0.*`,
//! `2.*`, ... The activation and dropout layers have no parameters, so they do not change the
//! names.

use crate::config::Activation;
use crate::ops::activation::{Act, Dropout, Hidden};
use crate::ops::{Conv2D, ConvPoolRelu, Flatten, ToImage};

/// Convolution, activation and 2x2 max-pool as one op (see [`ConvPoolRelu`]): with ReLU, the
/// pool applied before the ReLU (the two commute exactly, forward values and gradients, ties
/// included), bit-identical to `(Conv2D, MaxPool2D, ReLU)`, whose parameter names it keeps.
pub type Block<const I: usize, const O: usize, const K: usize, const P: usize> =
    ConvPoolRelu<I, O, K, P>;
/// The first block: its input is the image batch, which needs no gradient.
pub type FirstBlock<const I: usize, const O: usize, const K: usize, const P: usize> =
    ConvPoolRelu<I, O, K, P, false>;
/// A block without a pool (`pool = false`): convolution then activation, on the im2col path,
/// with the same parameter names as a pooled block (`<block>.0.weight|bias`).
pub type ConvRelu<const I: usize, const O: usize, const K: usize, const P: usize> =
    (Conv2D<I, O, K, P>, Act);
/// A hidden or output dense layer: dfdx's `Linear`, evaluated without its broadcast add.
pub use crate::ops::Dense;
/// An MLP's first dense layer: its input is the image batch, which needs no gradient.
pub use crate::ops::FirstDense;

/// What a network's activation and dropout layers do on the coming pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerSettings {
    pub activation: Activation,
    /// Dropout probability after each hidden dense layer (0: none).
    pub dropout: f32,
    /// The run's seed and the training step: with the layer, they key the dropout masks.
    pub seed: u64,
    pub step: u64,
}

/// Sets the activation and dropout layers of a built network. dfdx builds every module from
/// its type alone, so settings that are not part of the type are applied afterwards, by a walk
/// over the network in layer order.
pub trait Configure {
    /// Applies `s`; `dropout_layers` counts the dropout layers met so far, which numbers them.
    fn configure(&mut self, s: &LayerSettings, dropout_layers: &mut u32);
}

impl Configure for Hidden {
    fn configure(&mut self, s: &LayerSettings, dropout_layers: &mut u32) {
        self.activation = s.activation;
        self.dropout =
            (s.dropout > 0.0).then(|| Dropout::new(s.dropout, s.seed, s.step, *dropout_layers));
        *dropout_layers += 1;
    }
}

impl Configure for Act {
    fn configure(&mut self, s: &LayerSettings, _: &mut u32) {
        self.activation = s.activation;
    }
}

impl<const I: usize, const O: usize, const K: usize, const P: usize, const G: bool> Configure
    for ConvPoolRelu<I, O, K, P, G>
{
    fn configure(&mut self, s: &LayerSettings, _: &mut u32) {
        self.activation = s.activation;
    }
}

/// Layers with nothing to set.
macro_rules! fixed {
    ($($t:ty => [$($g:tt)*]),* $(,)?) => {
        $(impl<$($g)*> Configure for $t {
            fn configure(&mut self, _: &LayerSettings, _: &mut u32) {}
        })*
    };
}

fixed!(
    Dense<I, O> => [const I: usize, const O: usize],
    FirstDense<I, O> => [const I: usize, const O: usize],
    Conv2D<I, O, K, P> => [const I: usize, const O: usize, const K: usize, const P: usize],
    Flatten<F> => [const F: usize],
    ToImage => [],
);

macro_rules! tuples {
    ($(($($m:ident $i:tt),+)),* $(,)?) => {
        $(impl<$($m: Configure),+> Configure for ($($m,)+) {
            fn configure(&mut self, s: &LayerSettings, dropout_layers: &mut u32) {
                $(self.$i.configure(s, dropout_layers);)+
            }
        })*
    };
}

tuples!(
    (A 0),
    (A 0, B 1),
    (A 0, B 1, C 2),
    (A 0, B 1, C 2, D 3),
    (A 0, B 1, C 2, D 3, E 4),
    (A 0, B 1, C 2, D 3, E 4, F 5),
);
