//! Winograd forward kernels, F(2x2, 3x3) and F(2x2, 5x5), for a block with 3x3 or 5x5 kernels
//! on several channels. Each 2x2 output tile is exactly one pool window, computed from a 4x4
//! (6x6) input tile in 16 (36) multiplies per input and output channel where the direct kernels
//! take 36 (100): the input and kernel are taken to the transform domain (`Bᵀ d B`, `G g Gᵀ`),
//! multiplied elementwise, summed over input channels (one small GEMM per point of the domain,
//! where the time goes) and brought back (`Aᵀ m A`). Lavin and Gray, "Fast Algorithms for
//! Convolutional Neural Networks" (2016); the matrices are the Toom-Cook ones for the points 0,
//! 1, -1 and infinity (3x3), and 0, 1, -1, 2, -2 and infinity (5x5).
//!
//! The transforms' extra roundings leave each output within about 1e-6 of its scale of the
//! exact sum (the direct kernels: about 1e-7). Every image is computed alone, in a fixed order:
//! the same bits at any thread count.

use super::buffers::{
    aligned_zeros, pad_channels, pad_image_to, pad_runs, pooled_len, pooled_padded, tap_major,
};
use crate::ops::conv2d::cpu::Geometry;
use crate::ops::isa::Isa;
use std::cell::RefCell;

/// Input tile side for kernel size `k`: 2 outputs and `k` taps overlap on `k + 1` inputs.
fn alpha(k: usize) -> usize {
    k + 1
}

/// Points of the transform domain per tile.
fn points(k: usize) -> usize {
    alpha(k) * alpha(k)
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
#[cfg(test)]
const G5: [[f64; 5]; 6] = [
    [1. / 4., 0., 0., 0., 0.],
    [-1. / 6., -1. / 6., -1. / 6., -1. / 6., -1. / 6.],
    [-1. / 6., 1. / 6., -1. / 6., 1. / 6., -1. / 6.],
    [1. / 24., 1. / 12., 1. / 6., 1. / 3., 2. / 3.],
    [1. / 24., -1. / 12., 1. / 6., -1. / 3., 2. / 3.],
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
            simd::transform_weights(isa, g.k, cin, cout, &taps, aligned_zeros(&mut u, len))
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
        let tiles = (ch / 2) * (cw / 2);
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
        assert_eq!(self.weights().len(), points(g.k) * gp.cin * gp.cout);
        // Every tile's inputs lie inside the padded image.
        assert!(ch + g.k - 1 == g.h + 2 * g.pad && cw + g.k - 1 == g.w + 2 * g.pad);
        SCRATCH.with_borrow_mut(|s| {
            let v = scratch(&mut s.v, points(g.k) * tiles * gp.cin);
            let m = scratch(&mut s.m, points(g.k) * tiles * gp.cout);
            for ((img, out), arg) in x
                .chunks_exact(g.in_len())
                .zip(out.chunks_exact_mut(pooled))
                .zip(arg.chunks_exact_mut(pooled))
            {
                let padded = pad_image_to(g, img, gp.cin, &mut s.padded);
                // SAFETY: `isa` suits this CPU and `gp.cout`, and `gp.cin` is a multiple of 8
                // (asserted above); the asserts above and the scratch lengths fix every index
                // the kernels form.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    simd::image(self.isa, &gp, padded, self.weights(), b, v, m, out, arg)
                }
            }
        });
    }
}

