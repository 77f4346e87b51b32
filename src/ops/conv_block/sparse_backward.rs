//! The backward pass of a block on multi-channel input, over the pixels that won their pool
//! windows alone. Through a 2x2 max-pool only one convolution output in four gets a gradient
//! (fewer after the ReLU), so the im2col GEMMs spend three quarters of their work multiplying
//! zeros. Here each live window adds its gradient times the winning pixel's input patch to its
//! channel's weight gradient, and its gradient times that channel's weights to the input
//! gradient around the pixel. Both are runs of fused multiply-adds over `k * cin` contiguous
//! values, accumulated in registers.
//!
//! Sums run in an order fixed by the data layout (windows, then channels, then kernel rows), so
//! results do not depend on the thread count; they differ in rounding from the GEMM path's.

use super::buffers::{aligned_zeros, pad_image, pooled_len, DEAD};
use crate::ops::conv2d::cpu::{Geometry, Partial};
use crate::ops::isa::Isa;
use std::cell::RefCell;

/// A term of a sum: `weight * source[offset..]`, for one run of `k * cin` values.
type Term = (u32, f32);

/// Terms with the largest offset among them, so that a kernel call checks its loads against its
/// source once, not term by term (the check per term took a seventh of the kernel's time).
#[derive(Default)]
struct Terms {
    list: Vec<Term>,
    max_at: u32,
}

impl Terms {
    fn clear(&mut self) {
        self.list.clear();
        self.max_at = 0;
    }

    fn push(&mut self, term: Term) {
        self.max_at = self.max_at.max(term.0);
        self.list.push(term);
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Appends `other`'s terms.
    fn extend(&mut self, other: &Terms) {
        self.max_at = self.max_at.max(other.max_at);
        self.list.extend_from_slice(&other.list);
    }

    /// Terms `range` of the list, with a bound on their offsets.
    fn slice(&self, range: std::ops::Range<usize>) -> TermSlice<'_> {
        TermSlice {
            list: &self.list[range],
            max_at: self.max_at,
        }
    }

    fn all(&self) -> TermSlice<'_> {
        self.slice(0..self.list.len())
    }
}

/// Some of a [`Terms`] list; every offset is at most `max_at`.
#[derive(Clone, Copy)]
struct TermSlice<'a> {
    list: &'a [Term],
    max_at: u32,
}

#[derive(Default)]
struct Scratch {
    /// The current image with its zero border.
    padded: Vec<f32>,
    /// One image's input gradient, with the border, before it is cropped.
    grad_padded: Vec<f32>,
    /// Per output channel: its live windows' patches (offsets into `padded`) and gradients.
    by_channel: Vec<Terms>,
    /// Per corner of the current window: the channels it won (offsets into the weights) and
    /// their gradients.
    by_corner: [Terms; 4],
    /// Every winning pixel of the image: where its patch starts in `grad_padded`, and its
    /// channels' terms in `terms`.
    groups: Vec<(usize, std::ops::Range<usize>)>,
    terms: Terms,
}

/// Bytes of weights the input gradient's loop keeps in L1 at a time.
const L1_BUDGET: usize = 24 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The block's weights, copied once per backward pass onto a 64-byte boundary for the kernels.
pub struct Sparse {
    isa: Isa,
    /// The weights (`[cout][k][k][cin]`) start at the first 64-byte boundary of `buf`.
    buf: Vec<f32>,
    len: usize,
}

impl Sparse {
    /// `Some` where these kernels serve `g`: several input channels, in whole vector registers
    /// (8 with AVX2 and FMA, 16 with AVX-512); elsewhere the block uses the im2col GEMMs.
    pub fn new(g: &Geometry, w: &[f32]) -> Option<Self> {
        let isa = Isa::fitting(g.cin).next().filter(|_| g.cin > 1)?;
        assert_eq!(w.len(), g.cout * g.k * g.k * g.cin);
        let mut buf = Vec::new();
        aligned_zeros(&mut buf, w.len()).copy_from_slice(w);
        Some(Sparse {
            isa,
            buf,
            len: w.len(),
        })
    }

    fn weights(&self) -> &[f32] {
        let start = self.buf.as_ptr().align_offset(64);
        &self.buf[start..][..self.len]
    }

