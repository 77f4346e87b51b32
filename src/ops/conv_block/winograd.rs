//! Winograd forward kernels for a block with 3x3 or 5x5 kernels on several channels: F(2x2,
//! 3x3) and F(4x4, 5x5). A 2x2 output tile is one pool window, computed from a 4x4 input tile
//! in 16 multiplies per input and output channel where the direct kernel takes 36; a 4x4 tile
//! is four windows, from an 8x8 input tile in 64 multiplies where the direct kernel takes 400.
//! The input and kernel are taken to the transform domain (`Bᵀ d B`, `G g Gᵀ`), multiplied
//! elementwise, summed over input channels (one small GEMM per point of the domain, where the
//! time goes) and brought back (`Aᵀ m A`). Lavin and Gray, "Fast Algorithms for Convolutional
//! Neural Networks" (2016); the matrices are the Toom-Cook ones for the points 0, 1, -1 and
//! infinity (3x3), and 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (5x5).
//!
//! The transforms' extra roundings leave each output within about 1e-6 of its scale of the
//! exact sum for 3x3 kernels (the direct kernels: about 1e-7), more for 5x5 ones (their points
//! reach 2 and 1/2; within the tests' 1e-5). Every image is computed alone, in a fixed order:
//! the same bits at any thread count.

use super::buffers::{
    aligned_zeros, pad_channels, pad_image_to, pad_runs, pooled_len, pooled_padded, tap_major,
};
use crate::ops::conv2d::cpu::Geometry;
use crate::ops::isa::Isa;
use std::cell::RefCell;

/// Outputs per tile side for kernel size `k`: 4 for 5x5 kernels, 2 for 3x3 ones.
///
/// F(4x4, 5x5) evaluated the reference, Caffe's LeNet and the smoke CNN 20-40 % faster than
/// F(2x2, 5x5) with AVX-512 (and with AVX2 level to 40 % faster); F(4x4, 3x3) evaluated
/// cnn3x3 no faster with AVX-512 and 20 % slower with AVX2 (its third block's 3x3 pooled
/// windows take four tiles of four), so it is not built. The choice is the same on every instruction set.
fn outputs(k: usize) -> usize {
    if k == 5 {
        4
    } else {
        2
    }
}

/// Points of the transform domain per tile: `outputs` and `k` taps overlap on
/// `k + outputs - 1` inputs a side.
fn points(k: usize) -> usize {
    (k + outputs(k) - 1).pow(2)
}

/// Values from one point of the transform domain to the next in the transformed inputs and
/// products (`tiles` rows of `channels`): a cache line more than a point holds. With 16 tiles of
/// 64 channels a point is exactly 4 KB, and the 64 values one tile's transforms read or write
/// at a time would all fall in the same sets of the L1 cache.
fn point_stride(tiles: usize, channels: usize) -> usize {
    tiles * channels + 16
}

/// Tiles down and across the convolution's output, each `outputs / 2` pool windows a side;
/// the last ones reach past the pooled output where its side is not a multiple of that (their
/// extra windows are computed from zeros and dropped).
fn tiles(g: &Geometry) -> (usize, usize) {
    let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
    let per = outputs(g.k) / 2;
    ((ch / 2).div_ceil(per), (cw / 2).div_ceil(per))
}

/// Kernel transforms `G`: row `i` evaluates the kernel's polynomial at point `i`, scaled by the
/// Lagrange denominator there (the last row is the point at infinity: the leading tap).
#[cfg(test)]
const G3: [[f64; 3]; 4] = [
    [1., 0., 0.],
    [1. / 2., 1. / 2., 1. / 2.],
    [1. / 2., -1. / 2., 1. / 2.],
    [0., 0., 1.],
];
/// The points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity (the first row's sign flipped, with the
/// first row of `Bᵀ`'s: the same products).
#[cfg(test)]
const G45: [[f64; 5]; 8] = [
    [1., 0., 0., 0., 0.],
    [-2. / 9., -2. / 9., -2. / 9., -2. / 9., -2. / 9.],
    [-2. / 9., 2. / 9., -2. / 9., 2. / 9., -2. / 9.],
    [1. / 90., 1. / 45., 2. / 45., 4. / 45., 8. / 45.],
    [1. / 90., -1. / 45., 2. / 45., -4. / 45., 8. / 45.],
    [32. / 45., 16. / 45., 8. / 45., 4. / 45., 2. / 45.],
    [32. / 45., -16. / 45., 8. / 45., -4. / 45., 2. / 45.],
    [0., 0., 0., 0., 1.],
];