/// This thread's buffers, reused between calls: the padded image, and the image's transformed
/// inputs (`[points][tiles][cin]`) and products (`[points][tiles][cout]`).
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
    use super::{Geometry, Isa};
    use crate::ops::vector::{pool_window, Vector};
    use std::arch::x86_64::*;

    /// One algorithm F(2x2, KxK): its three 1-D transforms on `A = K + 1` points, applied to
    /// columns and then rows by [`separable`].
    pub trait Algorithm<const K: usize, const A: usize> {
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
        unsafe fn output<V: Vector>(m: [V; A]) -> [V; 2];
    }

    /// F(2x2, 3x3), on the points 0, 1, -1 and infinity.
    pub struct F3;

    impl Algorithm<3, 4> for F3 {
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

    /// F(2x2, 5x5), on the points 0, 1, -1, 2, -2 and infinity.
    pub struct F5;

    impl Algorithm<5, 6> for F5 {
        /// The rows of `G`, with the even and odd taps summed once for each pair of opposite
        /// points.
        #[inline(always)]
        unsafe fn kernel<V: Vector>(g: [V; 5]) -> [V; 6] {
            // SAFETY: the caller's contract: the CPU has `V`'s instruction set.
            unsafe {
                let times = |v: V, c: f32| v.mul(V::splat(c));
                let (even, odd) = (g[0].add(g[2]).add(g[4]), g[1].add(g[3]));
                let even2 = times(g[0], 1. / 24.)
                    .add(times(g[2], 1. / 6.))
                    .add(times(g[4], 2. / 3.));
                let odd2 = times(g[1], 1. / 12.).add(times(g[3], 1. / 3.));
                [
                    times(g[0], 1. / 4.),
                    times(even.add(odd), -1. / 6.),
                    times(even.sub(odd), -1. / 6.),
                    even2.add(odd2),
                    even2.sub(odd2),
                    g[4],
                ]
            }
        }

        #[inline(always)]
        unsafe fn input<V: Vector>(d: [V; 6]) -> [V; 6] {
            // SAFETY: as `kernel`.
            unsafe {
                let (four, minus_four, minus_five) =
                    (V::splat(4.0), V::splat(-4.0), V::splat(-5.0));
                let a = d[4].mul_add(d[2], minus_four); // d4 - 4 d2
                let b = d[3].mul_add(d[1], minus_four); // d3 - 4 d1
                let c = d[4].sub(d[2]);
                let e = d[3].sub(d[1]);
                let e = e.add(e); // 2 (d3 - d1)
                [
                    d[4].mul_add(d[2], minus_five).mul_add(d[0], four),
                    a.add(b),
                    a.sub(b),
                    c.add(e),
                    c.sub(e),
                    d[5].mul_add(d[3], minus_five).mul_add(d[1], four),
                ]
            }
        }

        #[inline(always)]
        unsafe fn output<V: Vector>(m: [V; 6]) -> [V; 2] {
            // SAFETY: as `kernel`.
            unsafe {
                let d34 = m[3].sub(m[4]);
                [
                    m[0].add(m[1].add(m[2])).add(m[3].add(m[4])),
                    m[1].sub(m[2]).add(d34.add(d34)).add(m[5]),
                ]
            }
        }
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
        unsafe fn avx512<T: Algorithm<K, A>, const K: usize, const A: usize>(
            cin: usize,
            cout: usize,
            taps: &[f32],
            u: &mut [f32],
        ) {
            // SAFETY: the CPU has AVX-512 (the caller's contract).
            unsafe { weights::<__m512, T, K, A>(cin, cout, taps, u) }
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Algorithm<K, A>, const K: usize, const A: usize>(
            cin: usize,
            cout: usize,
            taps: &[f32],
            u: &mut [f32],
        ) {
            // SAFETY: the CPU has AVX2 and FMA (the caller's contract).
            unsafe { weights::<__m256, T, K, A>(cin, cout, taps, u) }
        }
        // SAFETY: the caller's contract: the CPU has `isa`.
        unsafe {
            match (isa, k) {
                (Isa::Avx512, 3) => avx512::<F3, 3, 4>(cin, cout, taps, u),
                (Isa::Avx512, _) => avx512::<F5, 5, 6>(cin, cout, taps, u),
                (Isa::Avx2, 3) => avx2::<F3, 3, 4>(cin, cout, taps, u),
                (Isa::Avx2, _) => avx2::<F5, 5, 6>(cin, cout, taps, u),
            }
        }
    }

    /// `G g Gᵀ` for a vector of output channels at a time.
    #[inline(always)]
    unsafe fn weights<V: Vector, T: Algorithm<K, A>, const K: usize, const A: usize>(
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
        // `columns[x][i]`: column `x` transformed; `rows[i][x]` the same values by rows.
        let columns: [[V; M]; N] = std::array::from_fn(|x| t(std::array::from_fn(|y| load(y, x))));
        let rows: [[V; N]; M] = std::array::from_fn(|i| columns.map(|column| column[i]));
        for (i, row) in rows.into_iter().enumerate() {
            for (j, value) in t(row).into_iter().enumerate() {
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
    /// The CPU has `isa`, whose lanes divide `cout`; 8 divides `cin`; `g.k` is 3 or 5; `u` is
    /// `[points][cin][cout]`, `v` and `m` hold `points * tiles` rows of `cin` and `cout`; `out`
    /// and `arg` the pooled outputs.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn image(
        isa: Isa,
        g: &Geometry,
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
            match (isa, g.k) {
                (Isa::Avx512, 3) => avx512::<F3, 3, 4>(g, padded, u, b, v, m, out, arg),
                (Isa::Avx512, _) => avx512::<F5, 5, 6>(g, padded, u, b, v, m, out, arg),
                (Isa::Avx2, 3) => avx2::<F3, 3, 4>(g, padded, u, b, v, m, out, arg),
                (Isa::Avx2, _) => avx2::<F5, 5, 6>(g, padded, u, b, v, m, out, arg),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<T: Algorithm<K, A>, const K: usize, const A: usize>(
        g: &Geometry,
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
            // Input channels come in multiples of 8, not always of 16.
            if g.cin.is_multiple_of(16) {
                transform_input::<__m512, T, K, A>(g, padded, v);
            } else {
                transform_input::<__m256, T, K, A>(g, padded, v);
            }
            match g.cout % 64 {
                0 => products::<__m512, 4>(g, A * A, v, u, m),
                32 => products::<__m512, 2>(g, A * A, v, u, m),
                _ => products::<__m512, 1>(g, A * A, v, u, m),
            }
            transform_output::<__m512, T, K, A>(g, m, b, out, arg);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<T: Algorithm<K, A>, const K: usize, const A: usize>(
        g: &Geometry,
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
            transform_input::<__m256, T, K, A>(g, padded, v);
            match g.cout % 16 {
                0 => products::<__m256, 2>(g, A * A, v, u, m),
                _ => products::<__m256, 1>(g, A * A, v, u, m),
            }
            transform_output::<__m256, T, K, A>(g, m, b, out, arg);
        }
    }

    /// Every tile's inputs to the transform domain: `v[p][tile][ci]`.
    #[inline(always)]
    unsafe fn transform_input<V: Vector, T: Algorithm<K, A>, const K: usize, const A: usize>(
        g: &Geometry,
        padded: &[f32],
        v: &mut [f32],
    ) {
        // SAFETY: the caller's contract: the CPU has `V`'s instruction set; every tile's inputs
        // lie inside the padded image (asserted by `forward_pooled`) and `v` holds them all.
        unsafe {
            let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
            let (tiles_x, tiles) = (cw / 2, (ch / 2) * (cw / 2));
            let (cin, wp) = (g.cin, g.w + 2 * g.pad);
            let (src, dst) = (padded.as_ptr(), v.as_mut_ptr());
            for tile in 0..tiles {
                let (y0, x0) = (2 * (tile / tiles_x), 2 * (tile % tiles_x));
                for c in (0..cin).step_by(V::LANES) {
                    let from = |y: usize, x: usize| src.add(((y0 + y) * wp + x0 + x) * cin + c);
                    let to = |i: usize, j: usize| dst.add(((i * A + j) * tiles + tile) * cin + c);
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
        points: usize,
        v: &[f32],
        u: &[f32],
        m: &mut [f32],
    ) {
        // SAFETY: the caller's contract: the CPU has `V`'s instruction set and the buffers hold
        // `points` products.
        unsafe {
            let (ch, cw) = g.out_hw().expect("geometry checked by the caller");
            let tiles = (ch / 2) * (cw / 2);
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
            let rows = v.as_ptr().add((p * tiles + t0) * cin);
            let u = u.as_ptr().add(p * cin * cout);
            let m = m.as_mut_ptr().add((p * tiles + t0) * cout);
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

    /// Every tile's products back to its 2x2 outputs, plus bias, then the pool: strict `>` in
    /// window order, so the first maximum wins (as `pool::forward_image`).
    #[inline(always)]
    unsafe fn transform_output<V: Vector, T: Algorithm<K, A>, const K: usize, const A: usize>(
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
            let (tiles_x, tiles) = (cw / 2, (ch / 2) * (cw / 2));
            let cout = g.cout;
            let src = m.as_ptr();
            for tile in 0..tiles {
                let (oy, ox) = (2 * (tile / tiles_x), 2 * (tile % tiles_x));
                for c in (0..cout).step_by(V::LANES) {
                    let at = |i: usize, j: usize| {
                        V::load(src.add(((i * A + j) * tiles + tile) * cout + c))
                    };
                    let mut y = [[V::zero(); 2]; 2];
                    separable(at, |m| T::output(m), |i, j, v| y[i][j] = v);
                    let o = tile * cout + c;
                    let (out, arg) = (out.as_mut_ptr().add(o), arg.as_mut_ptr().add(o));
                    let first = (oy * cw + ox) * cout + c;
                    pool_window(
                        y,
                        V::load(b.as_ptr().add(c)),
                        (first, cw * cout, cout),
                        out,
                        arg,
                    );
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
    /// tiles, 'same' and 'valid' padding) and on padded channel counts (Caffe's LeNet's 20 to
    /// 50, 18 to 6), on every instruction set the CPU has: values within the transforms'
    /// rounding, the same choices.
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
    /// shares sums of taps instead), for every tap, both kernel sizes and both instruction sets.
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
        check(&G5);
    }
}
