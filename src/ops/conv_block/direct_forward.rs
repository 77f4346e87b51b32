//! Direct forward kernels for a block on multi-channel input: convolution, bias and 2x2
//! max-pool without unfolding the input. A tile is one row of pool windows (two rows of
//! convolution outputs, up to 14 columns with AVX-512) for one register of output channels;
//! each tap and input channel loads one weight vector and broadcasts each input pixel, so that
//! the tile's 28 accumulators see one load per fused multiply-add and the weights are read
//! once per tile. The im2col GEMM instead wrote and packed 25 copies of every input value.
//!
//! Each output sums its taps in order (kernel row, column, input channel) with fused
//! multiply-adds from zero, then adds the bias: the same operations at any thread count, in a
//! different order from the GEMM's.

use super::buffers::{aligned_zeros, pad_channels, pooled_len, pooled_padded, tap_major};
use crate::ops::conv2d::cpu::Geometry;
use crate::ops::isa::Isa;
use std::cell::RefCell;

/// Pool windows per tile: two accumulators per window column and row pair, within the
/// register file (32 registers with AVX-512, 16 with AVX2).
fn max_windows(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 7,
        Isa::Avx2 => 3,
    }
}

/// The block's weights, rearranged once per forward pass for the kernels.
pub struct Direct {
    isa: Isa,
    /// Output channels computed: `cout`, or more to fill whole vectors (see [`Direct::new`]).
    channels: usize,
    /// `[k][k][cin][channels]`: one tap's weights for a run of output channels are a vector.
    taps: Vec<f32>,
}

impl Direct {
    /// `Some` where these kernels serve `g`: several input channels, output channels in whole
    /// vector registers, a CPU with AVX2 and FMA (or AVX-512). `w` is `[cout][k][k][cin]`.
    ///
    /// Output channels that are not whole vectors (50, say, on a 7x7 kernel; Caffe's LeNet's
    /// block now takes the Winograd forward) are padded with zero weights to whole vectors of
    /// the best instruction set (16 or 8 lanes) where the im2col
    /// GEMM would sum in this kernel's order (the shim's outer-product form: a patch that is
    /// not a multiple of 16), so the same bits; there the GEMM also wasted those lanes, and
    /// unfolded the input first.
    pub fn new(g: &Geometry, w: &[f32]) -> Option<Self> {
        let taps_per_channel = g.k * g.k * g.cin;
        assert_eq!(w.len(), g.cout * taps_per_channel);
        if g.cin < 2 {
            return None;
        }
        let channels = if Isa::fitting(g.cout).next().is_some() {
            g.cout
        } else if taps_per_channel.is_multiple_of(16) {
            return None;
        } else {
            g.cout.next_multiple_of(Isa::fitting(16).next()?.lanes())
        };
        let isa = Isa::fitting(channels).next()?;
        Some(Direct {
            isa,
            channels,
            taps: tap_major(&pad_channels(w, g.cout, channels), channels),
        })
    }

    /// Convolution, bias and 2x2 max-pool of a run of whole images: `out` gets the pooled
    /// values (before the ReLU) and `arg` the index, within its image's convolution output, of
    /// the input each window chose (first maximum in window order, as `pool::forward_image`).
    pub fn forward_pooled(
        &self,
        g: &Geometry,
        x: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        pooled_padded(g, self.channels, b, out, arg, |gp, bp, out, arg| {
            self.forward_whole(gp, x, bp, out, arg)
        })
    }

