//! Multilayer perceptrons: 784 inputs, ReLU hidden layers, 10 logits.

use crate::data::mnist::{CLASSES, IMAGE_PIXELS};
use dfdx::nn::modules::{Linear, ReLU};
use dfdx::prelude::Cpu;

type L<const I: usize, const O: usize> = Linear<I, O, f32, Cpu>;

/// No hidden layer: multinomial logistic regression.
pub type Mlp0 = L<IMAGE_PIXELS, CLASSES>;
/// One hidden layer of width `A`. Safetensors names: `0.weight`, `0.bias`, `2.weight`, `2.bias`.
pub type Mlp1<const A: usize> = (L<IMAGE_PIXELS, A>, ReLU, L<A, CLASSES>);
/// Two hidden layers. Safetensors names: `0.*`, `2.*`, `4.*`.
pub type Mlp2<const A: usize, const B: usize> =
    (L<IMAGE_PIXELS, A>, ReLU, L<A, B>, ReLU, L<B, CLASSES>);

/// Hidden widths compiled into the binary (any one or two of them).
pub const WIDTHS: &[usize] = &[32, 64, 128, 256, 512, 1024, 2048];

/// Expands `$body` with the const `$W` bound to `$width` when it is one of [`WIDTHS`], else
/// evaluates `$otherwise`. Keep the arms in sync with `WIDTHS` (a test checks).
macro_rules! with_width {
    ($width:expr, $W:ident => $body:expr, $otherwise:expr) => {
        match $width {
            32 => {
                const $W: usize = 32;
                $body
            }
            64 => {
                const $W: usize = 64;
                $body
            }
            128 => {
                const $W: usize = 128;
                $body
            }
            256 => {
                const $W: usize = 256;
                $body
            }
            512 => {
                const $W: usize = 512;
                $body
            }
            1024 => {
                const $W: usize = 1024;
                $body
            }
            2048 => {
                const $W: usize = 2048;
                $body
            }
            _ => $otherwise,
        }
    };
}
pub(crate) use with_width;
