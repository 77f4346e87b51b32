//! The layers the generated networks are made of (see [`super::registry`]). CNNs: conv blocks
//! of (convolution, ReLU, 2x2 max-pool), then dense ReLU layers and 10 logits; safetensors names
//! `1.<block>.0.weight|bias` for the convolutions (`[out, k, k, in]`), `3.<2i>.weight|bias` for
//! the dense layers (`[out, in]`). MLPs: dense layers only, `0.*`, `2.*`, ...

use crate::ops::{Conv2D, ConvPoolRelu};
use dfdx::nn::modules::{Linear, ReLU};
use dfdx::prelude::Cpu;

/// Convolution, ReLU and 2x2 max-pool, with the pool applied before the ReLU (the two commute
/// exactly, forward values and gradients, ties included), fused into one op that keeps the
/// full-size convolution output out of dfdx: bit-identical to `(Conv2D, MaxPool2D, ReLU)`, whose
/// parameter names it keeps.
pub type Block<const I: usize, const O: usize, const K: usize, const P: usize> =
    ConvPoolRelu<I, O, K, P>;
/// The first block: its input is the image batch, which needs no gradient.
pub type FirstBlock<const I: usize, const O: usize, const K: usize, const P: usize> =
    ConvPoolRelu<I, O, K, P, false>;
/// A block without a pool (`pool = false`): convolution then ReLU, on the im2col path, with the
/// same parameter names as a pooled block (`<block>.0.weight|bias`).
pub type ConvRelu<const I: usize, const O: usize, const K: usize, const P: usize> =
    (Conv2D<I, O, K, P>, ReLU);
pub type Dense<const I: usize, const O: usize> = Linear<I, O, f32, Cpu>;
