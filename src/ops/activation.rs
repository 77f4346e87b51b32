//! Activations other than dfdx's ReLU, and dropout, as one elementwise op on the tape, plus the
//! two modules that apply them: [`Hidden`] after a hidden dense layer (activation, then dropout
//! while training) and [`Act`] after a convolution without a pool.
//!
//! The functions are computed with the `libm` crate, not the platform's C library, so that their
//! bits do not depend on the machine's libm. ReLU without dropout stays dfdx's own op, so the
//! networks that existed before these keys keep their bits.

use crate::config::Activation;
use dfdx::nn::modules::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;
use rayon::prelude::*;

/// Elements from which the op splits its work across threads.
const PARALLEL: usize = 1 << 16;

/// A layer's dropout on one training step: the probability, and the key its mask is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    pub p: f32,
    /// The run's seed, the step and the layer, mixed: see [`Dropout::keeps`].
    key: u64,
}

impl Dropout {
    /// Dropout with probability `p` for `layer` (0-based, counted over the network's dropout
    /// layers) at training `step`, from the run's `seed`.
    pub fn new(p: f32, seed: u64, step: u64, layer: u32) -> Dropout {
        let key = mix(mix(mix(seed ^ 0x6472_6f70_6f75_7421) ^ step) ^ layer as u64);
        Dropout { p, key }
    }

    /// Whether element `i` of the layer's output is kept. A counter-based generator
    /// (SplitMix64's output `i` from the key): each element's draw depends only on the seed,
    /// step, layer and its index, so masks are the same at any thread count and after a resume,
    /// with no generator state to checkpoint. 24 random bits, compared with `p` as an f32
    /// (exact: both are multiples of 2^-24 at most).
    #[inline(always)]
    pub fn keeps(&self, i: usize) -> bool {
        let bits = mix(self
            .key
            .wrapping_add((i as u64).wrapping_add(1).wrapping_mul(GOLDEN)));
        ((bits >> 40) as f32) * (1.0 / (1u64 << 24) as f32) >= self.p
    }

    /// `out[k]` = [`scale`](Self::scale) where element `first + k` is kept, else 0: the
    /// masks of [`keeps`](Self::keeps), in a loop without branches.
    pub fn factors(&self, first: usize, out: &mut [f32]) {
        let scale = self.scale();
        for (k, f) in out.iter_mut().enumerate() {
            *f = if self.keeps(first + k) { scale } else { 0.0 };
        }
    }

