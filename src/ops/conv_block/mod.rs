//! `ConvPoolRelu`: convolution, 2x2 max-pool and ReLU as one op on the tape. The same arithmetic
//! as the three ops in a row (bit for bit on the im2col path; the vector kernels sum in other
//! orders), but the full-size convolution output (4x the pooled
//! size) never becomes a dfdx tensor: no copy of it out of dfdx for the pool, no zeroed gradient
//! tensor for it, and no copy of that gradient out again for the convolution's backward. It is
//! never stored whole either: each parallel chunk of images is convolved and pooled (or, going
//! back, has its gradient routed and convolved) while it is in cache. Where the CPU has AVX2 or
//! AVX-512 and the channels fill whole registers, vector kernels replace the im2col GEMMs: on
//! one-channel input (the images), [`single_channel`]; on several channels, [`winograd`] (3x3
//! and 5x5 kernels) or [`direct_forward`] (other sizes, few input channels) convolves and pools
//! without unfolding, and [`sparse_backward`] sums the gradients over the pool's winners alone.

mod buffers;
mod direct_forward;
mod single_channel;
mod sparse_backward;
#[cfg(test)]
mod testing;
mod winograd;

use super::activation::{activate, commutes_with_max};
use super::conv2d::cpu::{self as conv, Geometry};
use super::conv2d::{accumulate_grads, geometry};
use super::pool2d::cpu as pool;
use super::{Conv2D, Maps, MaxPool2D};
use crate::config::Activation;
pub use buffers::pooled_len;
use buffers::DEAD;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;
use rayon::prelude::*;
use std::cell::RefCell;

/// The block. Its one tensor field is named `0`, so parameters keep the names they had as the
/// tuple `(Conv2D, MaxPool2D, ReLU)`: `<block>.0.weight`, `<block>.0.bias`. `INPUT_GRAD = false`
/// is for a network's first block, whose input is data: it skips computing the input's gradient
/// (a GEMM and a col2im per step) and leaves it zero.
///
/// Its activation is ReLU unless configured otherwise. Other non-decreasing activations commute
/// with the max-pool too, so they take the fused kernels without the ReLU and are applied to the
/// pooled maps; GELU (which dips below zero) is applied before the pool, on the separate
/// convolution and pool ops: a slower path.
#[derive(Debug, Clone)]
pub struct ConvPoolRelu<
    const I: usize,
    const O: usize,
    const K: usize,
    const P: usize,
    const INPUT_GRAD: bool = true,
    E: Dtype = f32,
    D: Storage<E> = Cpu,
> {
    pub conv: Conv2D<I, O, K, P, E, D>,
    pub activation: Activation,
}

impl<const I: usize, const O: usize, const K: usize, const P: usize, const G: bool>
    TensorCollection<f32, Cpu> for ConvPoolRelu<I, O, K, P, G, f32, Cpu>
{
    type To<E2: Dtype, D2: Device<E2>> = ConvPoolRelu<I, O, K, P, G, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, Cpu>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(Self::module("0", |s| &s.conv, |s| &mut s.conv), |conv| {
            ConvPoolRelu {
                conv,
                activation: Activation::Relu,
            }
        })
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const P: usize,
        const G: bool,
        T: Tape<f32, Cpu>,
    > Module<Maps<I, T>> for ConvPoolRelu<I, O, K, P, G, f32, Cpu>
{
    type Output = Maps<O, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Maps<I, T>) -> Result<Maps<O, T>, CpuError> {
        match self.activation {
            Activation::Relu => self.fused(x, true),
            a if commutes_with_max(a) => activate(self.fused(x, false)?, a, None),
            a => MaxPool2D.try_forward(activate(self.conv.try_forward(x)?, a, None)?),
        }
    }
}

