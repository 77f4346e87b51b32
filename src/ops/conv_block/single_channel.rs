//! Direct kernels for a block whose input has one channel (a network's first block, on the
//! images). There the im2col GEMM is a poor fit: its inner dimension is only `k*k` (25), so the
//! product runs at a third of the second block's speed, and the pool then reads the whole
//! convolution output back. Here each 2x2 pool window's four convolution outputs are computed
//! together in registers and pooled at once. Going back, the weight gradient sums each tap's
//! input times the routed gradient with the channels in registers, without unfolding the image.

use super::buffers::{pad_channels, pad_image, pooled_len, pooled_padded, tap_major, DEAD};
use crate::ops::conv2d::cpu::{Geometry, Partial};
use crate::ops::isa::Isa;
use std::cell::RefCell;

/// Whether these kernels serve `g`: one input channel, a 3x3 or 5x5 kernel, output channels in
/// whole vectors, and a CPU with AVX2 and FMA (or AVX-512); elsewhere the block uses the im2col
/// GEMM (but see [`forward_applies`]).
pub fn applies(g: &Geometry) -> bool {
    g.cin == 1 && matches!(g.k, 3 | 5) && kernel(g.cout).is_some()
}

/// An instruction set and its register blocking: `nv` registers of channels per window corner.
#[derive(Clone, Copy)]
struct Kernel {
    isa: Isa,
    nv: usize,
}

impl Kernel {
    /// Every kernel this CPU can run on `cout` channels, the preferred one first.
    fn all(cout: usize) -> impl Iterator<Item = Kernel> {
        Isa::fitting(cout).flat_map(move |isa| {
            [2, 1]
                .into_iter()
                .filter(move |nv| cout.is_multiple_of(nv * isa.lanes()))
                .map(move |nv| Kernel { isa, nv })
        })
    }
}

fn kernel(cout: usize) -> Option<Kernel> {
    Kernel::all(cout).next()
}

/// Whether [`forward_pooled`] serves `g`: as [`applies`], or with fewer output channels than a
/// vector (LeNet-5's 6), which it pads to [`padded_channels`].
pub fn forward_applies(g: &Geometry) -> bool {
    g.cin == 1 && matches!(g.k, 3 | 5) && kernel(padded_channels(g.cout)).is_some()
}

/// Channels the forward kernels compute for `cout`: under 8, one AVX2 vector's 8 (on every
/// instruction set). There the im2col GEMM wastes most of its lanes: LeNet-5's evaluation took
/// 1.25-1.5x as long on it. Other widths that are not whole vectors (Caffe's LeNet's 20,
/// padded to 32 or 24) ran no faster padded, and 3 % slower with AVX2.
fn padded_channels(cout: usize) -> usize {
    if kernel(cout).is_none() && cout < 8 {
        8
    } else {
        cout
    }
}

