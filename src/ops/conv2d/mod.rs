//! `Conv2D`: 2-D convolution with bias, stride 1, NHWC, as a dfdx module.

pub mod cpu;

use super::Maps;
use cpu::Geometry;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;
use rand_distr::Uniform;

/// Convolution from `I` to `O` channels with a `K x K` kernel and `P` zero padding on each side
/// (`P = K / 2` is 'same', `P = 0` is 'valid'). Safetensors names: `weight` (`[O, K, K, I]`) and
/// `bias` (`[O]`).
#[derive(Debug, Clone)]
pub struct Conv2D<
    const I: usize,
    const O: usize,
    const K: usize,
    const P: usize,
    E: Dtype = f32,
    D: Storage<E> = Cpu,
> {
    pub weight: Tensor<Rank4<O, K, K, I>, E, D>,
    pub bias: Tensor<Rank1<O>, E, D>,
}

impl<const I: usize, const O: usize, const K: usize, const P: usize> TensorCollection<f32, Cpu>
    for Conv2D<I, O, K, P, f32, Cpu>
{
    type To<E2: Dtype, D2: Device<E2>> = Conv2D<I, O, K, P, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, Cpu>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor("weight", |s| &s.weight, |s| &mut s.weight, reset_weight()),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
            ),
            |(weight, bias)| Conv2D { weight, bias },
        )
    }
}

impl<const I: usize, const O: usize, const K: usize, const P: usize, T: Tape<f32, Cpu>>
    Module<Maps<I, T>> for Conv2D<I, O, K, P, f32, Cpu>
{
    type Output = Maps<O, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Maps<I, T>) -> Result<Maps<O, T>, CpuError> {
        let (x, mut tape) = x.split_tape();
        let (g, (oh, ow)) = geometry::<I, O, K, P>(x.shape());
        let batch = g.batch;
        let xs = super::data(&x);
        let ws = super::data(&self.weight);
        let mut out = vec![0.0f32; batch * oh * ow * O];
        cpu::forward(&g, &xs, &ws, super::contiguous(&self.bias), &mut out);
        let out = x
            .device()
            .try_tensor_from_vec(out, (batch, oh, ow, Const::<O>))?;
        if T::OWNS_TAPE {
            let (out_id, weight, bias) = (out.clone(), self.weight.clone(), self.bias.clone());
            tape.add_backward_op(move |grads| {
                let grad_out = grads.get_or_alloc_mut(&out_id)?.to_vec();
                accumulate_grads(grads, Some(&x), &weight, &bias, |gx, gw, gb| {
                    cpu::backward(&g, &xs, &ws, &grad_out, gx, gw, gb)
                })
            });
        }
        Ok(out.put_tape(tape))
    }
}

/// Adds a convolution's gradients to `grads`: `backward(grad_x, grad_weight, grad_bias)` adds
/// to the three (`grad_x` is `None` when `x` is: a network's input needs no gradient).
pub(crate) fn accumulate_grads<SX: Shape, SW: Shape, SB: Shape>(
    grads: &mut Gradients<f32, Cpu>,
    x: Option<&Tensor<SX, f32, Cpu>>,
    weight: &Tensor<SW, f32, Cpu>,
    bias: &Tensor<SB, f32, Cpu>,
    backward: impl FnOnce(Option<&mut [f32]>, &mut [f32], &mut [f32]),
) -> Result<(), CpuError> {
    // dfdx lends one gradient at a time: the parameters' are summed apart, then added.
    let mut gw = vec![0.0f32; weight.shape().num_elements()];
    let mut gb = vec![0.0f32; bias.shape().num_elements()];
    let grad_x = match x {
        Some(x) => Some(&mut grads.get_or_alloc_mut(x)?[..]),
        None => None,
    };
    backward(grad_x, &mut gw, &mut gb);
    add_into(grads.get_or_alloc_mut(weight)?, &gw);
    add_into(grads.get_or_alloc_mut(bias)?, &gb);
    Ok(())
}

/// The geometry of a convolution on maps of `shape`, and its output size. Panics when the kernel
/// does not fit (the model registry only builds networks where it does).
pub(crate) fn geometry<const I: usize, const O: usize, const K: usize, const P: usize>(
    &(batch, h, w, _): &(usize, usize, usize, Const<I>),
) -> (Geometry, (usize, usize)) {
    let g = Geometry {
        batch,
        h,
        w,
        cin: I,
        cout: O,
        k: K,
        pad: P,
    };
    let out = g.out_hw().unwrap_or_else(|| {
        panic!("Conv2D: a {K}x{K} kernel with padding {P} does not fit a {h}x{w} input")
    });
    (g, out)
}

/// dfdx's `reset_params`: uniform ±1/sqrt(fan_in) weights (zero bias). Training re-initialises
/// from the experiment seed with `models::init`.
fn reset_weight<S: ConstShape>() -> TensorOptions<S, f32, Cpu> {
    TensorOptions::reset_with(|t| {
        let fan_in =
            t.shape().num_elements() / t.shape().concrete().into_iter().next().unwrap_or(1).max(1);
        let b = 1.0 / (fan_in.max(1) as f32).sqrt();
        t.try_fill_with_distr(Uniform::new(-b, b))
    })
}

fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
}

#[cfg(test)]
mod tests;
