//! Shared test references of the block's kernels: the im2col path, and the forward cases.

use super::buffers::pooled_len;
use crate::ops::conv2d::cpu::{self as conv, Geometry};
use crate::ops::isa;
use crate::ops::pool2d::cpu as pool;

/// Reference for the vector kernels' tests: the im2col convolution, then the pool, image by
/// image; returns the pooled values (before the ReLU) and the pool's choices.
pub fn im2col_then_pool(g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (ch, cw) = g.out_hw().expect("a valid geometry");
    let mut conv_out = vec![0.0; g.batch * g.out_len()];
    conv::forward(g, x, w, b, &mut conv_out);
    let pooled = pooled_len(g);
    let (mut out, mut arg) = (vec![0.0; g.batch * pooled], vec![0u32; g.batch * pooled]);
    for ((c, o), a) in conv_out
        .chunks_exact(g.out_len())
        .zip(out.chunks_exact_mut(pooled))
        .zip(arg.chunks_exact_mut(pooled))
    {
        pool::forward_image(c, (ch, cw, g.cout), o, a);
    }
    (out, arg)
}

/// A multi-channel forward kernel's test case: shape, input, weights, bias, and what the
/// im2col path gives (pooled values and choices).
pub type ForwardCase = (Geometry, Vec<f32>, Vec<f32>, Vec<f32>, (Vec<f32>, Vec<u32>));

/// The multi-channel forward kernels' test cases for kernel size `k`: odd sizes (the pool drops
/// the last row and column), 1 to 4 vectors of output channels, 'same' and 'valid' padding.
pub fn forward_cases(k: usize) -> Vec<ForwardCase> {
    cases_of(
        k,
        &[
            (14, 14, 32, 64),
            (9, 19, 16, 16),
            (6, 7, 8, 32),
            (12, 30, 24, 8),
        ],
    )
}

/// Forward cases for kernel size `k` on each `(h, w, cin, cout)`, 'same' and 'valid' padding,
/// two images. The inputs are spread enough that no window has two values within rounding of
/// each other.
pub fn cases_of(k: usize, shapes: &[(usize, usize, usize, usize)]) -> Vec<ForwardCase> {
    use isa::test_values as val;
    let mut cases = Vec::new();
    for &(h, w, cin, cout) in shapes {
        for pad in [k / 2, 0] {
            let g = Geometry {
                batch: 2,
                h,
                w,
                cin,
                cout,
                k,
                pad,
            };
            let x = val(g.batch * g.in_len(), 1);
            let (wts, b) = (val(g.cout * g.k * g.k * g.cin, 2), val(g.cout, 3));
            let want = im2col_then_pool(&g, &x, &wts, &b);
            cases.push((g, x, wts, b, want));
        }
    }
    cases
}

/// Runs `forward` (a kernel's `forward_pooled`) on a case and checks it against the im2col
/// path: values within 1e-5 of their scale, and the same choices, except in a window whose
/// exact maximum and runner-up lie within that of each other (rounding may pick either): there
/// the choice is another position of that window holding such a value.
pub fn check_forward(
    what: impl std::fmt::Debug,
    (g, x, w, b, (want, want_arg)): &ForwardCase,
    forward: impl FnOnce(&Geometry, &[f32], &[f32], &mut [f32], &mut [u32]),
) {
    let (mut got, mut got_arg) = (vec![0.0; want.len()], vec![0u32; want.len()]);
    forward(g, x, b, &mut got, &mut got_arg);
    let err = got
        .iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let tolerance = 1e-5 * scale;
    assert!(err <= tolerance, "{what:?} {g:?}: error {err}");
    let differing: Vec<usize> = (0..want.len())
        .filter(|&i| got_arg[i] != want_arg[i])
        .collect();
    if differing.is_empty() {
        return;
    }
    let cw = g.out_hw().expect("a valid geometry").1;
    let mut conv_out = vec![0.0; g.batch * g.out_len()];
    conv::forward(g, x, w, b, &mut conv_out);
    let (pooled, pw) = (pooled_len(g), cw / 2);
    for i in differing {
        let (image, at) = (i / pooled, i % pooled);
        let (pixel, c) = (at / g.cout, at % g.cout);
        let (py, px) = (pixel / pw, pixel % pw);
        let window: Vec<usize> = [(0, 0), (0, 1), (1, 0), (1, 1)]
            .map(|(dy, dx)| ((2 * py + dy) * cw + 2 * px + dx) * g.cout + c)
            .into();
        let chosen = got_arg[i] as usize;
        let value = conv_out[image * g.out_len() + chosen];
        assert!(
            window.contains(&chosen) && (value - want[i]).abs() <= tolerance,
            "{what:?} {g:?}: choice {i} is {chosen} ({value}), want {} ({})",
            want_arg[i],
            want[i]
        );
    }
}
