//! `ConvPoolRelu`: convolution, 2x2 max-pool and ReLU as one op on the tape. The same arithmetic
//! as the three ops in a row, bit for bit, but the full-size convolution output (4x the pooled
//! size) never becomes a dfdx tensor: no copy of it out of dfdx for the pool, no zeroed gradient
//! tensor for it, and no copy of that gradient out again for the convolution's backward.

use super::conv2d::cpu as conv;
use super::conv2d::{accumulate_grads, geometry, Inputs};
use super::pool2d::cpu as pool;
use super::{Conv2D, Maps};
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;
use std::cell::RefCell;

/// The block. Its one field is named `0`, so parameters keep the names they had as the tuple
/// `(Conv2D, MaxPool2D, ReLU)`: `<block>.0.weight`, `<block>.0.bias`. `INPUT_GRAD = false` is for
/// a network's first block, whose input is data: it skips computing the input's gradient (a
/// GEMM and a col2im per step) and leaves it zero.
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
}

impl<const I: usize, const O: usize, const K: usize, const P: usize, const G: bool>
    TensorCollection<f32, Cpu> for ConvPoolRelu<I, O, K, P, G, f32, Cpu>
{
    type To<E2: Dtype, D2: Device<E2>> = ConvPoolRelu<I, O, K, P, G, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, f32, Cpu>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(Self::module("0", |s| &s.conv, |s| &mut s.conv), |conv| {
            ConvPoolRelu { conv }
        })
    }
}

/// Marks an output that the ReLU zeroed: its gradient goes nowhere.
const DEAD: u32 = u32::MAX;

thread_local! {
    /// The convolution output, reused between calls (it is only needed inside `forward`).
    static CONV_OUT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
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
        let (x, mut tape) = x.split_tape();
        let (g, (ch, cw)) = geometry::<I, O, K, P>(x.shape());
        let batch = g.batch;
        let (ph, pw) = (ch / 2, cw / 2);
        let xs = super::data(&x);
        let ws = super::data(&self.conv.weight);
        let mut out = vec![0.0f32; batch * ph * pw * O];
        let mut argmax = vec![0u32; out.len()];
        CONV_OUT.with_borrow_mut(|conv_out| {
            // The convolution overwrites every element, so stale contents do not matter.
            conv_out.resize(batch * ch * cw * O, 0.0);
            conv::forward(&g, &xs, &ws, &super::data(&self.conv.bias), conv_out);
            pool::forward(conv_out, (batch, ch, cw, O), &mut out, &mut argmax);
        });
        for (v, a) in out.iter_mut().zip(argmax.iter_mut()) {
            // dfdx's ReLU: f = max(x, 0), df = 1 where x > 0, else 0.
            if *v <= 0.0 {
                *a = DEAD;
            }
            *v = v.max(0.0);
        }
        let out = x
            .device()
            .try_tensor_from_vec(out, (batch, ph, pw, Const::<O>))?;
        if T::OWNS_TAPE {
            let (out_id, weight, bias) = (
                out.clone(),
                self.conv.weight.clone(),
                self.conv.bias.clone(),
            );
            tape.add_backward_op(move |grads| {
                let grad_pooled = grads.get_or_alloc_mut(&out_id)?.to_vec();
                let mut grad_conv = vec![0.0f32; batch * ch * cw * O];
                route_gradients(&argmax, &grad_pooled, ch * cw * O, &mut grad_conv);
                let inputs = Inputs {
                    g: &g,
                    xs: &xs,
                    ws: &ws,
                };
                let x = G.then_some(&x);
                accumulate_grads(grads, &inputs, &grad_conv, x, &weight, &bias)
            });
        }
        Ok(out.put_tape(tape))
    }
}

/// Pool backward through the ReLU: each live output's gradient goes to the input that won its
/// window (`grad_conv` starts at zero, and windows do not overlap, so this is an assignment).
fn route_gradients(argmax: &[u32], grad: &[f32], conv_per_image: usize, grad_conv: &mut [f32]) {
    use rayon::prelude::*;
    if grad.is_empty() {
        return;
    }
    let per_image = grad.len() / (grad_conv.len() / conv_per_image);
    grad_conv
        .par_chunks_mut(conv_per_image)
        .zip(grad.par_chunks(per_image).zip(argmax.par_chunks(per_image)))
        .for_each(|(gc, (gy, arg))| {
            for (&i, &g) in arg.iter().zip(gy) {
                if i != DEAD {
                    gc[i as usize] += g;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::MaxPool2D;
    use dfdx::nn::modules::ReLU;

    /// The fused block against the three ops in a row: identical bits forward and backward.
    #[test]
    fn matches_conv_then_pool_then_relu_bit_for_bit() {
        let dev = Cpu::default();
        let mut block: ConvPoolRelu<3, 8, 5, 2> = ConvPoolRelu {
            conv: Conv2D::build(&dev),
        };
        let val = |n: usize, s: usize| -> Vec<f32> {
            (0..n)
                .map(|j| ((j * 7919 + s) % 211) as f32 / 105.0 - 1.0)
                .collect()
        };
        block.conv.weight.copy_from(&val(8 * 5 * 5 * 3, 1));
        block.conv.bias.copy_from(&val(8, 2));
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
        let first: ConvPoolRelu<3, 8, 5, 2, false> = ConvPoolRelu {
            conv: block.conv.clone(),
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
}
