//! `MaxPool2D`: 2x2 max pooling with stride 2 on NHWC maps, as a dfdx module.

pub mod cpu;

use super::Maps;
use dfdx::prelude::*;

/// 2x2 max pooling, stride 2. See [`cpu`] for odd sizes and ties. No parameters.
#[derive(Debug, Clone, Copy, Default)]
pub struct MaxPool2D;

impl ZeroSizedModule for MaxPool2D {}
impl NonMutableModule for MaxPool2D {}

impl<const C: usize, T: Tape<f32, Cpu>> Module<Maps<C, T>> for MaxPool2D {
    type Output = Maps<C, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Maps<C, T>) -> Result<Maps<C, T>, CpuError> {
        let (x, mut tape) = x.split_tape();
        let (batch, h, w, _) = *x.shape();
        let (oh, ow) = (h / 2, w / 2);
        let mut out = vec![0.0f32; batch * oh * ow * C];
        let mut argmax = vec![0u32; out.len()];
        cpu::forward(
            super::contiguous(&x),
            (batch, h, w, C),
            &mut out,
            &mut argmax,
        );
        let out = x
            .device()
            .try_tensor_from_vec(out, (batch, oh, ow, Const::<C>))?;
        if T::OWNS_TAPE {
            let out_id = out.clone();
            tape.add_backward_op(move |grads| {
                let grad_out = grads.get_or_alloc_mut(&out_id)?.to_vec();
                cpu::backward(&argmax, &grad_out, h * w * C, grads.get_or_alloc_mut(&x)?);
                Ok(())
            });
        }
        Ok(out.put_tape(tape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_sizes_drop_the_last_row_and_column() {
        let dev = Cpu::default();
        // 1 image, 3x3, 1 channel: only the top-left 2x2 window exists.
        let x: Maps<1> =
            dev.tensor_from_vec((1..=9).map(|v| v as f32).collect(), (1, 3, 3, Const::<1>));
        let y = MaxPool2D.forward(x);
        assert_eq!(*y.shape(), (1, 1, 1, Const::<1>));
        assert_eq!(y.as_vec(), vec![5.0]);
    }

    #[test]
    fn forward_matches_a_naive_reference_on_several_channels() {
        let (b, h, w, c) = (2, 5, 7, 3);
        let xs: Vec<f32> = (0..b * h * w * c)
            .map(|i| ((i * 37 % 101) as f32).sin())
            .collect();
        let mut out = vec![0.0; b * 2 * 3 * c];
        let mut arg = vec![0u32; out.len()];
        cpu::forward(&xs, (b, h, w, c), &mut out, &mut arg);
        for n in 0..b {
            for oy in 0..2 {
                for ox in 0..3 {
                    for ch in 0..c {
                        let at = |y: usize, x: usize| xs[((n * h + y) * w + x) * c + ch];
                        let m = at(2 * oy, 2 * ox)
                            .max(at(2 * oy, 2 * ox + 1))
                            .max(at(2 * oy + 1, 2 * ox))
                            .max(at(2 * oy + 1, 2 * ox + 1));
                        assert_eq!(out[((n * 2 + oy) * 3 + ox) * c + ch], m);
                    }
                }
            }
        }
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_only() {
        let dev = Cpu::default();
        let x: Maps<1> = dev.tensor_from_vec(vec![1.0, 3.0, 3.0, 3.0], (1, 2, 2, Const::<1>));
        let y = MaxPool2D.forward(x.leaky_trace());
        let grads = y.sum().backward();
        assert_eq!(grads.get(&x).as_vec(), vec![0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn gradient_is_routed_to_the_window_maxima() {
        let dev = Cpu::default();
        let vals = vec![
            1.0, 2.0, 0.0, 5.0, 3.0, 4.0, 9.0, 8.0, 7.0, 6.0, 1.0, 1.0, 0.5, 0.25, 2.0, 1.0,
        ];
        // 1 image 4x4, 1 channel; windows: {1,2,3,4}->4 at (1,1); {0,5,9,8}->9 at (1,2)
        let x: Maps<1> = dev.tensor_from_vec(vals, (1, 4, 4, Const::<1>));
        let y = MaxPool2D.forward(x.leaky_trace());
        assert_eq!(y.as_vec(), vec![4.0, 9.0, 7.0, 2.0]);
        let w = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 2, 2, Const::<1>));
        let grads = (y * w).sum().backward();
        let g = grads.get(&x).as_vec();
        let mut expected = vec![0.0; 16];
        expected[5] = 1.0; // 4.0
        expected[6] = 2.0; // 9.0
        expected[8] = 3.0; // 7.0
        expected[14] = 4.0; // 2.0
        assert_eq!(g, expected);
    }
}
