//! CPU kernels for 2-D convolution, NHWC, stride 1: im2col + GEMM, parallel over chunks of
//! images. Chunking depends only on the shapes, and partial weight gradients are summed in
//! chunk order, so results do not depend on the number of threads.

use crate::ops::gemm::{matmul, View};
use rayon::prelude::*;

/// Output rows (pixels) a parallel chunk of images aims for. Each chunk sums its images' weight
/// gradients, which the caller then adds chunk by chunk: bigger chunks mean fewer partial sums,
/// smaller ones balance the threads better (10 chunks for the baseline's second convolution).
const ROWS_PER_CHUNK: usize = 1024;

/// Shapes of one convolution call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub pad: usize,
}

impl Geometry {
    /// `None` when the kernel is larger than the padded input.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let oh = (self.h + 2 * self.pad).checked_sub(self.k)? + 1;
        let ow = (self.w + 2 * self.pad).checked_sub(self.k)? + 1;
        Some((oh, ow))
    }

    fn out_h(&self) -> usize {
        self.out_hw().expect("geometry checked by the caller").0
    }

    fn out_w(&self) -> usize {
        self.out_hw().expect("geometry checked by the caller").1
    }

    fn patch(&self) -> usize {
        self.k * self.k * self.cin
    }

    /// Images per parallel chunk. Fixed by the shapes alone, so that the order in which the
    /// chunks' weight gradients are summed does not depend on the thread count.
    pub fn images_per_chunk(&self) -> usize {
        (ROWS_PER_CHUNK / (self.out_h() * self.out_w()).max(1)).max(1)
    }

    /// Input values per image.
    pub fn in_len(&self) -> usize {
        self.h * self.w * self.cin
    }

    /// Output values per image.
    pub fn out_len(&self) -> usize {
        self.out_h() * self.out_w() * self.cout
    }

    /// Valid kernel columns `kx0..kx1` for output column `ox` (the rest fall in the padding).
    fn kx_range(&self, ox: usize) -> (usize, usize) {
        let kx0 = self.pad.saturating_sub(ox);
        let kx1 = self.k.min((self.w + self.pad).saturating_sub(ox));
        (kx0, kx1.max(kx0))
    }
}

/// Unfolds one image (`h x w x cin`) into rows of patches (`oh*ow x k*k*cin`), zero padded.
/// The image is first copied into `padded` with its zero border, so that every patch row is `k`
/// contiguous segments of `k*cin` values.
fn im2col(g: &Geometry, x: &[f32], padded: &mut Vec<f32>, cols: &mut [f32]) {
    let (oh, ow, patch, cin) = (g.out_h(), g.out_w(), g.patch(), g.cin);
    let (wp, row_len) = (g.w + 2 * g.pad, g.w * cin);
    padded.clear();
    padded.resize((g.h + 2 * g.pad) * wp * cin, 0.0);
    for (y, src) in x.chunks_exact(row_len).enumerate() {
        padded[((y + g.pad) * wp + g.pad) * cin..][..row_len].copy_from_slice(src);
    }
    let seg = g.k * cin;
    for oy in 0..oh {
        for ox in 0..ow {
            let row = &mut cols[(oy * ow + ox) * patch..][..patch];
            for (ky, dst) in row.chunks_exact_mut(seg).enumerate() {
                copy_segment(dst, &padded[((oy + ky) * wp + ox) * cin..][..seg]);
            }
        }
    }
}

