//! Differentiable ops that dfdx 0.13 lacks on stable Rust (convolution, pooling), as dfdx
//! modules on its gradient tape. Each op keeps its shapes and tape code (`mod.rs`) apart from
//! its CPU kernels (`cpu.rs`), so a CUDA kernel can sit beside them later.

pub mod activation;
pub mod conv2d;
pub mod conv_block;
pub mod dense;
pub mod first_dense;
pub mod gemm;
mod isa;
pub mod params;
pub mod pool2d;
pub mod reshape;
pub mod tensors;
mod vector;

pub use conv2d::Conv2D;
pub use conv_block::ConvPoolRelu;
pub use dense::Dense;
pub use first_dense::FirstDense;
pub use pool2d::MaxPool2D;
pub use reshape::{Flatten, ToImage};

use dfdx::prelude::*;

/// A batch of NHWC feature maps: batch and spatial sizes at run time, channels at compile time.
pub type Maps<const C: usize, T = NoneTape> = Tensor<(usize, usize, usize, Const<C>), f32, Cpu, T>;

/// A copy of a contiguous CPU tensor's data, as every tensor these ops receive is (fresh
/// outputs, parameters, reshapes of those), for a backward pass to keep. One `memcpy`: dfdx
/// 0.13's `as_vec` walks a strided iterator element by element, several times slower.
fn data<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    contiguous(t).to_vec()
}

/// The data of a contiguous CPU tensor (see [`data`]), read in place: where nothing keeps it
/// for a backward pass, an evaluation batch (megabytes) need not be copied.
fn contiguous<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> &[f32] {
    let v = t.as_slice();
    debug_assert!(v == t.as_vec(), "a tensor with non-standard strides");
    v
}

/// `vec![0.0; len]`, zeroed by the rayon workers in parallel when it is large. An evaluation
/// batch's activations are tens of megabytes; zeroing them on the calling thread took about
/// 14 % of an evaluation's wall time (perf, per thread), with the other core idle. Below a
/// megabyte, waking the workers costs more than it saves (a 3 KB weight took 35 us).
pub fn zeroed(len: usize) -> Vec<f32> {
    use rayon::prelude::*;
    if len < PARALLEL_ZEROING {
        return vec![0.0; len];
    }
    let mut v = Vec::with_capacity(len);
    v.par_extend(rayon::iter::repeat_n(0.0f32, len));
    v
}

/// Values (a megabyte) from which [`zeroed`] zeroes in parallel.
const PARALLEL_ZEROING: usize = 1 << 18;

/// `rows[r][j] += v[j]` for every row of `v.len()` values: a bias added to each output row, one
/// rounding per sum (as dfdx's broadcast add). In parallel, in tasks of whole rows of about
/// 64 K values, where the rows are many (an evaluation batch); each sum is the same either way.
pub fn add_to_rows(rows: &mut [f32], v: &[f32]) {
    use rayon::prelude::*;
    let add = |rows: &mut [f32]| {
        for row in rows.chunks_exact_mut(v.len()) {
            for (r, x) in row.iter_mut().zip(v) {
                *r += x;
            }
        }
    };
    if rows.len() < PARALLEL_ZEROING || v.is_empty() {
        return add(rows);
    }
    let task_rows = (1usize << 16).div_ceil(v.len());
    rows.par_chunks_mut(task_rows * v.len()).for_each(add);
}

/// `sum[j] += rows[r][j]`, row by row in order: a bias's gradient summed down the batch (dfdx's
/// broadcast add's backward, so the same bits).
pub fn add_rows(sum: &mut [f32], rows: &[f32]) {
    for row in rows.chunks_exact(sum.len()) {
        for (s, x) in sum.iter_mut().zip(row) {
            *s += x;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeroed_is_all_zeros_at_any_length() {
        for len in [0, 1, 17, 100_003, super::PARALLEL_ZEROING, 300_007] {
            let v = super::zeroed(len);
            assert_eq!(v.len(), len);
            assert!(v.iter().all(|&x| x.to_bits() == 0));
        }
    }
}
