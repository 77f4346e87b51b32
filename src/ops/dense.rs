//! `Dense`: a hidden or output dense layer, `x Wᵀ + b`. It is dfdx's `Linear` (the same
//! parameters, names and initialisation, and on a tape dfdx's own ops, so training is
//! unchanged) with an evaluation path of its own: dfdx adds the bias by a broadcast add that
//! allocates a second output and walks it with strided indices on one thread, with the other
//! core idle (with `FirstDense`'s copy of its input, 57 -> 53 ms of an MLP's evaluation on an
//! Intel Xeon). Here the product is written once and
//! the bias added to it in place, in parallel: the same two roundings per output, so the same
//! bits.

use super::gemm::{matmul, View};
use dfdx::prelude::*;

/// `TensorCollection` for a layer with dfdx `Linear`'s parameters: `weight` `[O, I]` and `bias`
/// `[O]`, under those names, initialised as dfdx does (uniform in ±1/√I, weight first).
macro_rules! linear_parameters {
    ($layer:ident) => {
        impl<const I: usize, const O: usize> dfdx::nn::tensor_collection::TensorCollection<f32, Cpu>
            for $layer<I, O, f32, Cpu>
        {
            type To<E2: Dtype, D2: Device<E2>> = $layer<I, O, E2, D2>;

            fn iter_tensors<V: dfdx::nn::tensor_collection::ModuleVisitor<Self, f32, Cpu>>(
                visitor: &mut V,
            ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
                use dfdx::nn::tensor_collection::TensorOptions;
                use $crate::ops::dense::linear_init as init;
                visitor.visit_fields(
                    (
                        Self::tensor(
                            "weight",
                            |s| &s.weight,
                            |s| &mut s.weight,
                            TensorOptions::reset_with(|t| t.try_fill_with_distr(init::<I>())),
                        ),
                        Self::tensor(
                            "bias",
                            |s| &s.bias,
                            |s| &mut s.bias,
                            TensorOptions::reset_with(|t| t.try_fill_with_distr(init::<I>())),
                        ),
                    ),
                    |(weight, bias)| $layer { weight, bias },
                )
            }
        }
    };
}
pub(crate) use linear_parameters;

/// dfdx's `Linear` initialisation: uniform in ±1/√I (runner's `init` replaces it).
pub(crate) fn linear_init<const I: usize>() -> rand_distr::Uniform<f32> {
    let bound = 1.0 / (I as f32).sqrt();
    rand_distr::Uniform::new(-bound, bound)
}

/// The layer: `weight` `[O, I]` and `bias` `[O]` as in dfdx's `Linear`.
#[derive(Debug, Clone)]
pub struct Dense<const I: usize, const O: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub weight: Tensor<Rank2<O, I>, E, D>,
    pub bias: Tensor<Rank1<O>, E, D>,
}

linear_parameters!(Dense);

impl<const I: usize, const O: usize> NonMutableModule for Dense<I, O, f32, Cpu> {}

impl<B: Dim, const I: usize, const O: usize, T: Tape<f32, Cpu>>
    Module<Tensor<(B, Const<I>), f32, Cpu, T>> for Dense<I, O, f32, Cpu>
{
    type Output = Tensor<(B, Const<O>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<(B, Const<I>), f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        if T::OWNS_TAPE {
            // dfdx's `Linear::forward`, op for op.
            let y = x.try_matmul(self.weight.retaped::<T>().try_permute()?)?;
            let shape = *y.shape();
            return y.try_add(self.bias.retaped::<T>().try_broadcast_like(&shape)?);
        }
        let rows = x.shape().0.size();
        let mut y = product::<I, O>(super::contiguous(&x), self.weight.as_slice(), rows);
        super::add_to_rows(&mut y, self.bias.as_slice());
        let (x, tape) = x.split_tape();
        let out = x
            .device()
            .try_tensor_from_vec(y, (x.shape().0, Const::<O>))?;
        Ok(out.put_tape(tape))
    }
}

/// `x Wᵀ` for `rows` rows of `x` and `weight` `[O][I]`, both read in place, into a fresh
/// buffer: the shim call dfdx's `matmul` makes, so the same bits, without dfdx's copy of it.
pub(crate) fn product<const I: usize, const O: usize>(
    x: &[f32],
    weight: &[f32],
    rows: usize,
) -> Vec<f32> {
    let mut y = super::zeroed(rows * O);
    matmul(
        View::rows(x, rows, I),
        View::transposed(weight, I, O),
        &mut y,
        false,
    );
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::nn::modules::Linear;

    /// The same parameters as dfdx's `Linear` built from the same seed, the same outputs with
    /// and without a tape, and the same gradients, bit for bit.
    #[test]
    fn is_dfdx_linear_bit_for_bit() {
        fn check<const I: usize, const O: usize>(rows: usize) {
            let dev = Cpu::seed_from_u64(7);
            let linear = Linear::<I, O, f32, Cpu>::build(&dev);
            let dev = Cpu::seed_from_u64(7);
            let dense = Dense::<I, O, f32, Cpu>::build(&dev);
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(linear.weight.as_vec()), bits(dense.weight.as_vec()));
            assert_eq!(bits(linear.bias.as_vec()), bits(dense.bias.as_vec()));
            let xs: Vec<f32> = (0..rows * I)
                .map(|j| ((j * 7919) % 1013) as f32 / 1013.0 - 0.5)
                .collect();
            let x = dev.tensor_from_vec(xs, (rows, Const::<I>));
            let expected = bits(linear.forward(x.clone()).as_vec());
            assert_eq!(
                bits(dense.forward(x.clone()).as_vec()),
                expected,
                "evaluation"
            );
            let y_lin = linear.forward(x.clone().traced(Gradients::leaky()));
            let y_dense = dense.forward(x.clone().traced(Gradients::leaky()));
            assert_eq!(bits(y_dense.as_vec()), expected, "training forward");
            let g_lin = y_lin.square().sum().backward();
            let g_dense = y_dense.square().sum().backward();
            for (a, b) in [
                (
                    g_lin.get(&linear.weight).as_vec(),
                    g_dense.get(&dense.weight).as_vec(),
                ),
                (
                    g_lin.get(&linear.bias).as_vec(),
                    g_dense.get(&dense.bias).as_vec(),
                ),
                (g_lin.get(&x).as_vec(), g_dense.get(&x).as_vec()),
            ] {
                assert_eq!(bits(a), bits(b), "gradients");
            }
        }
        // An evaluation batch (the shim's column blocks), a training batch, odd sizes.
        check::<512, 256>(1000);
        check::<512, 256>(50);
        check::<300, 100>(7);
        check::<100, 10>(1);
        check::<33, 5>(3);
    }
}