thread_local! {
    /// This thread's zero-padded image and routed output gradient, reused between calls.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Side lengths of the zero-padded image.
fn padded_hw(g: &Geometry) -> (usize, usize) {
    (g.h + 2 * g.pad, g.w + 2 * g.pad)
}

/// Convolution, bias and 2x2 max-pool of a run of whole images: `out` gets the pooled values
/// (before the ReLU) and `arg` the index, within its image's convolution output, of the input
/// each window chose, exactly as `pool::forward_image` on the convolution's output would.
/// `w` is `[cout][k][k]`.
pub fn forward_pooled(
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    arg: &mut [u32],
) {
    assert!(
        forward_applies(g),
        "single-channel kernels applied to a shape they do not serve"
    );
    let cp = padded_channels(g.cout);
    let kernel = kernel(cp).expect("checked by `forward_applies`");
    if cp == g.cout {
        return forward_with(kernel, g, x, w, b, out, arg);
    }
    let wp = pad_channels(w, g.cout, cp);
    pooled_padded(g, cp, b, out, arg, |gp, bp, out, arg| {
        forward_with(kernel, gp, x, &wp, bp, out, arg)
    });
}

/// [`forward_pooled`] with the given kernel, which must suit the CPU and `g`.
fn forward_with(
    kernel: Kernel,
    g: &Geometry,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    out: &mut [f32],
    arg: &mut [u32],
) {
    let kk = g.k * g.k;
    assert_eq!((w.len(), b.len()), (g.cout * kk, g.cout));
    // Weights tap-major (`[k*k][cout]`): one tap's weights for a run of channels are a vector.
    let wt = tap_major(w, g.cout);
    let pooled = pooled_len(g);
    SCRATCH.with_borrow_mut(|(buf, _)| {
        for ((x, out), arg) in x
            .chunks_exact(g.h * g.w)
            .zip(out.chunks_exact_mut(pooled))
            .zip(arg.chunks_exact_mut(pooled))
        {
            let padded = pad_image(g, x, buf);
            simd::forward_image(kernel, g, padded, &wt, b, out, arg);
        }
    });
}

/// Weight and bias gradients of a run of whole images, given the gradient of the block's output
/// and the choices (`DEAD` where the ReLU zeroed the output) that [`forward_pooled`] made. Each
/// live window's gradient goes to the input that won it (a zeroed convolution-sized buffer),
/// then every tap sums that routed gradient times the input under it, over all pixels, with the
/// channels in registers. Three quarters of the terms are zero, yet this dense pass ran faster
/// (15.7 against 17.9 us per MNIST image on one thread) than one over the live windows alone,
/// whose branches follow the ReLU's pattern and mispredict.
pub fn weight_grads(g: &Geometry, x: &[f32], argmax: &[u32], grad: &[f32]) -> Partial {
    assert!(
        applies(g),
        "single-channel kernels applied to a shape they do not serve"
    );
    weight_grads_with(
        kernel(g.cout).expect("checked by `applies`"),
        g,
        x,
        argmax,
        grad,
    )
}

/// [`weight_grads`] with the given kernel, which must suit the CPU and `g`.
fn weight_grads_with(
    kernel: Kernel,
    g: &Geometry,
    x: &[f32],
    argmax: &[u32],
    grad: &[f32],
) -> Partial {
    let (kk, cout, pooled) = (g.k * g.k, g.cout, pooled_len(g));
    // Tap-major (`[k*k][cout]`) while accumulating: one tap's channels are vectors.
    let mut gw_taps = vec![0.0f32; kk * cout];
    let mut gb = vec![0.0f32; cout];
    SCRATCH.with_borrow_mut(|(buf, routed)| {
        // Zero between images, past a last slot that takes the dead windows' writes: every
        // window writes, so that no branch follows the ReLU's pattern.
        let spare = g.out_len();
        if routed.len() != spare + 1 {
            routed.clear();
            routed.resize(spare + 1, 0.0);
        }
        for ((x, arg), grad) in x
            .chunks_exact(g.h * g.w)
            .zip(argmax.chunks_exact(pooled))
            .zip(grad.chunks_exact(pooled))
        {
            let padded = pad_image(g, x, buf);
            let slots = || {
                arg.iter()
                    .map(|&at| if at == DEAD { spare } else { at as usize })
            };
            // Windows do not overlap: one gradient per winning input at most.
            for (slot, &gv) in slots().zip(grad) {
                routed[slot] = gv;
            }
            for (arg, grad) in arg.chunks_exact(cout).zip(grad.chunks_exact(cout)) {
                for ((b, &at), &gv) in gb.iter_mut().zip(arg).zip(grad) {
                    *b += if at == DEAD { 0.0 } else { gv };
                }
            }
            simd::weight_grads_image(kernel, g, padded, &routed[..spare], &mut gw_taps);
            for slot in slots() {
                routed[slot] = 0.0;
            }
        }
    });
    let gw = (0..cout)
        .flat_map(|co| gw_taps.iter().skip(co).step_by(cout).copied())
        .collect();
    (gw, gb)
}

/// The kernels, generic over the vector type and compiled once per instruction set.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{padded_hw, Geometry, Isa, Kernel};
    use crate::ops::vector::{pool_window, Vector};
    use std::arch::x86_64::*;

    /// Convolution, bias and 2x2 max-pool of one padded image (`wt` is `[k*k][cout]`).
    pub fn forward_image(
        kernel: Kernel,
        g: &Geometry,
        padded: &[f32],
        wt: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        let (hp, wp) = padded_hw(g);
        let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
        assert_eq!(padded.len(), hp * wp);
        assert_eq!(wt.len(), g.k * g.k * g.cout);
        assert_eq!(b.len(), g.cout);
        assert_eq!(out.len(), (ch / 2) * (cw / 2) * g.cout);
        assert_eq!(arg.len(), out.len());
        // SAFETY: `kernel` comes from `Kernel::all`, which checked (`Isa::fits`) that this CPU
        // has the instructions and that `cout` is a whole number of register groups; the asserts above
        // bound every index the kernel forms (windows lie inside the padded image because
        // `ch = hp - k + 1` and `cw = wp - k + 1`).
        unsafe {
            match (kernel.isa, kernel.nv, g.k) {
                (Isa::Avx512, 2, 3) => avx512::<2, 3>(g, padded, wt, b, out, arg),
                (Isa::Avx512, 2, _) => avx512::<2, 5>(g, padded, wt, b, out, arg),
                (Isa::Avx512, _, 3) => avx512::<1, 3>(g, padded, wt, b, out, arg),
                (Isa::Avx512, _, _) => avx512::<1, 5>(g, padded, wt, b, out, arg),
                (Isa::Avx2, 2, 3) => avx2::<2, 3>(g, padded, wt, b, out, arg),
                (Isa::Avx2, 2, _) => avx2::<2, 5>(g, padded, wt, b, out, arg),
                (Isa::Avx2, _, 3) => avx2::<1, 3>(g, padded, wt, b, out, arg),
                (Isa::Avx2, _, _) => avx2::<1, 5>(g, padded, wt, b, out, arg),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const NV: usize, const K: usize>(
        g: &Geometry,
        padded: &[f32],
        wt: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { image::<__m512, NV, K>(g, padded, wt, b, out, arg) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const NV: usize, const K: usize>(
        g: &Geometry,
        padded: &[f32],
        wt: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { image::<__m256, NV, K>(g, padded, wt, b, out, arg) }
    }

    /// For each pool window and each group of `NV` registers of channels: the window's four
    /// convolution outputs accumulate in registers, tap by tap in order with fused
    /// multiply-adds from zero (the im2col GEMM's operations, so the same bits), then get the
    /// bias and are pooled.
    #[inline(always)]
    unsafe fn image<V: Vector, const NV: usize, const K: usize>(
        g: &Geometry,
        padded: &[f32],
        wt: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
            let (wp, k, cout) = (padded_hw(g).1, K, g.cout);
            debug_assert_eq!(g.k, K);
            let group = NV * V::LANES;
            let (pin, wptr) = (padded.as_ptr(), wt.as_ptr());
            for py in 0..ch / 2 {
                for px in 0..cw / 2 {
                    let o = (py * (cw / 2) + px) * cout;
                    for c0 in (0..cout).step_by(group) {
                        let mut acc = [[V::zero(); NV]; 4];
                        for ky in 0..k {
                            let top = pin.add((2 * py + ky) * wp + 2 * px);
                            let bottom = top.add(wp);
                            for kx in 0..k {
                                let v = [
                                    V::splat(*top.add(kx)),
                                    V::splat(*top.add(kx + 1)),
                                    V::splat(*bottom.add(kx)),
                                    V::splat(*bottom.add(kx + 1)),
                                ];
                                for j in 0..NV {
                                    let w =
                                        V::load(wptr.add((ky * k + kx) * cout + c0 + j * V::LANES));
                                    for (a, v) in acc.iter_mut().zip(v) {
                                        a[j] = a[j].mul_add(v, w);
                                    }
                                }
                            }
                        }
                        // Corners in the pool's order: top-left, top-right, bottom-left, bottom-right.
                        let [tl, tr, bl, br] = acc;
                        let corners = tl.into_iter().zip(tr).zip(bl).zip(br);
                        for (j, (((tl, tr), bl), br)) in corners.enumerate() {
                            let c = c0 + j * V::LANES;
                            let first = (2 * py * cw + 2 * px) * cout + c;
                            let (out, arg) =
                                (out.as_mut_ptr().add(o + c), arg.as_mut_ptr().add(o + c));
                            let bias = V::load(b.as_ptr().add(c));
                            pool_window(
                                [[tl, tr], [bl, br]],
                                bias,
                                (first, cw * cout, cout),
                                out,
                                arg,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Adds one image's weight gradients to `gw` (`[k*k][cout]`): `routed` is the gradient of
    /// its convolution output (`[ch][cw][cout]`, zero off the pool's winners).
    pub fn weight_grads_image(
        kernel: Kernel,
        g: &Geometry,
        padded: &[f32],
        routed: &[f32],
        gw: &mut [f32],
    ) {
        let (hp, wp) = padded_hw(g);
        assert_eq!(padded.len(), hp * wp);
        assert_eq!(routed.len(), g.out_len());
        assert_eq!(gw.len(), g.k * g.k * g.cout);
        // SAFETY: as in `forward_image`: `kernel` suits the CPU and `cout`; the asserts bound
        // every index (a tap's input lies inside the padded image for every output pixel).
        unsafe {
            match (kernel.isa, kernel.nv) {
                (Isa::Avx512, 2) => grads_avx512::<2, 13>(g, padded, routed, gw),
                (Isa::Avx512, _) => grads_avx512::<1, 25>(g, padded, routed, gw),
                (Isa::Avx2, 2) => grads_avx2::<2, 6>(g, padded, routed, gw),
                (Isa::Avx2, _) => grads_avx2::<1, 12>(g, padded, routed, gw),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn grads_avx512<const NV: usize, const NT: usize>(
        g: &Geometry,
        padded: &[f32],
        routed: &[f32],
        gw: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { grads::<__m512, NV, NT>(g, padded, routed, gw) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn grads_avx2<const NV: usize, const NT: usize>(
        g: &Geometry,
        padded: &[f32],
        routed: &[f32],
        gw: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { grads::<__m256, NV, NT>(g, padded, routed, gw) }
    }

    /// `NT` taps by `NV` registers of channels accumulate in registers over every pixel of the
    /// pool's windows, in order, with fused multiply-adds from the sums so far. Taps past the
    /// kernel's last (in the last group) read the first tap's input and are dropped.
    #[inline(always)]
    unsafe fn grads<V: Vector, const NV: usize, const NT: usize>(
        g: &Geometry,
        padded: &[f32],
        routed: &[f32],
        gw: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
            let (wp, k, cout) = (padded_hw(g).1, g.k, g.cout);
            let kk = k * k;
            let (pin, gin, gout) = (padded.as_ptr(), routed.as_ptr(), gw.as_mut_ptr());
            for c0 in (0..cout).step_by(NV * V::LANES) {
                for t0 in (0..kk).step_by(NT) {
                    let live = |t: usize| t0 + t < kk;
                    let offsets: [usize; NT] = std::array::from_fn(|t| {
                        if live(t) {
                            (t0 + t) / k * wp + (t0 + t) % k
                        } else {
                            0
                        }
                    });
                    let at = |t: usize, j: usize| (t0 + t) * cout + c0 + j * V::LANES;
                    let mut acc: [[V; NV]; NT] = std::array::from_fn(|t| {
                        std::array::from_fn(|j| {
                            if live(t) {
                                V::load(gout.add(at(t, j)))
                            } else {
                                V::zero()
                            }
                        })
                    });
                    for oy in 0..ch / 2 * 2 {
                        for ox in 0..cw / 2 * 2 {
                            let pixel = gin.add((oy * cw + ox) * cout + c0);
                            let gv: [V; NV] =
                                std::array::from_fn(|j| V::load(pixel.add(j * V::LANES)));
                            let input = pin.add(oy * wp + ox);
                            for (a, &offset) in acc.iter_mut().zip(&offsets) {
                                let x = V::splat(*input.add(offset));
                                for (a, &gv) in a.iter_mut().zip(&gv) {
                                    *a = a.mul_add(x, gv);
                                }
                            }
                        }
                    }
                    for (t, a) in acc.iter().enumerate().filter(|&(t, _)| live(t)) {
                        for (j, a) in a.iter().enumerate() {
                            a.store(gout.add(at(t, j)));
                        }
                    }
                }
            }
        }
    }
}

/// No vector kernels off x86-64: [`applies`] is false there.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    pub fn forward_image(
        kernel: super::Kernel,
        _: &super::Geometry,
        _: &[f32],
        _: &[f32],
        _: &[f32],
        _: &mut [f32],
        _: &mut [u32],
    ) {
        let _ = kernel;
        unreachable!("`applies` is false off x86-64")
    }

    pub fn weight_grads_image(
        kernel: super::Kernel,
        _: &super::Geometry,
        _: &[f32],
        _: &[f32],
        _: &mut [f32],
    ) {
        let _ = kernel;
        unreachable!("`applies` is false off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv2d::cpu::naive;

    fn val(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|j| ((j * 7919 + seed * 104_729) % 1009) as f32 / 504.5 - 1.0)
            .collect()
    }

    /// Shapes the kernels serve: both kernel sizes, both paddings, odd sizes (the pool drops
    /// the last row and column), and every register blocking (8 to 64 channels).
    fn geometries() -> Vec<Geometry> {
        let mut v = Vec::new();
        for (h, w) in [(28, 28), (9, 7)] {
            for k in [3, 5] {
                for pad in [k / 2, 0] {
                    for cout in [8, 16, 32, 64] {
                        v.push(Geometry {
                            batch: 3,
                            h,
                            w,
                            cin: 1,
                            cout,
                            k,
                            pad,
                        });
                    }
                }
            }
        }
        v
    }

    /// Input, weights and bias for `g`, and what the im2col GEMM and the pool give for them.
    #[allow(clippy::type_complexity)]
    fn forward_case(g: &Geometry) -> (Vec<f32>, Vec<f32>, Vec<f32>, (Vec<f32>, Vec<u32>)) {
        let (x, w, b) = (
            val(g.batch * g.in_len(), 1),
            val(g.cout * g.k * g.k, 2),
            val(g.cout, 3),
        );
        let want = super::super::testing::im2col_then_pool(g, &x, &w, &b);
        (x, w, b, want)
    }

    /// The direct kernel against the im2col GEMM followed by the pool: the same choices, and the
    /// same values (bit for bit on 28x28 images).
    #[test]
    fn forward_matches_im2col_then_pool_bit_for_bit() {
        for g in geometries() {
            if !applies(&g) {
                eprintln!("no vector kernel for {g:?} on this CPU: skipped");
                continue;
            }
            let (x, w, b, (want, want_arg)) = forward_case(&g);
            let n = want.len();
            for kernel in kernels_for(&g) {
                let (mut got, mut got_arg) = (vec![0.0; n], vec![0u32; n]);
                forward_with(kernel, &g, &x, &w, &b, &mut got, &mut got_arg);
                // gemm picks its kernels by size: on MNIST-sized images it sums exactly as here.
                if g.h == 28 {
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "values differ for {g:?}"
                    );
                }
                let err = got
                    .iter()
                    .zip(&want)
                    .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(err < 1e-5, "{g:?}: error {err}");
                assert_eq!(got_arg, want_arg, "choices differ for {g:?}");
            }
        }
    }

    /// Fewer output channels than a vector (LeNet-5's 6) take the forward kernels padded: the
    /// same values bit for bit as the im2col GEMM and the pool, and the same choices, indexed
    /// in the unpadded output.
    #[test]
    fn padded_channels_match_im2col_then_pool_bit_for_bit() {
        let mut checked = 0;
        for cout in [1, 6, 7] {
            for (k, pad) in [(5, 0), (5, 2), (3, 1)] {
                let g = Geometry {
                    batch: 3,
                    h: 28,
                    w: 28,
                    cin: 1,
                    cout,
                    k,
                    pad,
                };
                assert!(!applies(&g), "{g:?} is not padded");
                if !forward_applies(&g) {
                    eprintln!("no vector kernel for {g:?} on this CPU: skipped");
                    continue;
                }
                let (x, w, b, (want, want_arg)) = forward_case(&g);
                let (mut got, mut got_arg) = (vec![0.0; want.len()], vec![0u32; want.len()]);
                forward_pooled(&g, &x, &w, &b, &mut got, &mut got_arg);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "values differ for {g:?}");
                assert_eq!(got_arg, want_arg, "choices differ for {g:?}");
                checked += 1;
            }
        }
        if Isa::fitting(8).next().is_some() {
            assert_eq!(checked, 9);
        }
    }

    /// Every kernel this CPU can run on `g`'s channels, not only the one `kernel` prefers.
    fn kernels_for(g: &Geometry) -> Vec<Kernel> {
        Kernel::all(g.cout).collect()
    }

    /// Weight and bias gradients against the direct loops (in f64) on the routed gradient:
    /// each live window's gradient at its chosen input, zero elsewhere.
    #[test]
    fn weight_grads_match_the_direct_loops() {
        let mut checked = 0;
        for g in geometries() {
            if !applies(&g) {
                continue;
            }
            let (x, w, b) = (
                val(g.batch * g.in_len(), 4),
                val(g.cout * g.k * g.k, 5),
                val(g.cout, 6),
            );
            let n = g.batch * pooled_len(&g);
            let (mut out, mut arg) = (vec![0.0; n], vec![0u32; n]);
            forward_pooled(&g, &x, &w, &b, &mut out, &mut arg);
            // The ReLU: about half the windows are dead.
            for (v, a) in out.iter().zip(arg.iter_mut()) {
                if *v <= 0.0 {
                    *a = DEAD;
                }
            }
            let grad = val(n, 7);
            let mut routed = vec![0.0; g.batch * g.out_len()];
            for ((r, a), gy) in routed
                .chunks_exact_mut(g.out_len())
                .zip(arg.chunks_exact(pooled_len(&g)))
                .zip(grad.chunks_exact(pooled_len(&g)))
            {
                for (&i, &v) in a.iter().zip(gy) {
                    if i != DEAD {
                        r[i as usize] += v;
                    }
                }
            }
            let (_, want_w, want_b) = naive::backward(&g, &x, &w, &routed);
            for kernel in kernels_for(&g) {
                let (got_w, got_b) = weight_grads_with(kernel, &g, &x, &arg, &grad);
                for (got, want) in [(got_w, &want_w), (got_b, &want_b)] {
                    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                    let err = got
                        .iter()
                        .zip(want)
                        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
                    assert!(err <= 1e-5 * scale, "{g:?}: error {err} at scale {scale}");
                }
                checked += 1;
            }
        }
        if applies(&geometries()[0]) {
            // Every blocking on both instruction sets: 16 shapes, 1 to 4 kernels each.
            assert!(checked >= 32, "{checked} cases");
        }
    }
}