    /// What a kept element is multiplied by (inverted dropout): 1 / (1 - p).
    pub fn scale(&self) -> f32 {
        1.0 / (1.0 - self.p)
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijective 64-bit mix.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The activation's value and slope at `x`. Where the slope has a kink (0 for ReLU-like
/// functions), the left side's, as PyTorch takes it.
#[inline(always)]
pub fn value_and_slope(kind: Activation, x: f32) -> (f32, f32) {
    match kind {
        Activation::Relu => {
            if x > 0.0 {
                (x, 1.0)
            } else {
                (0.0, 0.0)
            }
        }
        Activation::LeakyRelu => {
            if x > 0.0 {
                (x, 1.0)
            } else {
                (LEAKY_SLOPE * x, LEAKY_SLOPE)
            }
        }
        Activation::Gelu => {
            // x * Phi(x); slope Phi(x) + x * phi(x).
            let cdf = 0.5 * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = libm::expf(-0.5 * x * x) * INV_SQRT_2PI;
            (x * cdf, cdf + x * pdf)
        }
        Activation::Tanh => {
            let y = libm::tanhf(x);
            (y, 1.0 - y * y)
        }
        Activation::Sigmoid => {
            let y = 1.0 / (1.0 + libm::expf(-x));
            (y, y * (1.0 - y))
        }
        Activation::Elu => {
            if x > 0.0 {
                (x, 1.0)
            } else {
                let y = libm::expm1f(x);
                (y, y + 1.0)
            }
        }
    }
}

/// PyTorch's default negative slope of `LeakyReLU`.
pub const LEAKY_SLOPE: f32 = 0.01;
/// 1 / sqrt(2 pi).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Whether max-pooling commutes with the activation (it is non-decreasing), so that a fused
/// conv-pool kernel may apply it after the pool.
pub fn commutes_with_max(kind: Activation) -> bool {
    kind != Activation::Gelu
}

/// `kind(x)`, then while training (a taped input) `dropout`'s mask and scale.
pub fn activate<S: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S, f32, Cpu, T>,
    kind: Activation,
    dropout: Option<Dropout>,
) -> Result<Tensor<S, f32, Cpu, T>, CpuError> {
    let dropout = dropout.filter(|d| T::OWNS_TAPE && d.p > 0.0);
    if kind == Activation::Relu && dropout.is_none() {
        return x.try_relu();
    }
    let (x, mut tape) = x.split_tape();
    let xs = super::data(&x);
    // The forward pass keeps each element's slope (times its dropout factor) for the backward
    // pass, so each transcendental function is evaluated once per element.
    let mut ys = super::zeroed(xs.len());
    let mut slopes = if T::OWNS_TAPE {
        super::zeroed(xs.len())
    } else {
        Vec::new()
    };
    if T::OWNS_TAPE {
        for_each_chunk_pair(&mut ys, &mut slopes, |start, ys, slopes| {
            apply(
                kind,
                dropout,
                start,
                &xs[start..][..ys.len()],
                ys,
                Some(slopes),
            )
        });
    } else {
        for_each_chunk(&mut ys, |start, ys| {
            apply(kind, dropout, start, &xs[start..][..ys.len()], ys, None)
        });
    }
    let out = x.device().try_tensor_from_vec(ys, *x.shape())?;
    if T::OWNS_TAPE {
        let out_id = out.clone();
        tape.add_backward_op(move |grads| {
            let gy = grads.get_or_alloc_mut(&out_id)?.to_vec();
            let gx = grads.get_or_alloc_mut(&x)?;
            for_each_chunk(gx, |start, gx| {
                for (k, g) in gx.iter_mut().enumerate() {
                    *g += gy[start + k] * slopes[start + k];
                }
            });
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// `ys[k] = kind(xs[k]) * factor` and `slopes[k] = kind'(xs[k]) * factor` for element
/// `start + k`, where the factor is dropout's (`scale` or 0) or 1. The activation is chosen once
/// per chunk, not per element, and the dropout factors are drawn in blocks by a loop the
/// compiler vectorises: per element, an inlined activation instead of a call and a `match`
/// (hidden 1024, batch 128: 1.1 ms of a 7.7 ms training step before).
fn apply(
    kind: Activation,
    dropout: Option<Dropout>,
    start: usize,
    xs: &[f32],
    ys: &mut [f32],
    slopes: Option<&mut [f32]>,
) {
    macro_rules! with_kind {
        ($($kind:ident),*) => {
            match kind {
                $(Activation::$kind => apply_with(
                    |x| value_and_slope(Activation::$kind, x), dropout, start, xs, ys, slopes,
                ),)*
            }
        };
    }
    with_kind!(Relu, LeakyRelu, Gelu, Tanh, Sigmoid, Elu)
}

/// Dropout factors drawn per block: enough to amortise the loop, small enough for the stack.
const FACTOR_BLOCK: usize = 256;

#[inline(always)]
fn apply_with(
    act: impl Fn(f32) -> (f32, f32),
    dropout: Option<Dropout>,
    start: usize,
    xs: &[f32],
    ys: &mut [f32],
    mut slopes: Option<&mut [f32]>,
) {
    let mut factors = [1.0f32; FACTOR_BLOCK];
    for (b, (xs, ys)) in xs
        .chunks(FACTOR_BLOCK)
        .zip(ys.chunks_mut(FACTOR_BLOCK))
        .enumerate()
    {
        let first = start + b * FACTOR_BLOCK;
        let factors = &mut factors[..xs.len()];
        if let Some(d) = dropout {
            d.factors(first, factors);
        }
        match slopes.as_deref_mut() {
            Some(slopes) => {
                let slopes = &mut slopes[b * FACTOR_BLOCK..][..xs.len()];
                for (((y, d), &x), &f) in ys.iter_mut().zip(slopes).zip(xs).zip(&*factors) {
                    let (value, slope) = act(x);
                    *y = value * f;
                    *d = slope * f;
                }
            }
            None => {
                for ((y, &x), &f) in ys.iter_mut().zip(xs).zip(&*factors) {
                    *y = act(x).0 * f;
                }
            }
        }
    }
}

/// [`for_each_chunk`] over two slices of the same length at once.
fn for_each_chunk_pair(
    a: &mut [f32],
    b: &mut [f32],
    f: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    if a.len() < PARALLEL {
        f(0, a, b);
    } else {
        a.par_chunks_mut(PARALLEL / 4)
            .zip(b.par_chunks_mut(PARALLEL / 4))
            .enumerate()
            .for_each(|(c, (a, b))| f(c * (PARALLEL / 4), a, b));
    }
}

/// Runs `f(start, chunk)` over `v` in fixed chunks, in parallel when `v` is large. Each element
/// is computed on its own, so the split cannot change a bit.
fn for_each_chunk(v: &mut [f32], f: impl Fn(usize, &mut [f32]) + Sync) {
    if v.len() < PARALLEL {
        f(0, v);
    } else {
        v.par_chunks_mut(PARALLEL / 4)
            .enumerate()
            .for_each(|(c, chunk)| f(c * (PARALLEL / 4), chunk));
    }
}

/// The activation after a hidden dense layer, then its dropout while training. Configured after
/// the network is built (see `models::layers::Configure`); built, it is a ReLU without dropout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Hidden {
    pub activation: Activation,
    /// This layer's dropout on the coming training step, if any.
    pub dropout: Option<Dropout>,
}

impl ZeroSizedModule for Hidden {}
impl NonMutableModule for Hidden {}

impl<S: Shape, T: Tape<f32, Cpu>> Module<Tensor<S, f32, Cpu, T>> for Hidden {
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        activate(x, self.activation, self.dropout)
    }
}

/// The activation after a convolution without a pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct Act {
    pub activation: Activation,
}

impl ZeroSizedModule for Act {}
impl NonMutableModule for Act {}

impl<S: Shape, T: Tape<f32, Cpu>> Module<Tensor<S, f32, Cpu, T>> for Act {
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        activate(x, self.activation, None)
    }
}

#[cfg(test)]
mod tests;