    /// Gradients of a run of whole images: adds the input's to `grad_x` (when given) and returns
    /// the weight and bias gradients. `argmax` and `grad` are the pool's choices (`DEAD` where
    /// the ReLU zeroed the output) and the gradient of the block's output.
    pub fn grads(
        &self,
        g: &Geometry,
        x: &[f32],
        argmax: &[u32],
        grad: &[f32],
        mut grad_x: Option<&mut [f32]>,
    ) -> Partial {
        let (isa, w) = (self.isa, self.weights());
        let cw = g.out_hw().expect("geometry checked by the caller").1;
        let (cin, cout, k) = (g.cin, g.cout, g.k);
        let (hp, wp) = (g.h + 2 * g.pad, g.w + 2 * g.pad);
        let (plen, run, patch) = (hp * wp * cin, k * cin, k * k * cin);
        let (images, pooled) = (x.len() / g.in_len(), pooled_len(g));
        assert_eq!(x.len(), images * g.in_len());
        assert_eq!(w.len(), cout * patch);
        assert_eq!(
            (argmax.len(), grad.len()),
            (images * pooled, images * pooled)
        );
        assert!(u32::try_from(plen).is_ok() && u32::try_from(w.len()).is_ok());
        if let Some(gx) = grad_x.as_deref() {
            assert_eq!(gx.len(), x.len());
        }
        assert!(isa.fits(cin), "a kernel this CPU cannot run");
        let mut gw = vec![0.0f32; w.len()];
        let mut gb = vec![0.0f32; cout];
        // Weights are read in slices of `part` values of each kernel row, for all channels at once,
        // sized to stay in L1 (48 KB here) next to the input gradient.
        let run_vectors = run / isa.lanes();
        let part_vectors = run_vectors
            .div_ceil(run_vectors.div_ceil((L1_BUDGET / (cout * 4 * isa.lanes())).max(1)));
        let part = part_vectors * isa.lanes();
        SCRATCH.with_borrow_mut(|s| {
            s.by_channel.resize_with(cout, Terms::default);
            let wants_x = grad_x.is_some();
            for (i, img) in x.chunks_exact(g.in_len()).enumerate() {
                let padded = &*pad_image(g, img, &mut s.padded);
                let (arg, gy) = (
                    &argmax[i * pooled..][..pooled],
                    &grad[i * pooled..][..pooled],
                );
                s.by_channel.iter_mut().for_each(Terms::clear);
                s.terms.clear();
                s.groups.clear();
                for (win, (arg, gy)) in arg
                    .chunks_exact(cout)
                    .zip(gy.chunks_exact(cout))
                    .enumerate()
                {
                    let (py, px) = (win / (cw / 2), win % (cw / 2));
                    s.by_corner.iter_mut().for_each(Terms::clear);
                    for (co, (&at, &d)) in arg.iter().zip(gy).enumerate() {
                        if at == DEAD {
                            continue;
                        }
                        let pixel = at as usize / cout;
                        let (oy, ox) = (pixel / cw, pixel % cw);
                        let (dy, dx) = (oy.wrapping_sub(2 * py), ox.wrapping_sub(2 * px));
                        assert!(
                            dy < 2 && dx < 2 && at as usize % cout == co,
                            "choice off its window"
                        );
                        s.by_channel[co].push((((oy * wp + ox) * cin) as u32, d));
                        s.by_corner[2 * dy + dx].push(((co * patch) as u32, d));
                        gb[co] += d;
                    }
                    if wants_x {
                        for (corner, terms) in s.by_corner.iter().enumerate() {
                            if !terms.is_empty() {
                                let (oy, ox) = (2 * py + corner / 2, 2 * px + corner % 2);
                                let first = s.terms.list.len();
                                s.terms.extend(terms);
                                s.groups
                                    .push(((oy * wp + ox) * cin, first..s.terms.list.len()));
                            }
                        }
                    }
                }
                // Each channel's weight gradient: its live windows' patches, row by kernel row.
                for (co, terms) in s.by_channel.iter().enumerate() {
                    for ky in 0..k {
                        let dst = &mut gw[co * patch + ky * run..][..run];
                        accumulate(isa, dst, terms.all(), &padded[ky * wp * cin..]);
                    }
                }
                let Some(gx) = grad_x.as_deref_mut() else {
                    continue;
                };
                // Each winning pixel's patch of the input gradient gets its channels' weights, one
                // slice of the kernel rows at a time.
                let grad_padded = aligned_zeros(&mut s.grad_padded, plen);
                for ky in 0..k {
                    for p0 in (0..run).step_by(part) {
                        let len = part.min(run - p0);
                        let src = &w[ky * run + p0..];
                        for (at, terms) in &s.groups {
                            let dst = &mut grad_padded[at + ky * wp * cin + p0..][..len];
                            accumulate(isa, dst, s.terms.slice(terms.clone()), src);
                        }
                    }
                }
                let gx = &mut gx[i * g.in_len()..][..g.in_len()];
                for (y, row) in gx.chunks_exact_mut(g.w * cin).enumerate() {
                    let src = &grad_padded[((y + g.pad) * wp + g.pad) * cin..][..row.len()];
                    row.iter_mut().zip(src).for_each(|(a, b)| *a += b);
                }
            }
        });
        (gw, gb)
    }
}

