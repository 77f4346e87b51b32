//! What the block's kernels share: the pooled layout, the dead-window mark, buffers laid out
//! for vector loads (aligned, padded, tap-major), and output channels padded to whole vectors.
//! A leaf: it imports no kernel.

pub use crate::ops::conv2d::cpu::tap_major;
use crate::ops::conv2d::cpu::Geometry;

/// Marks an output that the ReLU zeroed: its gradient goes nowhere.
pub const DEAD: u32 = u32::MAX;

/// Output values per image: the convolution's output pooled 2x2.
pub fn pooled_len(g: &Geometry) -> usize {
    let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
    (ch / 2) * (cw / 2) * g.cout
}

/// `len` zeros from a 64-byte boundary within `buf`: the kernels' loads are whole cache lines
/// then (every offset is a multiple of 16 values), which ran them twice as fast as misaligned.
pub fn aligned_zeros(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buf.clear();
    buf.resize(len + 16, 0.0);
    let start = buf.as_ptr().align_offset(64);
    assert!(
        start < 16,
        "f32 pointers reach a 64-byte boundary within 16 values"
    );
    &mut buf[start..][..len]
}

/// One NHWC image with its zero border (`g.pad` on each side), in `buf` from a 64-byte boundary.
pub fn pad_image<'a>(g: &Geometry, img: &[f32], buf: &'a mut Vec<f32>) -> &'a mut [f32] {
    let extent = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    pad_image_to(g, img, g.cin, extent, buf)
}

/// [`pad_image`] with `channels` (`>= g.cin`) per pixel, the extra ones zero, in an image of
/// `(hp, wp)` pixels (at least the bordered image's: zeros below and to the right of it, for
/// tiles that reach past the output's edge).
pub fn pad_image_to<'a>(
    g: &Geometry,
    img: &[f32],
    channels: usize,
    (hp, wp): (usize, usize),
    buf: &'a mut Vec<f32>,
) -> &'a mut [f32] {
    assert!(channels >= g.cin && hp >= g.h + 2 * g.pad && wp >= g.w + 2 * g.pad);
    let padded = aligned_zeros(buf, hp * wp * channels);
    for (y, row) in img.chunks_exact(g.w * g.cin).enumerate() {
        let to = &mut padded[((y + g.pad) * wp + g.pad) * channels..][..g.w * channels];
        if channels == g.cin {
            to.copy_from_slice(row);
        } else {
            for (to, pixel) in to.chunks_exact_mut(channels).zip(row.chunks_exact(g.cin)) {
                to[..g.cin].copy_from_slice(pixel);
            }
        }
    }
    padded
}

/// `values` in runs of `run`, each followed by zeros up to `to` (`>= run`) values: weights
/// `[..][cin]` padded to more input channels.
pub fn pad_runs(values: &[f32], run: usize, to: usize) -> Vec<f32> {
    assert!(to >= run && values.len().is_multiple_of(run));
    let mut padded = vec![0.0; values.len() / run * to];
    for (to, from) in padded.chunks_exact_mut(to).zip(values.chunks_exact(run)) {
        to[..run].copy_from_slice(from);
    }
    padded
}

/// Weights `[cout][..]` with zero rows appended up to `channels` (`>= cout`): output channels
/// the vector kernels compute and [`pooled_padded`] drops.
pub fn pad_channels(w: &[f32], cout: usize, channels: usize) -> Vec<f32> {
    let mut padded = vec![0.0; w.len() / cout * channels];
    padded[..w.len()].copy_from_slice(w);
    padded
}

/// A pooled forward kernel run on `channels` output channels (`g.cout`, or more: whole
/// vectors; `run` gets the padded geometry, a bias zero in the extra channels, and buffers for
/// its outputs and choices), keeping each pooled pixel's first `g.cout` values and their
/// choices, indexed in the unpadded output. Each channel is a lane of its own in the kernels,
/// so the kept values have the bits they would have unpadded. Unpadded, `run` gets the
/// caller's geometry, bias and buffers.
pub fn pooled_padded(
    g: &Geometry,
    channels: usize,
    b: &[f32],
    out: &mut [f32],
    arg: &mut [u32],
    run: impl FnOnce(&Geometry, &[f32], &mut [f32], &mut [u32]),
) {
    if channels == g.cout {
        return run(g, b, out, arg);
    }
    let (cout, cp) = (g.cout, channels);
    let gp = Geometry { cout: cp, ..*g };
    let bp = pad_channels(b, cout, cp);
    let mut out_p = vec![0.0f32; out.len() / cout * cp];
    let mut arg_p = vec![0u32; out_p.len()];
    run(&gp, &bp, &mut out_p, &mut arg_p);
    for (((o, a), op), ap) in out
        .chunks_exact_mut(cout)
        .zip(arg.chunks_exact_mut(cout))
        .zip(out_p.chunks_exact(cp))
        .zip(arg_p.chunks_exact(cp))
    {
        o.copy_from_slice(&op[..cout]);
        for (a, &at) in a.iter_mut().zip(ap) {
            let at = at as usize;
            *a = (at / cp * cout + at % cp) as u32;
        }
    }
}
