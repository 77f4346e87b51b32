//! The tensor types the networks pass between layers: flat images in, class logits out.

use crate::data::mnist::{CLASSES, IMAGE_PIXELS};
use dfdx::prelude::*;

/// A batch of flattened images, batch size chosen at run time.
pub type Images<T = NoneTape> = Tensor<(usize, Const<IMAGE_PIXELS>), f32, Cpu, T>;
/// Class logits for a batch.
pub type Logits<T = NoneTape> = Tensor<(usize, Const<CLASSES>), f32, Cpu, T>;
/// The gradient tape of a training step.
pub type Taped = OwnedTape<f32, Cpu>;