/// `dst += sum of weight * src[offset..][..dst.len()]` over `terms`, in order, with fused
/// multiply-adds. `dst.len()` must be a whole number of `isa`'s vectors.
fn accumulate(isa: Isa, dst: &mut [f32], terms: TermSlice, src: &[f32]) {
    let vectors = dst.len() / isa.lanes();
    assert_eq!(vectors * isa.lanes(), dst.len(), "a run of whole vectors");
    assert!(
        terms.list.is_empty() || terms.max_at as usize + dst.len() <= src.len(),
        "a term reads past its source"
    );
    let terms = terms.list;
    // SAFETY: `Sparse::grads`, the only caller, asserted that the CPU has `isa`; the
    // asserts above keep every load inside `src` and every store inside `dst`.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        simd::accumulate(isa, vectors, dst.as_mut_ptr(), terms, src.as_ptr())
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("`applies` is false off x86-64: {vectors} {terms:?} {src:?}")
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Isa, Term};
    use crate::ops::vector::Vector;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has `isa`; `dst` holds `vectors` of its vectors; for every term, `src + offset`
    /// holds as many.
    pub unsafe fn accumulate(
        isa: Isa,
        vectors: usize,
        dst: *mut f32,
        terms: &[Term],
        src: *const f32,
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            // Registers per pass: as many as divide the run, up to 12 (AVX2 has 16 in all).
            let r = (1..=vectors.min(12))
                .rev()
                .find(|r| vectors.is_multiple_of(*r))
                .unwrap_or(1);
            macro_rules! dispatch {
            ($($n:literal)+) => {
                match (isa, r) {
                    $((Isa::Avx512, $n) => avx512::<$n>(vectors, dst, terms, src),)+
                    $((Isa::Avx2, $n) => avx2::<$n>(vectors, dst, terms, src),)+
                    _ => unreachable!("r is at most 12"),
                }
            };
        }
            dispatch!(1 2 3 4 5 6 7 8 9 10 11 12)
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn avx512<const R: usize>(n: usize, dst: *mut f32, terms: &[Term], src: *const f32) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { passes::<__m512, R>(n, dst, terms, src) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2<const R: usize>(n: usize, dst: *mut f32, terms: &[Term], src: *const f32) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe { passes::<__m256, R>(n, dst, terms, src) }
    }

    /// The run in passes of `R` registers, each loaded once, updated by every term, stored once.
    #[inline(always)]
    unsafe fn passes<V: Vector, const R: usize>(
        vectors: usize,
        dst: *mut f32,
        terms: &[Term],
        src: *const f32,
    ) {
        // SAFETY: the caller upholds this function's contract (the `# Safety` of the public entry that
        // leads here): the CPU has the instruction set of `V` (or of this function's target features),
        // and every pointer offset below stays inside the buffers the entry was given.
        unsafe {
            for pass in (0..vectors).step_by(R) {
                let (dst, src) = (dst.add(pass * V::LANES), src.add(pass * V::LANES));
                let mut acc = [V::zero(); R];
                for (j, a) in acc.iter_mut().enumerate() {
                    *a = V::load(dst.add(j * V::LANES));
                }
                for &(at, weight) in terms {
                    let (weight, p) = (V::splat(weight), src.add(at as usize));
                    for (j, a) in acc.iter_mut().enumerate() {
                        *a = a.mul_add(weight, V::load(p.add(j * V::LANES)));
                    }
                }
                for (j, a) in acc.iter().enumerate() {
                    a.store(dst.add(j * V::LANES));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv2d::cpu::naive;
    use crate::ops::isa::test_values as val;

    /// All three gradients against the direct loops (in f64) on the routed gradient (each live
    /// window's gradient at its chosen input, zero elsewhere), for both kernel sizes, both
    /// paddings, odd sizes (the pool drops the last row and column) and channel counts that
    /// make runs of 1 to 20 registers.
    #[test]
    fn gradients_match_the_direct_loops() {
        let mut checked = 0;
        for (h, w, cin, cout) in [
            (14, 14, 32, 64),
            (7, 9, 16, 8),
            (6, 6, 8, 16),
            (5, 8, 48, 8),
        ] {
            for k in [3, 5] {
                for pad in [k / 2, 0] {
                    let g = Geometry {
                        batch: 3,
                        h,
                        w,
                        cin,
                        cout,
                        k,
                        pad,
                    };
                    let Some((ch, cw)) = g.out_hw() else { continue };
                    if ch < 2 || cw < 2 {
                        continue;
                    }
                    for isa in Isa::fitting(cin) {
                        check(isa, &g);
                        checked += 1;
                    }
                }
            }
        }
        if Isa::fitting(32).next().is_none() {
            eprintln!("no vector kernel on this CPU: nothing checked");
        } else {
            assert!(checked >= 12, "{checked} cases");
        }
    }

    fn check(isa: Isa, g: &Geometry) {
        let (x, w, b) = (
            val(g.batch * g.in_len(), 1),
            val(g.cout * g.k * g.k * g.cin, 2),
            val(g.cout, 3),
        );
        let pooled = pooled_len(g);
        let n = g.batch * pooled;
        let (out, mut arg) = super::super::testing::im2col_then_pool(g, &x, &w, &b);
        // The ReLU: about half the windows are dead.
        for (v, a) in out.iter().zip(arg.iter_mut()) {
            if *v <= 0.0 {
                *a = DEAD;
            }
        }
        assert!(
            arg.contains(&DEAD) && arg.iter().any(|&a| a != DEAD),
            "{g:?} {out:?}"
        );
        let grad = val(n, 4);
        let mut routed = vec![0.0; g.batch * g.out_len()];
        for ((r, a), gy) in routed
            .chunks_exact_mut(g.out_len())
            .zip(arg.chunks_exact(pooled))
            .zip(grad.chunks_exact(pooled))
        {
            for (&i, &v) in a.iter().zip(gy) {
                if i != DEAD {
                    r[i as usize] += v;
                }
            }
        }
        let (want_x, want_w, want_b) = naive::backward(g, &x, &w, &routed);
        // `grad_x` is accumulated into: start from ones.
        let mut got_x = vec![1.0f32; x.len()];
        let sparse = Sparse {
            isa,
            ..Sparse::new(g, &w).expect("this CPU has a kernel")
        };
        let (got_w, got_b) = sparse.grads(g, &x, &arg, &grad, Some(&mut got_x));
        let got_x: Vec<f32> = got_x.iter().map(|v| v - 1.0).collect();
        for (what, got, want) in [
            ("x", got_x, want_x),
            ("w", got_w, want_w),
            ("b", got_b, want_b),
        ] {
            let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-5 * scale,
                "{isa:?} {g:?} grad {what}: error {err}, scale {scale}"
            );
        }
        // Without the input gradient, the same parameter gradients, bit for bit.
        let (w2, b2) = sparse.grads(g, &x, &arg, &grad, None);
        let (got_w, got_b) = sparse.grads(g, &x, &arg, &grad, Some(&mut vec![0.0; x.len()]));
        assert_eq!((w2, b2), (got_w, got_b));
    }
}
