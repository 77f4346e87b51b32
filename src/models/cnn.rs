//! Convolutional networks: `conv` blocks of (convolution, ReLU, 2x2 max-pool), then dense
//! ReLU layers and 10 logits. Safetensors names: `1.<block>.0.weight|bias` for the
//! convolutions (`[out, k, k, in]`), `3.<2i>.weight|bias` for the dense layers (`[out, in]`).

use crate::config::Padding;
use crate::data::mnist::IMAGE_SIDE;
use crate::ops::ConvPoolRelu;
use dfdx::nn::modules::Linear;
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
pub type Dense<const I: usize, const O: usize> = Linear<I, O, f32, Cpu>;

/// Side length of the maps after `blocks` conv blocks (conv with padding `pad`, then 2x2 pool).
pub const fn side_after(blocks: usize, k: usize, pad: usize) -> usize {
    let mut side = IMAGE_SIDE;
    let mut i = 0;
    while i < blocks {
        side = (side + 2 * pad + 1 - k) / 2;
        i += 1;
    }
    side
}

/// Length of the flattened features after the conv blocks.
pub const fn flat_len(blocks: usize, k: usize, pad: usize, channels: usize) -> usize {
    let s = side_after(blocks, k, pad);
    s * s * channels
}

pub const fn pad_for(padding: Padding, k: usize) -> usize {
    match padding {
        Padding::Same => k / 2,
        Padding::Valid => 0,
    }
}

/// The network type for one registry entry.
macro_rules! cnn_type {
    ([$($c:literal),+], $k:literal, $pad:ident, [$($h:literal),*]) => {
        (
            $crate::ops::ToImage,
            cnn_type!(@blocks $k, { $crate::models::cnn::pad_for($crate::config::Padding::$pad, $k) }; 1; $($c),+),
            $crate::ops::Flatten<{ cnn_type!(@flat $k, $pad; $($c),+) }>,
            cnn_type!(@head { cnn_type!(@flat $k, $pad; $($c),+) }; $($h),*),
        )
    };
    (@blocks $k:literal, $p:expr; $i:expr; $a:literal) => {
        ($crate::models::cnn::FirstBlock<{ $i }, $a, $k, { $p }>,)
    };
    (@blocks $k:literal, $p:expr; $i:expr; $a:literal, $b:literal) => {
        ($crate::models::cnn::FirstBlock<{ $i }, $a, $k, { $p }>, $crate::models::cnn::Block<$a, $b, $k, { $p }>)
    };
    (@blocks $k:literal, $p:expr; $i:expr; $a:literal, $b:literal, $c:literal) => {
        (
            $crate::models::cnn::FirstBlock<{ $i }, $a, $k, { $p }>,
            $crate::models::cnn::Block<$a, $b, $k, { $p }>,
            $crate::models::cnn::Block<$b, $c, $k, { $p }>,
        )
    };
    (@flat $k:literal, $pad:ident; $($c:literal),+) => {
        $crate::models::cnn::flat_len(
            [$($c),+].len(),
            $k,
            $crate::models::cnn::pad_for($crate::config::Padding::$pad, $k),
            { let c = [$($c),+]; c[c.len() - 1] },
        )
    };
    (@head $f:expr;) => { ($crate::models::cnn::Dense<{ $f }, { $crate::data::mnist::CLASSES }>,) };
    (@head $f:expr; $h:literal) => {
        ($crate::models::cnn::Dense<{ $f }, $h>, dfdx::nn::modules::ReLU, $crate::models::cnn::Dense<$h, { $crate::data::mnist::CLASSES }>)
    };
    (@head $f:expr; $h:literal, $h2:literal) => {
        (
            $crate::models::cnn::Dense<{ $f }, $h>,
            dfdx::nn::modules::ReLU,
            $crate::models::cnn::Dense<$h, $h2>,
            dfdx::nn::modules::ReLU,
            $crate::models::cnn::Dense<$h2, { $crate::data::mnist::CLASSES }>,
        )
    };
}