impl<const I: usize, const O: usize, const K: usize, const P: usize, const G: bool>
    ConvPoolRelu<I, O, K, P, G, f32, Cpu>
{
    /// Convolution and pool on the fused kernels, and the ReLU when `relu`.
    fn fused<T: Tape<f32, Cpu>>(&self, x: Maps<I, T>, relu: bool) -> Result<Maps<O, T>, CpuError> {
        let (x, mut tape) = x.split_tape();
        let (g, (ch, cw)) = geometry::<I, O, K, P>(x.shape());
        // The backward pass keeps copies of the input and weight; evaluation reads them in
        // place (an evaluation batch's maps are tens of megabytes).
        let kept = T::OWNS_TAPE.then(|| (super::data(&x), super::data(&self.conv.weight)));
        let (xs, ws) = match &kept {
            Some((xs, ws)) => (&xs[..], &ws[..]),
            None => (super::contiguous(&x), super::contiguous(&self.conv.weight)),
        };
        let mut out = super::zeroed(g.batch * pooled_len(&g));
        // Which input won each window: only the backward pass needs it.
        let mut argmax = vec![0u32; if T::OWNS_TAPE { out.len() } else { 0 }];
        forward(
            &g,
            xs,
            ws,
            super::contiguous(&self.conv.bias),
            &mut out,
            T::OWNS_TAPE.then_some(&mut argmax[..]),
            relu,
        );
        let out = x
            .device()
            .try_tensor_from_vec(out, (g.batch, ch / 2, cw / 2, Const::<O>))?;
        if let Some((xs, ws)) = kept {
            let (out_id, weight, bias) = (
                out.clone(),
                self.conv.weight.clone(),
                self.conv.bias.clone(),
            );
            tape.add_backward_op(move |grads| {
                let grad_pooled = grads.get_or_alloc_mut(&out_id)?.to_vec();
                accumulate_grads(grads, G.then_some(&x), &weight, &bias, |gx, gw, gb| {
                    backward(&g, &xs, &ws, &argmax, &grad_pooled, gx, gw, gb)
                })
            });
        }
        Ok(out.put_tape(tape))
    }
}

thread_local! {
    /// A chunk's convolution output (forward) or its gradient (backward), reused between
    /// calls: small enough to stay in cache between the convolution and the pool.
    static CONV_BUF: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's buffer, `len` long. Its contents are stale: `f` must write or
/// clear it. Where the buffer is in use further up this thread's stack (`f`'s products run on
/// rayon, and a thread waiting for them may take another chunk's task), a fresh one serves.
fn with_conv_buf<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let run = |buf: &mut Vec<f32>| {
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    };
    CONV_BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => run(&mut buf),
        Err(_) => run(&mut Vec::new()),
    })
}

/// The forward kernel of a block, chosen once per pass from its shape and this CPU.
enum ForwardKernel {
    /// One input channel: [`single_channel`] (fewer output channels than a vector padded to
    /// one).
    SingleChannel,
    Winograd(winograd::Winograd),
    Direct(direct_forward::Direct),
    /// im2col + GEMM, then the pool: every shape, every CPU. Holds
    /// [`conv::transposed_weight`].
    Im2col(Vec<f32>),
}

impl ForwardKernel {
    fn choose(g: &Geometry, w: &[f32]) -> ForwardKernel {
        if single_channel::forward_applies(g) {
            ForwardKernel::SingleChannel
        } else if let Some(k) = winograd::Winograd::new(g, w) {
            ForwardKernel::Winograd(k)
        } else if let Some(k) = direct_forward::Direct::new(g, w) {
            ForwardKernel::Direct(k)
        } else {
            ForwardKernel::Im2col(conv::transposed_weight(g, w))
        }
    }

    /// Convolution and pool of a chunk of images: pooled values (before the ReLU) and choices.
    fn pooled(
        &self,
        g: &Geometry,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        match self {
            ForwardKernel::SingleChannel => single_channel::forward_pooled(g, x, w, b, out, arg),
            ForwardKernel::Winograd(k) => k.forward_pooled(g, x, b, out, arg),
            ForwardKernel::Direct(k) => k.forward_pooled(g, x, b, out, arg),
            ForwardKernel::Im2col(transposed) => {
                let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
                let pooled = pooled_len(g);
                with_conv_buf(x.len() / g.in_len() * g.out_len(), |conv_out| {
                    conv::forward_chunk(g, x, w, transposed, b, conv_out);
                    for ((c, o), a) in conv_out
                        .chunks_exact(g.out_len())
                        .zip(out.chunks_exact_mut(pooled))
                        .zip(arg.chunks_exact_mut(pooled))
                    {
                        pool::forward_image(c, (ch, cw, g.cout), o, a);
                    }
                });
            }
        }
    }
}