/// `dst.copy_from_slice(src)`, with the short segments of a single-channel input (3, 5 or 7
/// values) copied as fixed-size arrays: a `memcpy` call per 5 values took 4 times as long as the
/// first convolution's whole unfolding does without it.
fn copy_segment(dst: &mut [f32], src: &[f32]) {
    fn fixed<const N: usize>(dst: &mut [f32], src: &[f32]) {
        let dst: &mut [f32; N] = dst.try_into().expect("segment length");
        dst.copy_from_slice(&src[..N]);
    }
    match dst.len() {
        3 => fixed::<3>(dst, src),
        5 => fixed::<5>(dst, src),
        7 => fixed::<7>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

thread_local! {
    /// Each thread's im2col buffer and padded image, kept between calls: a fresh buffer per
    /// call cost page faults and zeroing on every step. `im2col` writes every element of its
    /// rows, so stale contents never leak through.
    static COLS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// Unfolds one image into this thread's buffer and calls `f` with its patch rows. Where the
/// buffer is in use further up this thread's stack (the product in `f` runs on rayon, and a
/// thread waiting for it may take another chunk's task), a fresh one serves.
fn with_im2col<R>(g: &Geometry, x: &[f32], f: impl FnOnce(&mut [f32]) -> R) -> R {
    let unfold = |(buf, padded): &mut (Vec<f32>, Vec<f32>)| {
        let len = g.out_h() * g.out_w() * g.patch();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        let cols = &mut buf[..len];
        im2col(g, x, padded, cols);
        f(cols)
    };
    COLS.with(|bufs| match bufs.try_borrow_mut() {
        Ok(mut bufs) => unfold(&mut bufs),
        Err(_) => unfold(&mut Default::default()),
    })
}

/// Adds rows of patch gradients back onto one image's gradient (the adjoint of `im2col`).
fn col2im_add(g: &Geometry, dcols: &[f32], dx: &mut [f32]) {
    let (oh, ow, patch, cin) = (g.out_h(), g.out_w(), g.patch(), g.cin);
    for oy in 0..oh {
        for ox in 0..ow {
            let row = &dcols[(oy * ow + ox) * patch..][..patch];
            let (kx0, kx1) = g.kx_range(ox);
            for ky in 0..g.k {
                let iy = oy + ky;
                if iy < g.pad || iy - g.pad >= g.h || kx0 == kx1 {
                    continue;
                }
                let iy = iy - g.pad;
                let ix0 = ox + kx0 - g.pad;
                let src = &row[(ky * g.k + kx0) * cin..(ky * g.k + kx1) * cin];
                let dst = &mut dx[(iy * g.w + ix0) * cin..][..src.len()];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// `out = conv(x, weight) + bias`. `weight` is `[cout][k][k][cin]`; `out` is NHWC.
pub fn forward(g: &Geometry, x: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), g.batch * g.in_len());
    assert_eq!(out.len(), g.batch * g.out_len());
    if out.is_empty() {
        return;
    }
    let n = g.images_per_chunk();
    let transposed = transposed_weight(g, weight);
    out.par_chunks_mut(n * g.out_len())
        .zip(x.par_chunks(n * g.in_len()))
        .for_each(|(out, x)| forward_chunk(g, x, weight, &transposed, bias, out));
}

/// `Wᵀ` (`patch x cout`) for [`forward_chunk`], or nothing where the patch is a multiple of 16
/// and the shim's dot-product form reads `W` in place. Otherwise the product reads rows of
/// `Wᵀ`, which the shim would gather value by value for every image: transposed once per
/// pass instead (the same sums either way, so the same bits).
pub fn transposed_weight(g: &Geometry, weight: &[f32]) -> Vec<f32> {
    if g.patch().is_multiple_of(16) {
        return Vec::new();
    }
    tap_major(weight, g.cout)
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

/// [`forward`] of a run of whole images, on this thread, with `transposed` from
/// [`transposed_weight`]. One GEMM per image: its patch rows (196 x 800 for the baseline's
/// second convolution) stay in cache between the unfolding and the product, which measured
/// faster than one product over several images.
pub fn forward_chunk(
    g: &Geometry,
    x: &[f32],
    weight: &[f32],
    transposed: &[f32],
    bias: &[f32],
    out: &mut [f32],
) {
    let (rows, patch) = (g.out_h() * g.out_w(), g.patch());
    assert_eq!((weight.len(), bias.len()), (g.cout * patch, g.cout));
    let w = if transposed.is_empty() {
        View::transposed(weight, patch, g.cout)
    } else {
        View::rows(transposed, patch, g.cout)
    };
    for (x, out) in x
        .chunks_exact(g.in_len())
        .zip(out.chunks_exact_mut(g.out_len()))
    {
        with_im2col(g, x, |cols| {
            matmul(View::rows(cols, rows, patch), w, out, false)
        });
        crate::ops::add_to_rows(out, bias);
    }
}

/// Accumulates the gradients of `forward` given the output gradient `grad_out`:
/// `grad_x += dL/dx` (skipped when `grad_x` is `None`: a network's input needs none),
/// `grad_weight += dL/dweight`, `grad_bias += dL/dbias`.
pub fn backward(
    g: &Geometry,
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    grad_x: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
) {
    assert_eq!(grad_out.len(), g.batch * g.out_len());
    let n = g.images_per_chunk();
    let partials: Vec<Partial> = input_chunks(g, x, grad_x)
        .into_par_iter()
        .zip(grad_out.par_chunks(n * g.out_len()))
        .map(|((x, gx), gy)| backward_chunk(g, x, weight, gy, gx))
        .collect();
    add_partials(partials, grad_weight, grad_bias);
}

/// A chunk's share of the weight and bias gradients.
pub type Partial = (Vec<f32>, Vec<f32>);

/// The input split into [`Geometry::images_per_chunk`] chunks, each with its part of `grad_x`.
pub fn input_chunks<'a>(
    g: &Geometry,
    x: &'a [f32],
    grad_x: Option<&'a mut [f32]>,
) -> Vec<(&'a [f32], Option<&'a mut [f32]>)> {
    assert_eq!(x.len(), g.batch * g.in_len());
    let chunk = g.images_per_chunk() * g.in_len();
    match grad_x {
        Some(gx) => {
            assert_eq!(gx.len(), x.len());
            x.chunks(chunk)
                .zip(gx.chunks_mut(chunk).map(Some))
                .collect()
        }
        None => x.chunks(chunk).map(|x| (x, None)).collect(),
    }
}

/// [`backward`] of a run of whole images, on this thread, image by image as in
/// [`forward_chunk`]: adds to `grad_x` and returns the chunk's weight and bias gradients.
pub fn backward_chunk(
    g: &Geometry,
    x: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    mut grad_x: Option<&mut [f32]>,
) -> Partial {
    let (rows, patch) = (g.out_h() * g.out_w(), g.patch());
    assert_eq!(weight.len(), g.cout * patch);
    assert_eq!(grad_out.len(), x.len() / g.in_len() * g.out_len());
    // `dW (+)= gyᵀ · cols`: the shim reads `gyᵀ` (the smaller operand) a value at a time and
    // the patch rows as vectors in place. The other way round (`dWᵀ = colsᵀ · gy`, the same
    // sums) it packs a transposed copy of every image's patches.
    let mut gw = vec![0.0f32; g.cout * patch];
    let mut gb = vec![0.0f32; g.cout];
    for (i, (x, gy)) in x
        .chunks_exact(g.in_len())
        .zip(grad_out.chunks_exact(g.out_len()))
        .enumerate()
    {
        with_im2col(g, x, |cols| {
            matmul(
                View::transposed(gy, g.cout, rows),
                View::rows(cols, rows, patch),
                &mut gw,
                i > 0,
            );
            if let Some(gx) = grad_x.as_deref_mut() {
                // Reuse the im2col buffer for the patch gradients.
                matmul(
                    View::rows(gy, rows, g.cout),
                    View::rows(weight, g.cout, patch),
                    cols,
                    false,
                );
                col2im_add(g, cols, &mut gx[i * g.in_len()..][..g.in_len()]);
            }
        });
        crate::ops::add_rows(&mut gb, gy);
    }
    (gw, gb)
}

/// Adds the chunks' gradients in chunk order, which the shapes fix.
pub fn add_partials(partials: Vec<Partial>, grad_weight: &mut [f32], grad_bias: &mut [f32]) {
    for (gw, gb) in partials {
        assert_eq!((gw.len(), gb.len()), (grad_weight.len(), grad_bias.len()));
        grad_weight.iter_mut().zip(&gw).for_each(|(a, b)| *a += b);
        grad_bias.iter_mut().zip(&gb).for_each(|(a, b)| *a += b);
    }
}

/// A rayon worker waiting inside a product may run another chunk's task, which unfolds on the
/// same thread while the first task's buffer is still in use: that must not panic (it did:
/// "RefCell already borrowed" in a LeNet's convolution), and each unfolding must be its own.
#[test]
fn unfolding_again_on_the_same_thread_gets_its_own_buffer() {
    let g = Geometry {
        batch: 1,
        h: 4,
        w: 4,
        cin: 1,
        cout: 2,
        k: 3,
        pad: 1,
    };
    let (a, b) = (vec![1.0f32; 16], vec![2.0f32; 16]);
    with_im2col(&g, &a, |outer| {
        let inner_sum = with_im2col(&g, &b, |inner| inner.iter().sum::<f32>());
        assert_eq!(inner_sum, 2.0 * outer.iter().sum::<f32>());
        assert!(outer.iter().all(|&v| v == 0.0 || v == 1.0));
    });
}

/// Direct-loop reference implementation, for tests: obviously correct, slow.
#[cfg(test)]
pub mod naive {
    use super::Geometry;

    fn at(g: &Geometry, oy: usize, ky: usize, ox: usize, kx: usize) -> Option<(usize, usize)> {
        let iy = (oy + ky).checked_sub(g.pad)?;
        let ix = (ox + kx).checked_sub(g.pad)?;
        (iy < g.h && ix < g.w).then_some((iy, ix))
    }

    pub fn forward(g: &Geometry, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let (oh, ow) = g.out_hw().unwrap();
        let mut out = vec![0.0f32; g.batch * oh * ow * g.cout];
        for n in 0..g.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for co in 0..g.cout {
                        let mut s = b[co] as f64;
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let Some((iy, ix)) = at(g, oy, ky, ox, kx) else {
                                    continue;
                                };
                                for ci in 0..g.cin {
                                    s += x[((n * g.h + iy) * g.w + ix) * g.cin + ci] as f64
                                        * w[((co * g.k + ky) * g.k + kx) * g.cin + ci] as f64;
                                }
                            }
                        }
                        out[((n * oh + oy) * ow + ox) * g.cout + co] = s as f32;
                    }
                }
            }
        }
        out
    }

    /// Returns `(grad_x, grad_w, grad_b)`.
    pub fn backward(
        g: &Geometry,
        x: &[f32],
        w: &[f32],
        gy: &[f32],
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (oh, ow) = g.out_hw().unwrap();
        let mut gx = vec![0.0f64; x.len()];
        let mut gw = vec![0.0f64; w.len()];
        let mut gb = vec![0.0f64; g.cout];
        for n in 0..g.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    for co in 0..g.cout {
                        let d = gy[((n * oh + oy) * ow + ox) * g.cout + co] as f64;
                        gb[co] += d;
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let Some((iy, ix)) = at(g, oy, ky, ox, kx) else {
                                    continue;
                                };
                                for ci in 0..g.cin {
                                    let xi = ((n * g.h + iy) * g.w + ix) * g.cin + ci;
                                    let wi = ((co * g.k + ky) * g.k + kx) * g.cin + ci;
                                    gx[xi] += d * w[wi] as f64;
                                    gw[wi] += d * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        (f(gx), f(gw), f(gb))
    }
}