/// One compiled-in CNN architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    pub conv: &'static [usize],
    pub kernel: usize,
    pub padding: Padding,
    pub hidden: &'static [usize],
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pad = match self.padding {
            Padding::Same => "same",
            Padding::Valid => "valid",
        };
        write!(
            f,
            "conv = {:?}, kernel = {}, padding = \"{pad}\", hidden = {:?}",
            self.conv, self.kernel, self.hidden
        )
    }
}

/// Defines `ARCHS` (the list) and `build` (the dispatch) from one list of architectures.
macro_rules! cnn_registry {
    ($( [$($c:literal),+] $k:literal $pad:ident [$($h:literal),*] ;)+) => {
        /// Every compiled-in CNN.
        pub const ARCHS: &[Arch] = &[
            $( Arch { conv: &[$($c),+], kernel: $k, padding: Padding::$pad, hidden: &[$($h),*] }, )+
        ];

        /// Builds the registry entry equal to `arch`, or `None` if it is not compiled in.
        pub fn build(
            arch: &Arch,
            init: crate::config::Init,
            rng: &mut rand_chacha::ChaCha8Rng,
        ) -> Option<crate::Result<Box<dyn crate::models::Trainable>>> {
            use crate::models::network::Net;
            $(
                if *arch == (Arch { conv: &[$($c),+], kernel: $k, padding: Padding::$pad, hidden: &[$($h),*] }) {
                    return Some(
                        Net::<cnn_type!([$($c),+], $k, $pad, [$($h),*])>::new(init, rng)
                            .map(|n| Box::new(n) as Box<dyn crate::models::Trainable>),
                    );
                }
            )+
            None
        }
    };
}

// The reference network (`[32, 64] 5 Same [1024]`) and the variations around it that sweeps
// use: one to three conv blocks, filters 8..128, dense widths 64..2048, kernel 3, valid padding.
cnn_registry! {
    [32, 64] 5 Same [1024];
    // Hidden layer: none, or one of 64..2048, or two.
    [32, 64] 5 Same [];
    [32, 64] 5 Same [64];
    [32, 64] 5 Same [128];
    [32, 64] 5 Same [256];
    [32, 64] 5 Same [512];
    [32, 64] 5 Same [2048];
    [32, 64] 5 Same [1024, 256];
    // Kernel size and padding.
    [32, 64] 3 Same [1024];
    [32, 64] 5 Valid [1024];
    [32, 64] 3 Valid [1024];
    // Filters of the first block, then of the second.
    [8, 64] 5 Same [1024];
    [16, 64] 5 Same [1024];
    [64, 64] 5 Same [1024];
    [128, 64] 5 Same [1024];
    [32, 8] 5 Same [1024];
    [32, 16] 5 Same [1024];
    [32, 32] 5 Same [1024];
    [32, 128] 5 Same [1024];
    // Both halved, quartered, doubled.
    [16, 32] 5 Same [1024];
    [8, 16] 5 Same [1024];
    [64, 128] 5 Same [1024];
    // One block.
    [8] 5 Same [1024];
    [16] 5 Same [1024];
    [32] 5 Same [1024];
    [64] 5 Same [1024];
    [128] 5 Same [1024];
    // Three blocks.
    [32, 64, 128] 5 Same [1024];
    [16, 32, 64] 5 Same [1024];
    [32, 64, 64] 5 Same [1024];
    // Small and fast, for tests and smoke runs.
    [8, 16] 5 Same [64];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_sizes() {
        assert_eq!(flat_len(2, 5, 2, 64), 7 * 7 * 64);
        assert_eq!(flat_len(2, 5, 0, 64), 4 * 4 * 64);
        assert_eq!(flat_len(3, 5, 2, 128), 3 * 3 * 128);
        assert_eq!(flat_len(1, 3, 1, 8), 14 * 14 * 8);
        assert_eq!(side_after(2, 3, 0), 5);
    }

    #[test]
    fn every_entry_is_unique_and_builds() {
        for (i, a) in ARCHS.iter().enumerate() {
            assert!(!ARCHS[..i].contains(a), "duplicate {a}");
            assert!(
                side_after(a.conv.len(), a.kernel, pad_for(a.padding, a.kernel)) >= 1,
                "{a}"
            );
        }
    }
}
