//! `FirstDense`: a network's first dense layer, whose input is data. dfdx's `Linear` computes
//! the input's gradient on every step (its matmul's backward always fills both operands'), a
//! product as large as the weight's gradient that nothing reads; this layer skips it. Otherwise
//! it is `Linear`: the same parameters, names and initialisation, dfdx's own forward product,
//! and the bias and both gradients in the same arithmetic (so the same bits). Where the input
//! is mostly zeros (MNIST's pixels), both products run over its nonzero values alone
//! ([`sparse`]), again in the same bits.

mod sparse;

use super::gemm::{matmul, View};
use dfdx::prelude::*;

/// The layer: `x Wᵀ + b`, `weight` `[O, I]` and `bias` `[O]` as in dfdx's `Linear`.
#[derive(Debug, Clone)]
pub struct FirstDense<const I: usize, const O: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub weight: Tensor<Rank2<O, I>, E, D>,
    pub bias: Tensor<Rank1<O>, E, D>,
}

super::dense::linear_parameters!(FirstDense);

impl<B: Dim, const I: usize, const O: usize, T: Tape<f32, Cpu>>
    Module<Tensor<(B, Const<I>), f32, Cpu, T>> for FirstDense<I, O, f32, Cpu>
{
    type Output = Tensor<(B, Const<O>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, Const<I>), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        let (x, mut tape) = x.split_tape();
        let rows = x.shape().0.size();
        let xs = super::contiguous(&x);
        let isa = sparse::applies(xs, I);
        let mut y = match isa.and_then(|isa| self.sparse_forward(isa, xs, rows)) {
            Some(y) => y,
            None => super::dense::product::<I, O>(xs, self.weight.as_slice(), rows),
        };
        // The bias added in place, each sum the same single rounding as dfdx's broadcast add
        // (whose index arithmetic per value cost more than the sum, forward and backward).
        super::add_to_rows(&mut y, self.bias.as_slice());
        let out = x
            .device()
            .try_tensor_from_vec(y, (x.shape().0, Const::<O>))?;
        if T::OWNS_TAPE {
            // The weight gradient reads the batch (copied: evaluation reads it in place).
            let xs = xs.to_vec();
            let (out_id, weight, bias) = (out.clone(), self.weight.clone(), self.bias.clone());
            tape.add_backward_op(move |grads| {
                let grad_out = grads.get_or_alloc_mut(&out_id)?.to_vec();
                // `db += Σ g` down the batch, row by row in order: dfdx's broadcast add's
                // backward (`1 * g` is `g`), so the same bits.
                super::add_rows(grads.get_or_alloc_mut(&bias)?, &grad_out);
                let dw = grads.get_or_alloc_mut(&weight)?;
                let dims = (rows, I, O);
                if !isa.is_some_and(|isa| sparse::weight_grad(isa, &xs, &grad_out, dims, dw)) {
                    // `dW += gᵀ x`: each element the same chain of products over the batch as
                    // dfdx's `xᵀ g` into the transposed weight, so the same bits.
                    matmul(
                        View::transposed(&grad_out, O, rows),
                        View::rows(&xs, rows, I),
                        dw,
                        true,
                    );
                }
                Ok(())
            });
        }
        Ok(out.put_tape(tape))
    }
}

impl<const I: usize, const O: usize> FirstDense<I, O, f32, Cpu> {
    /// `x Wᵀ` over the nonzero inputs, or `None` where a weight is not finite.
    fn sparse_forward(
        &self,
        isa: crate::ops::isa::Isa,
        xs: &[f32],
        rows: usize,
    ) -> Option<Vec<f32>> {
        let mut y = super::zeroed(rows * O);
        // The weight read in place (the patched dfdx's `as_slice`; a parameter is contiguous).
        let w = self.weight.as_slice();
        sparse::forward(isa, xs, w, (rows, I, O), &mut y).then_some(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::nn::modules::Linear;

    /// Outputs, weight and bias gradients bit for bit those of dfdx's `Linear` with the same
    /// parameters, at a batch of 50 and of 130 (more rows than a block of the kernels), on a
    /// width that is and one that is not a multiple of 16, with dense inputs and with four in
    /// five zeros (the sparse kernels, where the CPU has them); and the gradient of the input,
    /// which this layer skips, is never allocated.
    #[test]
    fn matches_dfdx_linear_bit_for_bit_without_the_input_gradient() {
        fn check<const I: usize, const O: usize>(rows: usize, sparse: bool) {
            let dev = Cpu::default();
            let linear = Linear::<I, O, f32, Cpu>::build(&dev);
            let first = FirstDense::<I, O, f32, Cpu> {
                weight: linear.weight.clone(),
                bias: linear.bias.clone(),
            };
            let xs: Vec<f32> = (0..rows * I)
                .map(|j| ((j * 7919) % 1013) as f32 / 1013.0 - 0.5)
                .map(|v| if sparse && v.abs() < 0.4 { 0.0 } else { v })
                .collect();
            let by_lists = sparse::applies(&xs, I).is_some();
            if sparse && I.is_multiple_of(16) {
                assert_eq!(
                    by_lists,
                    super::super::isa::Isa::fitting(64).next().is_some()
                );
            }
            let x = dev.tensor_from_vec(xs, (rows, Const::<I>));
            let y_lin = linear.forward(x.clone().traced(Gradients::leaky()));
            let y_first = first.forward(x.clone().traced(Gradients::leaky()));
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let forward = bits(y_first.as_vec());
            assert_eq!(bits(y_lin.as_vec()), forward, "forward");
            let g_lin = (y_lin.square().sum()).backward();
            let g_first = (y_first.square().sum()).backward();
            assert_eq!(
                bits(g_lin.get(&linear.weight).as_vec()),
                bits(g_first.get(&first.weight).as_vec()),
                "weight gradient"
            );
            assert_eq!(
                bits(g_lin.get(&linear.bias).as_vec()),
                bits(g_first.get(&first.bias).as_vec()),
                "bias gradient"
            );
            // dfdx's `get` panics on a tensor without a gradient.
            let has_grad = |g: &Gradients<f32, Cpu>| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.get(&x))).is_ok()
            };
            assert!(has_grad(&g_lin));
            assert!(!has_grad(&g_first), "input gradient computed");
            // Without a tape (evaluation) the same values.
            assert_eq!(bits(first.forward(x).as_vec()), forward);
        }
        for sparse in [false, true] {
            check::<48, 20>(50, sparse);
            check::<40, 33>(130, sparse);
            check::<784, 70>(130, sparse);
        }
    }
}