/// The block's weights in the transform domain, built once per forward pass.
pub struct Winograd {
    isa: Isa,
    /// Input channels computed: `cin`, or more (zeros) up to a multiple of 8.
    cin: usize,
    /// Output channels computed: `cout`, or more (zero weights) to fill whole vectors.
    cout: usize,
    /// `[points][cin][cout]` (the padded counts), `len` values from the first 64-byte boundary
    /// of `u`: per point, the GEMM's right side.
    u: Vec<f32>,
    len: usize,
}

impl Winograd {
    /// `Some` where these kernels serve `g`: 3x3 or 5x5 kernels, several input channels, a
    /// CPU with AVX2 and FMA (or AVX-512). `w` is `[cout][k][k][cin]`.
    ///
    /// More than 16 input channels that are not a multiple of 8 (Caffe's LeNet's 20) are
    /// padded with zeros to one, and output channels that are not whole vectors (Caffe's
    /// LeNet's 50) with zero weights to a multiple of 16, the same on every instruction set:
    /// each output channel is a lane of its own, and the zero input channels add exact zeros
    /// to its sums in the same place on every path. Fewer input channels are left to the
    /// direct kernel: there the transforms cost what the saved multiplies save (LeNet-5's 6
    /// padded to 8 evaluated no faster).
    pub fn new(g: &Geometry, w: &[f32]) -> Option<Self> {
        if !matches!(g.k, 3 | 5) || g.cin < 2 || !(g.cin.is_multiple_of(8) || g.cin > 16) {
            return None;
        }
        // A CPU with the vector kernels at all (16 fits both instruction sets).
        Isa::fitting(16).next()?;
        let cout = if Isa::fitting(g.cout).next().is_some() {
            g.cout
        } else {
            g.cout.next_multiple_of(16)
        };
        let isa = Isa::fitting(cout).next()?;
        let cin = g.cin.next_multiple_of(8);
        assert_eq!(w.len(), g.cout * g.k * g.k * g.cin);
        // Copies of the weights only where channels are padded (not on the reference's path).
        let taps = if (cin, cout) == (g.cin, g.cout) {
            tap_major(w, cout)
        } else {
            tap_major(&pad_channels(&pad_runs(w, g.cin, cin), g.cout, cout), cout)
        };
        let mut u = Vec::new();
        let len = points(g.k) * cin * cout;
        // SAFETY: `isa` suits this CPU and `cout`; `taps` and `u` have the lengths asserted
        // there.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            let u = aligned_zeros(&mut u, len);
            simd::transform_weights(isa, g.k, cin, cout, &taps, u)
        };
        Some(Winograd {
            isa,
            cin,
            cout,
            u,
            len,
        })
    }

    fn weights(&self) -> &[f32] {
        &self.u[self.u.as_ptr().align_offset(64)..][..self.len]
    }

    /// Convolution, bias and 2x2 max-pool of a run of whole images, as
    /// `direct_forward::Direct::forward_pooled`: `out` gets the pooled values (before the
    /// ReLU), `arg` the index of each window's first maximum within its image's convolution
    /// output.
    pub fn forward_pooled(
        &self,
        g: &Geometry,
        x: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        pooled_padded(g, self.cout, b, out, arg, |gp, bp, out, arg| {
            self.forward_whole(gp, x, bp, out, arg)
        })
    }

    /// `forward_pooled` where `g.cout` is the computed output channel count.
    fn forward_whole(&self, g: &Geometry, x: &[f32], b: &[f32], out: &mut [f32], arg: &mut [u32]) {
        let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
        let (tiles_y, tiles_x) = tiles(g);
        let points = points(g.k);
        let pooled = pooled_len(g);
        let images = x.len() / g.in_len();
        assert_eq!(x.len(), images * g.in_len());
        assert_eq!((out.len(), arg.len()), (images * pooled, images * pooled));
        assert_eq!(b.len(), g.cout);
        assert!(matches!(g.k, 3 | 5) && g.cout == self.cout && self.isa.fits(g.cout));
        assert!(self.cin >= g.cin && self.cin.is_multiple_of(8));
        // The padded input channels: the kernels' geometry.
        let gp = Geometry {
            cin: self.cin,
            ..*g
        };
        assert_eq!(self.weights().len(), points * gp.cin * gp.cout);
        assert!(ch + g.k - 1 == g.h + 2 * g.pad && cw + g.k - 1 == g.w + 2 * g.pad);
        // Every tile's inputs lie inside the padded image, which reaches past the bordered one
        // where the last tiles do.
        let extent = |tiles: usize, side: usize| (tiles * outputs(g.k) + g.k - 1).max(side);
        let extent = (
            extent(tiles_y, g.h + 2 * g.pad),
            extent(tiles_x, g.w + 2 * g.pad),
        );
        let tiles = tiles_y * tiles_x;
        SCRATCH.with_borrow_mut(|s| {
            let v = scratch(&mut s.v, points * point_stride(tiles, gp.cin));
            let m = scratch(&mut s.m, points * point_stride(tiles, gp.cout));
            for ((img, out), arg) in x
                .chunks_exact(g.in_len())
                .zip(out.chunks_exact_mut(pooled))
                .zip(arg.chunks_exact_mut(pooled))
            {
                let padded = pad_image_to(g, img, gp.cin, extent, &mut s.padded);
                // SAFETY: `isa` suits this CPU and `gp.cout`, and `gp.cin` is a multiple of 8
                // (asserted above); the asserts above and the scratch lengths fix every index
                // the kernels form.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    let wp = extent.1;
                    let u = self.weights();
                    simd::image(self.isa, &gp, wp, padded, u, b, v, m, out, arg)
                }
            }
        });
    }
}

