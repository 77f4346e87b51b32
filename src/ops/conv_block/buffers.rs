//! What the block's kernels share: the pooled layout, the dead-window mark, and buffers laid
//! out for vector loads (aligned, padded, tap-major). A leaf: it imports no kernel.

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

/// Weights `[cout][k][k][cin]` rearranged tap-major (`[k][k][cin][cout]`), so that one tap's
/// weights for a run of output channels are a vector. Transposed in blocks of 16 taps, so that
/// the writes stay in L1 (a row at a time missed L1 on every write: 4x slower here).
pub fn tap_major(w: &[f32], cout: usize) -> Vec<f32> {
    let per_channel = w.len() / cout;
    assert_eq!(per_channel * cout, w.len());
    let mut taps = vec![0.0; w.len()];
    for t0 in (0..per_channel).step_by(16) {
        let t1 = per_channel.min(t0 + 16);
        for (co, kernel) in w.chunks_exact(per_channel).enumerate() {
            for (t, &v) in kernel[t0..t1].iter().enumerate() {
                taps[(t0 + t) * cout + co] = v;
            }
        }
    }
    taps
}

/// One NHWC image with its zero border (`g.pad` on each side), in `buf` from a 64-byte boundary.
pub fn pad_image<'a>(g: &Geometry, img: &[f32], buf: &'a mut Vec<f32>) -> &'a mut [f32] {
    let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
    let padded = aligned_zeros(buf, hp * wp * g.cin);
    for (y, row) in img.chunks_exact(g.w * g.cin).enumerate() {
        padded[((y + g.pad) * wp + g.pad) * g.cin..][..row.len()].copy_from_slice(row);
    }
    padded
}
