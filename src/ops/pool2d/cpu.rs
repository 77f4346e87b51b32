//! CPU kernels for 2x2 max pooling with stride 2, NHWC.
//!
//! Odd sizes: the output is `floor(h/2) x floor(w/2)`; a last odd row or column is dropped
//! (Keras/TensorFlow 'valid' pooling, which the reference uses). Ties: the first maximum in
//! window order (top-left, top-right, bottom-left, bottom-right) takes the whole gradient.

use rayon::prelude::*;

/// Pools `x` (`batch x h x w x c`) into `out`, recording in `argmax` the index within the image
/// of each output's chosen input.
pub fn forward(
    x: &[f32],
    (batch, h, w, c): (usize, usize, usize, usize),
    out: &mut [f32],
    argmax: &mut [u32],
) {
    let (oh, ow) = (h / 2, w / 2);
    assert_eq!(x.len(), batch * h * w * c);
    assert_eq!(
        (out.len(), argmax.len()),
        (batch * oh * ow * c, batch * oh * ow * c)
    );
    if out.is_empty() {
        return;
    }
    out.par_chunks_mut(oh * ow * c)
        .zip(argmax.par_chunks_mut(oh * ow * c))
        .zip(x.par_chunks(h * w * c))
        .for_each(|((out, arg), x)| forward_image(x, (h, w, c), out, arg));
}

/// [`forward`] of one image, on this thread.
pub fn forward_image(
    x: &[f32],
    (h, w, c): (usize, usize, usize),
    out: &mut [f32],
    arg: &mut [u32],
) {
    let (oh, ow) = (h / 2, w / 2);
    for oy in 0..oh {
        for ox in 0..ow {
            let window = [
                ((2 * oy) * w + 2 * ox) * c,
                ((2 * oy) * w + 2 * ox + 1) * c,
                ((2 * oy + 1) * w + 2 * ox) * c,
                ((2 * oy + 1) * w + 2 * ox + 1) * c,
            ];
            let o = (oy * ow + ox) * c;
            // Branch-free over the channels (contiguous in every window position), so it
            // vectorises: strict `>` keeps the first maximum, as a scan of the window would.
            let (out, arg) = (&mut out[o..o + c], &mut arg[o..o + c]);
            let rows = window.map(|start| &x[start..start + c]);
            for ch in 0..c {
                let (mut best, mut at) = (rows[0][ch], window[0] + ch);
                for (row, &start) in rows[1..].iter().zip(&window[1..]) {
                    let v = row[ch];
                    if v > best {
                        best = v;
                        at = start + ch;
                    }
                }
                out[ch] = best;
                arg[ch] = at as u32;
            }
        }
    }
}

/// Routes each output gradient to the input that won its window: `grad_x += ...`.
pub fn backward(argmax: &[u32], grad_out: &[f32], in_per_image: usize, grad_x: &mut [f32]) {
    assert_eq!(argmax.len(), grad_out.len());
    if grad_out.is_empty() {
        return;
    }
    let out_per_image = grad_out.len() / (grad_x.len() / in_per_image);
    grad_x
        .par_chunks_mut(in_per_image)
        .zip(
            grad_out
                .par_chunks(out_per_image)
                .zip(argmax.par_chunks(out_per_image)),
        )
        .for_each(|(gx, (gy, arg))| {
            for (&i, &g) in arg.iter().zip(gy) {
                gx[i as usize] += g;
            }
        });
}