    /// [`Direct::forward_pooled`] where `g.cout` is `self.channels`.
    fn forward_whole(&self, g: &Geometry, x: &[f32], b: &[f32], out: &mut [f32], arg: &mut [u32]) {
        let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
        let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
        let pooled = pooled_len(g);
        let images = x.len() / g.in_len();
        assert_eq!(x.len(), images * g.in_len());
        assert_eq!((out.len(), arg.len()), (images * pooled, images * pooled));
        assert_eq!(b.len(), g.cout);
        assert_eq!(self.taps.len(), g.k * g.k * g.cin * g.cout);
        assert!(self.isa.fits(g.cout), "a kernel this CPU cannot run");
        // Windows lie inside the padded image: `ch = hp - k + 1`, `cw = wp - k + 1`.
        assert!(ch + g.k - 1 == hp && cw + g.k - 1 == wp);
        PADDED.with_borrow_mut(|buf| {
            for ((img, out), arg) in x
                .chunks_exact(g.in_len())
                .zip(out.chunks_exact_mut(pooled))
                .zip(arg.chunks_exact_mut(pooled))
            {
                // Row-planar (`[hp][cin][wp]`): a run of pixels of one channel is contiguous,
                // so the tile's broadcasts sit at fixed offsets from one pointer.
                let padded = aligned_zeros(buf, hp * wp * g.cin);
                for (y, row) in img.chunks_exact(g.w * g.cin).enumerate() {
                    let planes = &mut padded[(y + g.pad) * g.cin * wp..][..g.cin * wp];
                    for (x, pixel) in row.chunks_exact(g.cin).enumerate() {
                        for (plane, &v) in planes.chunks_exact_mut(wp).zip(pixel) {
                            plane[x + g.pad] = v;
                        }
                    }
                }
                // SAFETY: `isa` suits this CPU and `cout` (asserted above); the asserts
                // above fix every buffer's size for the indices the kernels form.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    simd::image(self.isa, g, padded, &self.taps, b, out, arg)
                }
            }
        });
    }
}

