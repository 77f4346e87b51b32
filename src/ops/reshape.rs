//! Reshapes between flat vectors and NHWC maps. Both are free for contiguous tensors (dfdx
//! keeps the data and the gradient identity).

use super::tensors::Images;
use super::Maps;
use crate::data::mnist::{IMAGE_PIXELS, IMAGE_SIDE};
use dfdx::prelude::*;

/// Flat 784-pixel images to `N x 28 x 28 x 1` maps.
#[derive(Debug, Clone, Copy, Default)]
pub struct ToImage;

impl ZeroSizedModule for ToImage {}
impl NonMutableModule for ToImage {}

impl<T: Tape<f32, Cpu>> Module<Images<T>> for ToImage {
    type Output = Maps<1, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Images<T>) -> Result<Maps<1, T>, CpuError> {
        let batch = x.shape().0;
        debug_assert_eq!(IMAGE_SIDE * IMAGE_SIDE, IMAGE_PIXELS);
        x.try_reshape_like(&(batch, IMAGE_SIDE, IMAGE_SIDE, Const::<1>))
    }
}

/// NHWC maps to flat feature vectors of length `F` (= h * w * C, checked at run time).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flatten<const F: usize>;

impl<const F: usize> ZeroSizedModule for Flatten<F> {}
impl<const F: usize> NonMutableModule for Flatten<F> {}

impl<const C: usize, const F: usize, T: Tape<f32, Cpu>> Module<Maps<C, T>> for Flatten<F> {
    type Output = Tensor<(usize, Const<F>), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Maps<C, T>) -> Result<Self::Output, CpuError> {
        let (batch, h, w, _) = *x.shape();
        assert_eq!(
            h * w * C,
            F,
            "Flatten<{F}>: maps are {h}x{w}x{C}; the registry computed the wrong size"
        );
        x.try_reshape_like(&(batch, Const::<F>))
    }
}
