//! Gradient clipping by the global L2 norm over every parameter, as
//! `torch.nn.utils.clip_grad_norm_(parameters, max_norm)`: with `total` the norm of all gradients
//! taken together, every gradient is multiplied by `max_norm / (total + 1e-6)` when that is
//! below one. The sum of squares runs in f64, tensor by tensor in the network's order and
//! element by element within each, so it is one fixed order on every machine and thread count
//! (PyTorch sums per-tensor norms in f32; the two agree to f32 rounding).

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef,
};
use dfdx::prelude::*;

/// PyTorch's guard against dividing by a zero norm.
const EPS: f64 = 1e-6;

/// Scales `grads` so that their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_grad_norm<M: TensorCollection<f32, Cpu>>(
    model: &M,
    grads: &mut Gradients<f32, Cpu>,
    max_norm: f64,
) -> Result<f64, CpuError> {
    let mut sum = Walk {
        grads,
        action: Action::SumSquares(0.0),
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut sum,
    })?;
    let Action::SumSquares(squares) = sum.action else {
        unreachable!("the walk only sums")
    };
    let total = squares.sqrt();
    let coef = max_norm / (total + EPS);
    if coef < 1.0 {
        let mut scale = Walk {
            grads,
            action: Action::Scale(coef as f32),
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: model,
            f: &mut scale,
        })?;
    }
    Ok(total)
}

enum Action {
    SumSquares(f64),
    Scale(f32),
}

struct Walk<'a> {
    grads: &'a mut Gradients<f32, Cpu>,
    action: Action,
}

impl TensorVisitor<f32, Cpu> for Walk<'_> {
    type Viewer = ViewTensorRef;
    type Err = CpuError;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        p: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
        if !opts.do_gradient_update {
            return Ok(None);
        }
        let g = self.grads.get_or_alloc_mut(p)?;
        match &mut self.action {
            Action::SumSquares(sum) => {
                *sum += g.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            }
            Action::Scale(coef) => g.iter_mut().for_each(|v| *v *= *coef),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::nn::modules::Linear;

    /// Against the formula on naive loops: a gradient above the limit is scaled to it (the
    /// direction kept), one below is left alone bit for bit.
    #[test]
    fn clips_to_the_global_norm_like_torch() {
        let dev = Cpu::default();
        type Model = (Linear<3, 2, f32, Cpu>, Linear<2, 2, f32, Cpu>);
        let model = Model::build(&dev);
        let mut grads = model.alloc_grads();
        let values: Vec<Vec<f32>> = vec![
            vec![1.0, -2.0, 0.5, 3.0, 0.0, -1.5],
            vec![0.25, -0.75],
            vec![2.0, 1.0, -1.0, 0.5],
            vec![-0.5, 4.0],
        ];
        grads
            .get_or_alloc_mut(&model.0.weight)
            .unwrap()
            .copy_from_slice(&values[0]);
        grads
            .get_or_alloc_mut(&model.0.bias)
            .unwrap()
            .copy_from_slice(&values[1]);
        grads
            .get_or_alloc_mut(&model.1.weight)
            .unwrap()
            .copy_from_slice(&values[2]);
        grads
            .get_or_alloc_mut(&model.1.bias)
            .unwrap()
            .copy_from_slice(&values[3]);
        let squares: f64 = values.iter().flatten().map(|&v| (v as f64).powi(2)).sum();
        let norm = squares.sqrt();

        let before = grads.clone();
        let total = clip_grad_norm(&model, &mut grads, norm * 2.0).unwrap();
        assert_eq!(total, norm);
        assert_eq!(
            grads.get(&model.1.bias).as_vec(),
            before.get(&model.1.bias).as_vec()
        );

        let total = clip_grad_norm(&model, &mut grads, 1.0).unwrap();
        assert_eq!(total, norm);
        let coef = (1.0 / (norm + 1e-6)) as f32;
        let after = grads.get(&model.0.weight).as_vec();
        for (a, v) in after.iter().zip(&values[0]) {
            assert_eq!(*a, v * coef);
        }
        let new_squares: f64 = [
            grads.get(&model.0.weight).as_vec(),
            grads.get(&model.0.bias).as_vec(),
            grads.get(&model.1.weight).as_vec(),
            grads.get(&model.1.bias).as_vec(),
        ]
        .iter()
        .flatten()
        .map(|&v| (v as f64).powi(2))
        .sum();
        assert!(
            (new_squares.sqrt() - 1.0).abs() < 1e-5,
            "{}",
            new_squares.sqrt()
        );
    }
}