/// This thread's buffers, reused between calls: the padded image, and the image's transformed
/// inputs (`[points][tiles][cin]`) and products (`[points][tiles][cout]`), their points
/// `point_stride` apart.
#[derive(Default)]
struct Scratch {
    padded: Vec<f32>,
    v: Vec<f32>,
    m: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// `len` values of `buf` from a 64-byte boundary, stale: every one is written before it is read.
fn scratch(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + 16 {
        buf.resize(len + 16, 0.0);
    }
    let start = buf.as_ptr().align_offset(64);
    assert!(start < 16);
    &mut buf[start..][..len]
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{point_stride, tiles, Geometry, Isa};
    use crate::ops::vector::{pool_window, Vector};
    use std::arch::x86_64::*;

    /// One algorithm F(OxO, KxK): its three 1-D transforms on `A = K + O - 1` points, applied
    /// to columns and then rows by [`separable`].
    pub trait Algorithm<const K: usize, const A: usize, const O: usize> {
        /// `G g` for one column (or `g Gᵀ` for one row) of taps.
        ///
        /// # Safety
        /// The CPU has `V`'s instruction set.
        unsafe fn kernel<V: Vector>(g: [V; K]) -> [V; A];
        /// `Bᵀ d` for one column (or `d B` for one row) of inputs.
        ///
        /// # Safety
        /// As `kernel`.
        unsafe fn input<V: Vector>(d: [V; A]) -> [V; A];
        /// `Aᵀ m` for one column (or `m A` for one row) of products.
        ///
        /// # Safety
        /// As `kernel`.
        unsafe fn output<V: Vector>(m: [V; A]) -> [V; O];
    }

    /// `v` times the constant `c`.
    #[inline(always)]
    unsafe fn times<V: Vector>(v: V, c: f32) -> V {
        // SAFETY: the caller's contract: the CPU has `V`'s instruction set.
        unsafe { v.mul(V::splat(c)) }
    }

    /// F(2x2, 3x3), on the points 0, 1, -1 and infinity.
    pub struct F23;

    impl Algorithm<3, 4, 2> for F23 {
        #[inline(always)]
        unsafe fn kernel<V: Vector>(g: [V; 3]) -> [V; 4] {
            // SAFETY: the caller's contract: the CPU has `V`'s instruction set.
            unsafe {
                let (even, half) = (g[0].add(g[2]), V::splat(0.5));
                [
                    g[0],
                    even.add(g[1]).mul(half),
                    even.sub(g[1]).mul(half),
                    g[2],
                ]
            }
        }

        #[inline(always)]
        unsafe fn input<V: Vector>(d: [V; 4]) -> [V; 4] {
            // SAFETY: as `kernel`.
            unsafe {
                [
                    d[0].sub(d[2]),
                    d[1].add(d[2]),
                    d[2].sub(d[1]),
                    d[1].sub(d[3]),
                ]
            }
        }

        #[inline(always)]
        unsafe fn output<V: Vector>(m: [V; 4]) -> [V; 2] {
            // SAFETY: as `kernel`.
            unsafe { [m[0].add(m[1]).add(m[2]), m[1].sub(m[2]).sub(m[3])] }
        }
    }

    /// F(4x4, 5x5), on the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity.
    pub struct F45;

    impl Algorithm<5, 8, 4> for F45 {
        /// The rows of `G`, with the even and odd taps summed once for each pair of opposite
        /// points.
        #[inline(always)]
        unsafe fn kernel<V: Vector>(g: [V; 5]) -> [V; 8] {
            // SAFETY: the caller's contract: the CPU has `V`'s instruction set.
            unsafe {
                let (even, odd) = (g[0].add(g[2]).add(g[4]), g[1].add(g[3]));
                let even2 = times(g[0], 1. / 90.)
                    .add(times(g[2], 2. / 45.))
                    .add(times(g[4], 8. / 45.));
                let odd2 = times(g[1], 1. / 45.).add(times(g[3], 4. / 45.));
                let even_half = times(g[0], 32. / 45.)
                    .add(times(g[2], 8. / 45.))
                    .add(times(g[4], 2. / 45.));
                let odd_half = times(g[1], 16. / 45.).add(times(g[3], 4. / 45.));
                [
                    g[0],
                    times(even.add(odd), -2. / 9.),
                    times(even.sub(odd), -2. / 9.),
                    even2.add(odd2),
                    even2.sub(odd2),
                    even_half.add(odd_half),
                    even_half.sub(odd_half),
                    g[4],
                ]
            }
        }

        /// The rows of `Bᵀ` in pairs of opposite points: the even inputs' sum plus and minus
        /// the odd inputs'.
        #[inline(always)]
        unsafe fn input<V: Vector>(d: [V; 8]) -> [V; 8] {
            // SAFETY: as `kernel`.
            unsafe {
                let c = |x: f32| V::splat(x);
                // `a.mul_add(b, c)` is `a + b c`.
                let even1 = d[2].add(d[6]).mul_add(d[4], c(-4.25));
                let odd1 = d[1].add(d[5]).mul_add(d[3], c(-4.25));
                let even2 = d[6].mul_add(d[2], c(0.25)).mul_add(d[4], c(-1.25));
                let odd2 = d[5].add(d[5]).mul_add(d[1], c(0.5)).mul_add(d[3], c(-2.5));
                let even3 = d[6].mul_add(d[2], c(4.0)).mul_add(d[4], c(-5.0));
                let odd3 = d[1].add(d[1]).mul_add(d[3], c(-2.5)).mul_add(d[5], c(0.5));
                [
                    d[0].sub(d[6]).mul_add(d[4].sub(d[2]), c(5.25)),
                    even1.add(odd1),
                    even1.sub(odd1),
                    even2.add(odd2),
                    even2.sub(odd2),
                    even3.add(odd3),
                    even3.sub(odd3),
                    d[7].sub(d[1]).mul_add(d[3].sub(d[5]), c(5.25)),
                ]
            }
        }

        #[inline(always)]
        unsafe fn output<V: Vector>(m: [V; 8]) -> [V; 4] {
            // SAFETY: as `kernel`.
            unsafe {
                let c = |x: f32| V::splat(x);
                let (s12, d12) = (m[1].add(m[2]), m[1].sub(m[2]));
                let (s34, d34) = (m[3].add(m[4]), m[3].sub(m[4]));
                let (s56, d56) = (m[5].add(m[6]), m[5].sub(m[6]));
                [
                    m[0].add(s12).add(s34.add(s56)),
                    d12.add(d34.add(d34)).mul_add(d56, c(0.5)),
                    s12.mul_add(s34, c(4.0)).mul_add(s56, c(0.25)),
                    d12.mul_add(d34, c(8.0)).mul_add(d56, c(0.125)).add(m[7]),
                ]
            }
        }
    }

    /// `$f::<Algorithm, K, A, O>($args)` for kernel size `$k`: F(2x2, 3x3) for 3, F(4x4,
    /// 5x5) for 5.
    macro_rules! by_algorithm {
        ($k:expr, $f:ident($($arg:expr),*)) => {
            match $k {
                3 => $f::<F23, 3, 4, 2>($($arg),*),
                _ => $f::<F45, 5, 8, 4>($($arg),*),
            }
        };
    }

    /// The kernel transform: `u[p][ci][co]` from `taps[k][k][ci][co]`.
    ///
    /// # Safety
    /// The CPU has `isa`, whose lanes divide `cout`; `k` is 3 or 5.
    pub unsafe fn transform_weights(
        isa: Isa,
        k: usize,
        cin: usize,
        cout: usize,
        taps: &[f32],
        u: &mut [f32],
    ) {
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<T: Algorithm<K, A, O>, const K: usize, const A: usize, const O: usize>(
            cin: usize,
            cout: usize,
            taps: &[f32],
            u: &mut [f32],
        ) {
            // SAFETY: the CPU has AVX-512 (the caller's contract).
            unsafe { weights::<__m512, T, K, A, O>(cin, cout, taps, u) }
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Algorithm<K, A, O>, const K: usize, const A: usize, const O: usize>(
            cin: usize,
            cout: usize,
            taps: &[f32],
            u: &mut [f32],
        ) {
            // SAFETY: the CPU has AVX2 and FMA (the caller's contract).
            unsafe { weights::<__m256, T, K, A, O>(cin, cout, taps, u) }
        }
        // SAFETY: the caller's contract: the CPU has `isa`.
        unsafe {
            match isa {
                Isa::Avx512 => by_algorithm!(k, avx512(cin, cout, taps, u)),
                Isa::Avx2 => by_algorithm!(k, avx2(cin, cout, taps, u)),
            }
        }
    }

    /// `G g Gᵀ` for a vector of output channels at a time.
    #[inline(always)]
    unsafe fn weights<
        V: Vector,
        T: Algorithm<K, A, O>,
        const K: usize,
        const A: usize,
        const O: usize,
    >(
        cin: usize,
        cout: usize,
        taps: &[f32],
        u: &mut [f32],
    ) {
        // SAFETY: the caller's contract: the CPU has `V`'s instruction set; the lengths asserted
        // here bound every offset below.
        unsafe {
            assert!(cout.is_multiple_of(V::LANES));
            assert_eq!(
                (taps.len(), u.len()),
                (K * K * cin * cout, A * A * cin * cout)
            );
            let (src, dst) = (taps.as_ptr(), u.as_mut_ptr());
            for ci in 0..cin {
                for c in (0..cout).step_by(V::LANES) {
                    let tap =
                        |a: usize, b: usize| V::load(src.add(((a * K + b) * cin + ci) * cout + c));
                    let at = |i: usize, j: usize| dst.add(((i * A + j) * cin + ci) * cout + c);
                    separable(tap, |g| T::kernel(g), |i, j, u: V| u.store(at(i, j)));
                }
            }
        }
    }

    /// A separable 2-D transform, `T x Tᵀ`: the 1-D transform `t` on every column of the tile
    /// that `load(row, column)` reads, then on every row of the result; `store(i, j, value)`.
    #[inline(always)]
    fn separable<V: Vector, const N: usize, const M: usize>(
        load: impl Fn(usize, usize) -> V,
        t: impl Fn([V; N]) -> [V; M],
        mut store: impl FnMut(usize, usize, V),
    ) {
        // Plain loops over fixed-size arrays, not `array::from_fn`, `map` and `into_iter`: those
        // are not always inlined, and where one was not, the arrays went through the stack by
        // calls to `memcpy` (a vzeroupper each): an unrelated change to the crate made the
        // reference's evaluation 5 % slower that way. `filler` only sizes the arrays: every
        // value is written before it is read.
        let filler = load(0, 0);
        let mut columns = [[filler; M]; N];
        for (x, column) in columns.iter_mut().enumerate() {
            let mut values = [filler; N];
            for (y, value) in values.iter_mut().enumerate() {
                *value = load(y, x);
            }
            *column = t(values);
        }
        for i in 0..M {
            let mut row = [filler; N];
            for (value, column) in row.iter_mut().zip(&columns) {
                *value = column[i];
            }
            let row = t(row);
            for (j, &value) in row.iter().enumerate() {
                store(i, j, value);
            }
        }
    }

    /// Tiles per register block of the products: `TILES` rows of `V` by `NV` vectors of
    /// output channels in accumulators, within the register file with the `NV` weight vectors.
    const TILES: usize = 6;

    /// One padded image (`[hp][wp][cin]`): transform, products, and back to pooled outputs.
    ///
    /// # Safety
    /// The CPU has `isa`, whose lanes divide `cout`; 8 divides `cin`; `g.k` is 3 or 5;
    /// `padded` holds every tile's inputs in rows of `wp` pixels; `u` is `[points][cin][cout]`;
    /// `v` and `m` hold `points` points of `tiles` rows of `cin` and `cout`, `point_stride`
    /// apart; `out` and `arg` the pooled outputs.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn image(
        isa: Isa,
        g: &Geometry,
        wp: usize,
        padded: &[f32],
        u: &[f32],
        b: &[f32],
        v: &mut [f32],
        m: &mut [f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the caller's contract: the CPU has `isa`.
        unsafe {
            match isa {
                Isa::Avx512 => by_algorithm!(g.k, avx512(g, wp, padded, u, b, v, m, out, arg)),
                Isa::Avx2 => {
                    by_algorithm!(g.k, avx2(g, wp, padded, u, b, v, m, out, arg))
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<T: Algorithm<K, A, O>, const K: usize, const A: usize, const O: usize>(
        g: &Geometry,
        wp: usize,
        padded: &[f32],
        u: &[f32],
        b: &[f32],
        v: &mut [f32],
        m: &mut [f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the CPU has AVX-512 (the caller's contract); `image`'s contract bounds the
        // buffers.
        unsafe {
            debug_assert_eq!(O, super::outputs(K), "`tiles` counts tiles of O");
            let (tiles_y, tiles_x) = tiles(g);
            let tiles = tiles_y * tiles_x;
            // Input channels come in multiples of 8, not always of 16.
            if g.cin.is_multiple_of(16) {
                transform_input::<__m512, T, K, A, O>(g, wp, padded, v);
            } else {
                transform_input::<__m256, T, K, A, O>(g, wp, padded, v);
            }
            match g.cout % 64 {
                0 => products::<__m512, 4>(g, tiles, A * A, v, u, m),
                32 => products::<__m512, 2>(g, tiles, A * A, v, u, m),
                _ => products::<__m512, 1>(g, tiles, A * A, v, u, m),
            }
            transform_output::<__m512, T, K, A, O>(g, m, b, out, arg);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<T: Algorithm<K, A, O>, const K: usize, const A: usize, const O: usize>(
        g: &Geometry,
        wp: usize,
        padded: &[f32],
        u: &[f32],
        b: &[f32],
        v: &mut [f32],
        m: &mut [f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the CPU has AVX2 and FMA (the caller's contract); `image`'s contract bounds
        // the buffers.
        unsafe {
            debug_assert_eq!(O, super::outputs(K), "`tiles` counts tiles of O");
            let (tiles_y, tiles_x) = tiles(g);
            let tiles = tiles_y * tiles_x;
            transform_input::<__m256, T, K, A, O>(g, wp, padded, v);
            match g.cout % 16 {
                0 => products::<__m256, 2>(g, tiles, A * A, v, u, m),
                _ => products::<__m256, 1>(g, tiles, A * A, v, u, m),
            }
            transform_output::<__m256, T, K, A, O>(g, m, b, out, arg);
        }
    }

    /// Every tile's inputs to the transform domain: `v[p][tile][ci]`.
    #[inline(always)]
    unsafe fn transform_input<
        V: Vector,
        T: Algorithm<K, A, O>,
        const K: usize,
        const A: usize,
        const O: usize,
    >(
        g: &Geometry,
        wp: usize,
        padded: &[f32],
        v: &mut [f32],
    ) {
        // SAFETY: the caller's contract: the CPU has `V`'s instruction set; every tile's inputs
        // lie inside the padded image (asserted by `forward_pooled`) and `v` holds them all.
        unsafe {
            let (tiles_y, tiles_x) = tiles(g);
            let tiles = tiles_y * tiles_x;
            let cin = g.cin;
            let (src, dst) = (padded.as_ptr(), v.as_mut_ptr());
            for tile in 0..tiles {
                let (y0, x0) = (O * (tile / tiles_x), O * (tile % tiles_x));
                for c in (0..cin).step_by(V::LANES) {
                    let from = |y: usize, x: usize| src.add(((y0 + y) * wp + x0 + x) * cin + c);
                    let stride = point_stride(tiles, cin);
                    let to = |i: usize, j: usize| dst.add((i * A + j) * stride + tile * cin + c);
                    let load = |y: usize, x: usize| V::load(from(y, x));
                    separable(load, |d| T::input(d), |i, j, v: V| v.store(to(i, j)));
                }
            }
        }
    }

    /// The products `m[p] = v[p] u[p]` (`tiles x cin` by `cin x cout`) of every point, in
    /// register blocks of `TILES` tiles by `NV` vectors of output channels.
    #[inline(always)]
    unsafe fn products<V: Vector, const NV: usize>(
        g: &Geometry,
        tiles: usize,
        points: usize,
        v: &[f32],
        u: &[f32],
        m: &mut [f32],
    ) {
        // SAFETY: the caller's contract: the CPU has `V`'s instruction set and the buffers hold
        // `points` products of `tiles` tiles.
        unsafe {
            for p in 0..points {
                // Blocks as even as they come (49 tiles: 4 of 6 and 5 of 5, not 8 of 6 and 1 of 1).
                let blocks = tiles.div_ceil(TILES);
                let mut t0 = 0;
                for b in 0..blocks {
                    let n = tiles / blocks + usize::from(b < tiles % blocks);
                    macro_rules! block {
                        ($($n:literal)+) => {
                            match n {
                                $($n => block::<V, NV, $n>(g, tiles, v, u, m, p, t0),)+
                                _ => unreachable!("at most {TILES} tiles per block"),
                            }
                        };
                    }
                    block!(1 2 3 4 5 6);
                    t0 += n;
                }
            }
        }
    }

    /// Tiles `t0..t0 + NT` of point `p`, every output channel.
    #[inline(always)]
    unsafe fn block<V: Vector, const NV: usize, const NT: usize>(
        g: &Geometry,
        tiles: usize,
        v: &[f32],
        u: &[f32],
        m: &mut [f32],
        p: usize,
        t0: usize,
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            let (cin, cout) = (g.cin, g.cout);
            let rows = v.as_ptr().add(p * point_stride(tiles, cin) + t0 * cin);
            let u = u.as_ptr().add(p * cin * cout);
            let m = m
                .as_mut_ptr()
                .add(p * point_stride(tiles, cout) + t0 * cout);
            for c0 in (0..cout).step_by(NV * V::LANES) {
                let mut acc = [[V::zero(); NV]; NT];
                for ci in 0..cin {
                    let w: [V; NV] =
                        std::array::from_fn(|k| V::load(u.add(ci * cout + c0 + k * V::LANES)));
                    for (t, acc) in acc.iter_mut().enumerate() {
                        let x = V::splat(*rows.add(t * cin + ci));
                        for (a, &w) in acc.iter_mut().zip(&w) {
                            *a = a.mul_add(x, w);
                        }
                    }
                }
                for (t, acc) in acc.iter().enumerate() {
                    for (k, a) in acc.iter().enumerate() {
                        a.store(m.add(t * cout + c0 + k * V::LANES));
                    }
                }
            }
        }
    }

    /// Every tile's products back to its `O` by `O` outputs, plus bias, then the pool of each
    /// of its windows inside the pooled output: strict `>` in window order, so the first
    /// maximum wins (as `pool::forward_image`).
    #[inline(always)]
    unsafe fn transform_output<
        V: Vector,
        T: Algorithm<K, A, O>,
        const K: usize,
        const A: usize,
        const O: usize,
    >(
        g: &Geometry,
        m: &[f32],
        b: &[f32],
        out: &mut [f32],
        arg: &mut [u32],
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
            let (ph, pw) = (ch / 2, cw / 2);
            let (tiles_y, tiles_x) = tiles(g);
            let tiles = tiles_y * tiles_x;
            let (cout, per) = (g.cout, O / 2);
            let src = m.as_ptr();
            for tile in 0..tiles {
                // The tile's first pool window, and how many of its windows are inside.
                let (py0, px0) = (per * (tile / tiles_x), per * (tile % tiles_x));
                let (rows, cols) = (per.min(ph - py0), per.min(pw - px0));
                for c in (0..cout).step_by(V::LANES) {
                    let at = |i: usize, j: usize| {
                        V::load(src.add((i * A + j) * point_stride(tiles, cout) + tile * cout + c))
                    };
                    let mut y = [[V::zero(); O]; O];
                    separable(at, |m| T::output(m), |i, j, v| y[i][j] = v);
                    let bias = V::load(b.as_ptr().add(c));
                    for a in 0..rows {
                        for e in 0..cols {
                            let (py, px) = (py0 + a, px0 + e);
                            let window = [
                                [y[2 * a][2 * e], y[2 * a][2 * e + 1]],
                                [y[2 * a + 1][2 * e], y[2 * a + 1][2 * e + 1]],
                            ];
                            let o = (py * pw + px) * cout + c;
                            let (out, arg) = (out.as_mut_ptr().add(o), arg.as_mut_ptr().add(o));
                            let first = (2 * py * cw + 2 * px) * cout + c;
                            pool_window(window, bias, (first, cw * cout, cout), out, arg);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{cases_of, check_forward, forward_cases};
    use super::*;
    use crate::ops::isa::test_values as val;

    /// Against the im2col GEMM followed by the pool (an independent path), on `forward_cases`
    /// for both kernel sizes (1, 2 and 4 output vectors per register block, partial blocks of
    /// tiles, 4x4 tiles partly outside the output, 'same' and 'valid' padding) and on padded
    /// channel counts (Caffe's LeNet's 20 to 50, 18 to 6), on every instruction set the CPU
    /// has: values within the transforms' rounding, the same choices but on near ties
    /// (`check_forward`).
    #[test]
    fn matches_im2col_then_pool() {
        let padded = [(12, 12, 20, 50), (7, 9, 18, 6)];
        for k in [3, 5] {
            let mut checked = 0;
            for case in forward_cases(k).into_iter().chain(cases_of(k, &padded)) {
                let (g, _, wts, ..) = &case;
                let Some(winograd) = Winograd::new(g, wts) else {
                    continue;
                };
                for isa in Isa::fitting(winograd.cout) {
                    let winograd = Winograd {
                        isa,
                        u: winograd.u.clone(),
                        ..winograd
                    };
                    check_forward(isa, &case, |g, x, b, out, arg| {
                        winograd.forward_pooled(g, x, b, out, arg)
                    });
                    checked += 1;
                }
            }
            if Isa::fitting(16).next().is_none() {
                eprintln!("no vector kernel on this CPU: nothing checked");
            } else {
                assert!(checked >= 12, "{k}x{k}: {checked} cases");
            }
        }
    }

    /// Which blocks the kernels take: 3x3 and 5x5 on input channels in multiples of 8 or more
    /// than 16 (cnn3x3's, the reference's, Caffe's LeNet's padded), not LeNet-5's 6 or 12, not
    /// other kernel sizes, not one channel (the single-channel kernels' blocks).
    #[test]
    fn serves_the_shapes_it_was_measured_faster_on() {
        if Isa::fitting(16).next().is_none() {
            eprintln!("no vector kernel on this CPU: nothing checked");
            return;
        }
        let serves = |k: usize, cin: usize, cout: usize| {
            let g = Geometry {
                batch: 1,
                h: 14,
                w: 14,
                cin,
                cout,
                k,
                pad: k / 2,
            };
            let w = val(cout * k * k * cin, 1);
            Winograd::new(&g, &w).map(|wino| (wino.cin, wino.cout))
        };
        assert_eq!(serves(3, 32, 64), Some((32, 64)));
        assert_eq!(serves(3, 64, 128), Some((64, 128)));
        assert_eq!(serves(5, 32, 64), Some((32, 64)));
        assert_eq!(serves(5, 8, 16), Some((8, 16)));
        assert_eq!(serves(5, 20, 50), Some((24, 64)));
        assert_eq!(serves(5, 6, 16), None);
        assert_eq!(serves(3, 12, 16), None);
        assert_eq!(serves(7, 32, 64), None);
        assert_eq!(serves(5, 1, 32), None);
    }

    /// The kernel transform against `G g Gᵀ` in f64 from the matrix `G` (the transforms' code
    /// shares sums of taps instead), for every tap, every algorithm and both instruction sets.
    #[test]
    fn kernel_transform_is_g_g_gt() {
        fn check<const K: usize, const A: usize>(gm: &[[f64; K]; A]) {
            let g = Geometry {
                batch: 1,
                h: A,
                w: A,
                cin: 16,
                cout: 16,
                k: K,
                pad: 0,
            };
            let w = val(g.cout * K * K * g.cin, 5);
            let tap =
                |co: usize, a: usize, b: usize, ci: usize| w[((co * K + a) * K + b) * g.cin + ci];
            let mut checked = 0;
            for isa in Isa::fitting(g.cout) {
                let Some(winograd) = Winograd::new(&g, &w) else {
                    break;
                };
                let winograd = Winograd { isa, ..winograd };
                let u = winograd.weights();
                for (co, ci) in [(0, 0), (3, 7), (15, 15), (9, 2)] {
                    for i in 0..A {
                        for j in 0..A {
                            let want: f64 = (0..K)
                                .flat_map(|a| (0..K).map(move |b| (a, b)))
                                .map(|(a, b)| gm[i][a] * tap(co, a, b, ci) as f64 * gm[j][b])
                                .sum();
                            let got = u[((i * A + j) * g.cin + ci) * g.cout + co] as f64;
                            assert!(
                                (got - want).abs() <= 1e-6,
                                "{K}x{K} {isa:?} ({i}, {j}): {got} {want}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
            if Isa::fitting(16).next().is_some() {
                assert!(checked >= 4 * A * A);
            }
        }
        check(&G3);
        check(&G45);
    }
}