/// The backward kernel of a block, chosen once per pass.
enum BackwardKernel {
    /// A first block (no input gradient) on one channel: [`single_channel::weight_grads`].
    SingleChannelWeights,
    Sparse(sparse_backward::Sparse),
    /// The pooled gradient routed into a full-size one, then the im2col GEMMs.
    Im2col,
}

impl BackwardKernel {
    fn choose(g: &Geometry, w: &[f32], input_grad: bool) -> BackwardKernel {
        if !input_grad && single_channel::applies(g) {
            BackwardKernel::SingleChannelWeights
        } else if let Some(k) = sparse_backward::Sparse::new(g, w) {
            BackwardKernel::Sparse(k)
        } else {
            BackwardKernel::Im2col
        }
    }

    /// A chunk's weight and bias gradients (and its input gradient, into `gx`).
    fn grads(
        &self,
        g: &Geometry,
        x: &[f32],
        w: &[f32],
        arg: &[u32],
        gy: &[f32],
        gx: Option<&mut [f32]>,
    ) -> conv::Partial {
        match self {
            BackwardKernel::SingleChannelWeights => single_channel::weight_grads(g, x, arg, gy),
            BackwardKernel::Sparse(k) => k.grads(g, x, arg, gy, gx),
            BackwardKernel::Im2col => {
                with_conv_buf(x.len() / g.in_len() * g.out_len(), |grad_conv| {
                    grad_conv.fill(0.0);
                    route_gradients(arg, gy, g.out_len(), grad_conv);
                    conv::backward_chunk(g, x, w, grad_conv, gx)
                })
            }
        }
    }
}

/// Convolution, pool and (when `relu`) ReLU chunk by chunk (the convolution's own chunks): each
/// chunk's full-size convolution output is pooled straight out of cache and never stored whole.
/// Without `argmax` (no backward pass to come), the pool's choices go to a chunk-sized scratch
/// buffer.
pub fn forward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    argmax: Option<&mut [u32]>,
    relu: bool,
) {
    let (n, pooled) = (g.images_per_chunk(), pooled_len(g));
    let arg_chunks: Vec<Option<&mut [u32]>> = match argmax {
        Some(a) => a.chunks_mut(n * pooled).map(Some).collect(),
        None => out.chunks(n * pooled).map(|_| None).collect(),
    };
    let kernel = ForwardKernel::choose(g, w);
    out.par_chunks_mut(n * pooled)
        .zip(arg_chunks)
        .zip(x.par_chunks(n * g.in_len()))
        .for_each(|((out, arg), x)| {
            let mut scratch = Vec::new();
            let arg = arg.unwrap_or_else(|| {
                scratch.resize(out.len(), 0);
                &mut scratch
            });
            kernel.pooled(g, x, w, b, out, arg);
            if !relu {
                return;
            }
            for (v, a) in out.iter_mut().zip(arg.iter_mut()) {
                // dfdx's ReLU: f = max(x, 0), df = 1 where x > 0, else 0.
                if *v <= 0.0 {
                    *a = DEAD;
                }
                *v = v.max(0.0);
            }
        });
}

/// The block's gradients chunk by chunk: each chunk's convolution-output gradient is built in
/// cache from the pooled gradient (through the ReLU and the pool's choices) and used at once.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    argmax: &[u32],
    grad_pooled: &[f32],
    grad_x: Option<&mut [f32]>,
    grad_w: &mut [f32],
    grad_b: &mut [f32],
) {
    let (n, pooled) = (g.images_per_chunk(), pooled_len(g));
    let kernel = BackwardKernel::choose(g, w, grad_x.is_some());
    let partials: Vec<conv::Partial> = conv::input_chunks(g, x, grad_x)
        .into_par_iter()
        .zip(grad_pooled.par_chunks(n * pooled))
        .zip(argmax.par_chunks(n * pooled))
        .map(|(((x, gx), gy), arg)| kernel.grads(g, x, w, arg, gy, gx))
        .collect();
    conv::add_partials(partials, grad_w, grad_b);
}