thread_local! {
    /// This thread's zero-padded image, reused between calls.
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{max_windows, Geometry, Isa};
    use crate::ops::vector::{pool_window, Vector};
    use std::arch::x86_64::*;

    /// Every tile of one padded image.
    ///
    /// # Safety
    /// The CPU has `isa`, whose lanes divide `cout`; `padded` is the image with its border,
    /// row-planar (`[hp][cin][wp]`), `taps` is `[k][k][cin][cout]`, `out` and `arg` hold the
    /// image's pooled outputs.
    pub unsafe fn image(
        isa: Isa,
        g: &Geometry,
        padded: &[f32],
        taps: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            let windows = g.out_hw().expect("geometry checked by the caller").1 / 2;
            let mut px = 0;
            while px < windows {
                let n = max_windows(isa).min(windows - px);
                macro_rules! dispatch {
                ($($n:literal)+) => {
                    match (isa, n) {
                        $((Isa::Avx512, $n) => avx512::<{ 2 * $n }>(g, padded, taps, b, out, arg, px),)+
                        $((Isa::Avx2, $n) => avx2::<{ 2 * $n }>(g, padded, taps, b, out, arg, px),)+
                        _ => unreachable!("at most 7 windows per tile"),
                    }
                };
            }
                dispatch!(1 2 3 4 5 6 7);
                px += n;
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const NC: usize>(
        g: &Geometry,
        padded: &[f32],
        taps: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
        px: usize,
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { column::<__m512, NC>(g, padded, taps, b, out, arg, px) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const NC: usize>(
        g: &Geometry,
        padded: &[f32],
        taps: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
        px: usize,
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { column::<__m256, NC>(g, padded, taps, b, out, arg, px) }
    }

    /// The tiles whose first window is at column `px`: every window row, every register of
    /// channels. `NC` is the tile's width in convolution columns (two per window).
    #[inline(always)]
    unsafe fn column<V: Vector, const NC: usize>(
        g: &Geometry,
        padded: &[f32],
        taps: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
        px: usize,
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
            let (cin, cout, k) = (g.cin, g.cout, g.k);
            let wp = g.w + 2 * g.pad;
            let (pin, tin) = (padded.as_ptr(), taps.as_ptr());
            for c0 in (0..cout).step_by(V::LANES) {
                for py in 0..ch / 2 {
                    let mut acc = [[V::zero(); NC]; 2];
                    for ky in 0..k {
                        for kx in 0..k {
                            let w = tin.add((ky * k + kx) * cin * cout + c0);
                            let top = pin.add((2 * py + ky) * cin * wp + 2 * px + kx);
                            let bottom = top.add(cin * wp);
                            for ci in 0..cin {
                                let wv = V::load(w.add(ci * cout));
                                let (top, bottom) = (top.add(ci * wp), bottom.add(ci * wp));
                                let [upper, lower] = &mut acc;
                                for (c, (u, l)) in upper.iter_mut().zip(lower).enumerate() {
                                    *u = u.mul_add(V::splat(*top.add(c)), wv);
                                    *l = l.mul_add(V::splat(*bottom.add(c)), wv);
                                }
                            }
                        }
                    }
                    let bias = V::load(b.as_ptr().add(c0));
                    for q in 0..NC / 2 {
                        let window = [0, 1].map(|dy| [0, 1].map(|dx| acc[dy][2 * q + dx]));
                        let first = (2 * py * cw + 2 * (px + q)) * cout + c0;
                        let o = (py * (cw / 2) + px + q) * cout + c0;
                        let (out, arg) = (out.as_mut_ptr().add(o), arg.as_mut_ptr().add(o));
                        pool_window(window, bias, (first, cw * cout, cout), out, arg);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_forward, forward_cases};
    use super::*;

    /// Output channels that are not whole vectors (Caffe's LeNet's 50 on 20 input channels, and
    /// others), padded: the same values as the im2col GEMM and the pool bit for bit, and the
    /// same choices, on every instruction set the CPU has; where the patch is a multiple of 16
    /// (the GEMM's dot-product form, another order) the kernel declines.
    #[test]
    fn padded_channels_match_im2col_then_pool_bit_for_bit() {
        use crate::ops::isa::test_values as val;
        let mut checked = 0;
        for (h, w, cin, cout, k, pad) in [
            (12, 12, 20, 50, 5, 0),
            (9, 7, 6, 10, 3, 1),
            (8, 8, 3, 20, 5, 2),
            (10, 10, 7, 3, 3, 0),
        ] {
            let g = Geometry {
                batch: 2,
                h,
                w,
                cin,
                cout,
                k,
                pad,
            };
            let (x, wts, b) = (
                val(g.batch * g.in_len(), 1),
                val(g.cout * g.k * g.k * g.cin, 2),
                val(g.cout, 3),
            );
            let (want, want_arg) = super::super::testing::im2col_then_pool(&g, &x, &wts, &b);
            let Some(direct) = Direct::new(&g, &wts) else {
                eprintln!("no vector kernel for {g:?} on this CPU: skipped");
                continue;
            };
            assert!(direct.channels > cout && direct.channels.is_multiple_of(8));
            for isa in Isa::fitting(direct.channels) {
                let direct = Direct {
                    isa,
                    taps: direct.taps.clone(),
                    ..direct
                };
                let (mut got, mut got_arg) = (vec![0.0; want.len()], vec![0u32; want.len()]);
                direct.forward_pooled(&g, &x, &b, &mut got, &mut got_arg);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{isa:?} {g:?}: values differ");
                assert_eq!(got_arg, want_arg, "{isa:?} {g:?}: choices differ");
                checked += 1;
            }
        }
        let dot_form = Geometry {
            batch: 1,
            h: 6,
            w: 6,
            cin: 16,
            cout: 10,
            k: 3,
            pad: 1,
        };
        assert!(Direct::new(&dot_form, &vec![0.0; 10 * 9 * 16]).is_none());
        if Isa::fitting(8).next().is_some() {
            assert!(checked >= 4, "{checked} cases");
        }
    }

    /// Against the im2col GEMM followed by the pool, on both kernel sizes and tiles of 1 to 7
    /// windows and a remainder (`forward_cases`), on every instruction set the CPU has.
    #[test]
    fn matches_im2col_then_pool() {
        let mut checked = 0;
        for case in [3, 5].into_iter().flat_map(forward_cases) {
            let (g, _, wts, ..) = &case;
            for isa in Isa::fitting(g.cout) {
                let direct = Direct {
                    isa,
                    ..Direct::new(g, wts).expect("this CPU has a kernel")
                };
                check_forward(isa, &case, |g, x, b, out, arg| {
                    direct.forward_pooled(g, x, b, out, arg)
                });
                checked += 1;
            }
        }
        if Isa::fitting(64).next().is_none() {
            eprintln!("no vector kernel on this CPU: nothing checked");
        } else {
            assert!(checked >= 16, "{checked} cases");
        }
    }
}