/// Pool backward through the ReLU: each live output's gradient goes to the input that won its
/// window (`grad_conv` starts at zero, and windows do not overlap, so this is an assignment).
fn route_gradients(argmax: &[u32], grad: &[f32], conv_per_image: usize, grad_conv: &mut [f32]) {
    let per_image = argmax.len() / (grad_conv.len() / conv_per_image);
    for ((gc, gy), arg) in grad_conv
        .chunks_exact_mut(conv_per_image)
        .zip(grad.chunks_exact(per_image))
        .zip(argmax.chunks_exact(per_image))
    {
        for (&i, &g) in arg.iter().zip(gy) {
            if i != DEAD {
                gc[i as usize] += g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::MaxPool2D;
    use dfdx::nn::modules::ReLU;

    /// The fused block against the three ops in a row: identical bits forward and backward on
    /// the im2col path (a 4x4 kernel on 3 channels: no vector kernel takes it).
    #[test]
    fn matches_conv_then_pool_then_relu_bit_for_bit() {
        let dev = Cpu::default();
        let mut block: ConvPoolRelu<3, 6, 4, 2> = ConvPoolRelu {
            conv: Conv2D::build(&dev),
            activation: Activation::Relu,
        };
        let val = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|j| ((j * 7919 + s) % 211) as f32 / 105.0 - 1.0)
                .collect()
        };
        block.conv.weight.copy_from(&val(6 * 4 * 4 * 3, 1));
        block.conv.bias.copy_from(&val(6, 2));
        let (b, h, w) = (3, 11, 9);
        let xs = val(b * h * w * 3, 3);
        let seq = (block.conv.clone(), MaxPool2D, ReLU);

        let x: Maps<3> = dev.tensor_from_vec(xs.clone(), (b, h, w, Const::<3>));
        let y1 = block.forward(x.trace(block.alloc_grads()));
        let x2: Maps<3> = dev.tensor_from_vec(xs, (b, h, w, Const::<3>));
        let y2 = seq.forward(x2.trace(seq.alloc_grads()));
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(y1.as_vec()), bits(y2.as_vec()));
        assert!(
            y1.as_vec().contains(&0.0),
            "some outputs are cut by the ReLU"
        );

        // A loss that weights outputs differently, so that every gradient path is exercised.
        let weights = dev.tensor_from_vec(val(y1.as_vec().len(), 4), *y1.shape());
        let g1 = (y1 * weights.clone()).sum().backward();
        let g2 = (y2 * weights).sum().backward();
        assert_eq!(
            bits(g1.get(&block.conv.weight).as_vec()),
            bits(g2.get(&seq.0.weight).as_vec())
        );
        assert_eq!(
            bits(g1.get(&block.conv.bias).as_vec()),
            bits(g2.get(&seq.0.bias).as_vec())
        );

        // Without the input gradient (a first block), the parameter gradients are the same.
        let first: ConvPoolRelu<3, 6, 4, 2, false> = ConvPoolRelu {
            conv: block.conv.clone(),
            activation: Activation::Relu,
        };
        let x3: Maps<3> = dev.tensor_from_vec(val(b * h * w * 3, 3), (b, h, w, Const::<3>));
        let y3 = first.forward(x3.trace(first.alloc_grads()));
        let weights = dev.tensor_from_vec(val(y3.as_vec().len(), 4), *y3.shape());
        let g3 = (y3 * weights).sum().backward();
        assert_eq!(
            bits(g3.get(&first.conv.weight).as_vec()),
            bits(g2.get(&seq.0.weight).as_vec())
        );
    }

    /// The chunk buffer taken again on the same thread while in use (a rayon worker waiting
    /// inside a product runs another chunk's task) is a separate buffer, not a panic.
    #[test]
    fn the_chunk_buffer_taken_again_on_the_same_thread_is_its_own() {
        with_conv_buf(8, |outer| {
            outer.fill(1.0);
            with_conv_buf(8, |inner| inner.fill(2.0));
            assert!(outer.iter().all(|&v| v == 1.0));
        });
    }

    /// With any other activation, the block computes what convolution, activation and pool in
    /// that order compute (the order PyTorch and Keras models use): the same outputs and, up to
    /// rounding, the same gradients.
    #[test]
    fn other_activations_match_conv_then_activation_then_pool() {
        use crate::ops::activation::Act;
        let dev = Cpu::default();
        let val = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|j| ((j * 7919 + s) % 211) as f32 / 105.0 - 1.0)
                .collect()
        };
        for activation in [
            Activation::LeakyRelu,
            Activation::Gelu,
            Activation::Tanh,
            Activation::Sigmoid,
            Activation::Elu,
        ] {
            let mut block: ConvPoolRelu<3, 6, 4, 2> = ConvPoolRelu {
                conv: Conv2D::build(&dev),
                activation,
            };
            block.conv.weight.copy_from(&val(6 * 4 * 4 * 3, 1));
            block.conv.bias.copy_from(&val(6, 2));
            let seq = (block.conv.clone(), Act { activation }, MaxPool2D);
            let (b, h, w) = (3, 11, 9);
            let x1: Maps<3> = dev.tensor_from_vec(val(b * h * w * 3, 3), (b, h, w, Const::<3>));
            let x2: Maps<3> = dev.tensor_from_vec(val(b * h * w * 3, 3), (b, h, w, Const::<3>));
            let (x1_id, x2_id) = (x1.clone(), x2.clone());
            let y1 = block.forward(x1.trace(Gradients::leaky()));
            let y2 = seq.forward(x2.trace(Gradients::leaky()));
            assert_eq!(y1.as_vec(), y2.as_vec(), "{activation:?}");
            let weights = dev.tensor_from_vec(val(y1.as_vec().len(), 4), *y1.shape());
            let g1 = (y1 * weights.clone()).sum().backward();
            let g2 = (y2 * weights).sum().backward();
            for (a, b) in [
                (g1.get(&x1_id).as_vec(), g2.get(&x2_id).as_vec()),
                (
                    g1.get(&block.conv.weight).as_vec(),
                    g2.get(&seq.0.weight).as_vec(),
                ),
            ] {
                let err = a
                    .iter()
                    .zip(&b)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(err <= 1e-5, "{activation:?}: gradient error {err}");
                assert!(b.iter().any(|&v| v != 0.0));
            }
        }
    }

    /// A block on 16 channels takes the direct forward and sparse backward kernels: through the
    /// tape, its outputs and gradients (input included) agree with the three ops in a row up
    /// to rounding.
    #[test]
    fn sparse_backward_block_matches_conv_then_pool_then_relu() {
        let dev = Cpu::default();
        let mut block: ConvPoolRelu<16, 8, 3, 1> = ConvPoolRelu {
            conv: Conv2D::build(&dev),
            activation: Activation::Relu,
        };
        let val = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|j| (((j * 7919 + s * 31) % 211) as f32 / 105.0 - 1.0) * 0.1)
                .collect()
        };
        block.conv.weight.copy_from(&val(8 * 3 * 3 * 16, 1));
        block.conv.bias.copy_from(&val(8, 2));
        let seq = (block.conv.clone(), MaxPool2D, ReLU);
        let (b, h, w) = (2, 8, 6);
        let xs = val(b * h * w * 16, 3);
        let x1: Maps<16> = dev.tensor_from_vec(xs.clone(), (b, h, w, Const::<16>));
        let x2: Maps<16> = dev.tensor_from_vec(xs, (b, h, w, Const::<16>));
        let (x1_id, x2_id) = (x1.clone(), x2.clone());
        // Leaky: keep every gradient, the input's included.
        let y1 = block.forward(x1.trace(Gradients::leaky()));
        let y2 = seq.forward(x2.trace(Gradients::leaky()));
        let weights = dev.tensor_from_vec(val(y1.as_vec().len(), 4), *y1.shape());
        let (y1_values, y2_values) = (y1.as_vec(), y2.as_vec());
        let g1 = (y1 * weights.clone()).sum().backward();
        let g2 = (y2 * weights).sum().backward();
        let close = |a: Vec<f32>, b: Vec<f32>| {
            assert_eq!(a.len(), b.len());
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(&b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(err <= 1e-5 * scale, "error {err} at scale {scale}");
            assert!(
                b.iter().any(|&v| v != 0.0),
                "a gradient that is all zero checks nothing"
            );
        };
        close(y1_values, y2_values);
        close(g1.get(&x1_id).as_vec(), g2.get(&x2_id).as_vec());
        close(
            g1.get(&block.conv.weight).as_vec(),
            g2.get(&seq.0.weight).as_vec(),
        );
        close(
            g1.get(&block.conv.bias).as_vec(),
            g2.get(&seq.0.bias).as_vec(),
        );
    }
}
