//! The first dense layer's two products over the nonzero inputs alone. Its input is data, and
//! MNIST's pixels are 81 % zeros: the dense kernels spend four fifths of their multiply-adds on
//! zeros. Here each product runs over lists of the nonzero inputs, vectorised across blocks of
//! [`BLOCK`] outputs, with the weights (forward) or the result (weight gradient) transposed per
//! block so that those outputs are contiguous.
//!
//! Same bits as the dense fixed-order kernels (`vendor/gemm-0.15-shim`): each output's sums
//! take the same terms in the same order, less the terms whose input is zero. Skipping such a
//! term cannot change a sum: a fused multiply-add of a finite value by zero adds a signed zero,
//! which leaves any sum as it is, except that `-0 + +0` is `+0`; and sums that start from `+0`
//! are not `-0` (an exact cancellation rounds to `+0`), short of a product below half the
//! smallest subnormal, which rounds to a signed zero (for MNIST's smallest pixel, a weight
//! below 2^-142). Where the skipped factor is not finite (`inf * 0` is NaN) the dense kernels
//! run instead. The chains run four at a time, the shorter ones padded with terms `-0 * +0`
//! ([`padding`]), which leave every sum as it is.
//! - Forward (`x Wᵀ`, the shim's dot-product form): lane `j` of an output chains the products
//!   at inputs `j, j + 16, ...` from zero, and the 16 lanes are summed in `Vector::sum`'s order.
//! - Weight gradient (`dW += gᵀ x`, the outer-product form): each element chains the products
//!   over the batch in order, from zero, then is added to `dW`.

use crate::ops::isa::Isa;
use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

/// Lanes of the forward's partial sums: the shim's dot-product form's (`gemm::dot::LANES`).
const LANES: usize = 16;
/// Outputs per parallel task, vectorised over: 4 AVX-512 or 8 AVX2 registers.
pub const BLOCK: usize = 64;
/// Up to this share of nonzero inputs the lists win (hidden 1024, batch 128, one thread:
/// see `docs/kernels.md`); above it the dense kernels run.
const MAX_DENSITY: f64 = 0.4;

/// A nonzero input: where its row of the other operand starts, and its value.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
struct Entry {
    at: u32,
    x: f32,
}

/// The instruction set the sparse kernels run on for `x` (`rows x ins`), or `None` where the
/// dense kernels should: no AVX2 path, an input width the shim's dot-product form does not
/// take, or too dense an input.
pub fn applies(x: &[f32], ins: usize) -> Option<Isa> {
    let isa = Isa::fitting(BLOCK).next()?;
    // Counted in parallel: an evaluation batch is 3 MB, 3 % of its time on one thread.
    let nonzero: usize = x
        .par_chunks(1 << 16)
        .map(|xs| xs.iter().filter(|&&v| v != 0.0).count())
        .sum();
    (ins.is_multiple_of(LANES) && (nonzero as f64) <= MAX_DENSITY * x.len() as f64).then_some(isa)
}

/// `y (rows x outs) = x (rows x ins) · wᵀ` for `w` `[outs][ins]`, in the dense forward's bits.
/// Returns false, with `y` in an unspecified state, where a weight is not finite.
pub fn forward(isa: Isa, x: &[f32], w: &[f32], (rows, ins, outs): Dims, y: &mut [f32]) -> bool {
    assert!(
        ins.is_multiple_of(LANES),
        "the dot-product form's inner dimension"
    );
    assert_eq!(
        (x.len(), w.len(), y.len()),
        (rows * ins, outs * ins, rows * outs)
    );
    // The batch in parts, one per thread where it is large enough (an evaluation's 1000 rows):
    // their lists are built side by side, and a task is a block of outputs for one part, so
    // 5 blocks (300 outputs) keep 2 threads busy. Which task computes an output does not change
    // its sums.
    let parts = rayon::current_num_threads()
        .min(rows.div_ceil(ROW_GROUP))
        .max(1);
    let part_rows = rows.div_ceil(parts);
    let lists: Vec<GroupedQuads> = x
        .par_chunks((part_rows * ins).max(1))
        .map(|xs| forward_lists(isa, xs, xs.len() / ins, ins))
        .collect();
    let y = Shared(y.as_mut_ptr());
    let tasks = outs.div_ceil(BLOCK) * lists.len();
    let finite = (0..tasks).into_par_iter().map(|task| {
        let (block, part) = (task / lists.len(), task % lists.len());
        let (lists, first_row) = (&lists[part], part * part_rows);
        let o0 = block * BLOCK;
        let width = BLOCK.min(outs - o0);
        with_scratch(|scratch| {
            let (wt, partial) = (&mut scratch.a, &mut scratch.b);
            let finite = transpose_block(&w[o0 * ins..][..width * ins], ins, wt);
            // A group's chains lane by lane, so that the lane's rows of `wt` (a sixteenth:
            // 12.5 KB for the reference) stay in L1 while every row of the group reads them.
            // Chain `j * group + r` (lane `j` of row `r0 + r`) sums into `partial[that *
            // BLOCK..]`: `[lane][row][BLOCK]`, then one spare run for the padding chains.
            let group_rows = ROW_GROUP.min(lists.rows);
            let partial = buffer(partial, (group_rows * LANES + 1) * BLOCK);
            let mut spare = [0.0f32; BLOCK];
            for (g, quads) in lists.groups.iter().enumerate() {
                let r0 = g * ROW_GROUP;
                let group = ROW_GROUP.min(lists.rows - r0);
                // SAFETY: the CPU has `isa` (`applies` chose it from `Isa::fitting`); every
                // entry's `at` is a row of `wt` (below `ins`, or `ins`: its zero row), `BLOCK`
                // values each.
                unsafe {
                    simd::quads(
                        isa,
                        &lists.quads.quads[quads.clone()],
                        &lists.quads.entries,
                        wt.as_ptr(),
                        partial,
                    )
                };
                for r in 0..group {
                    // A whole block's sums go to `y` itself; a narrower one's through `spare`.
                    // SAFETY: row `first_row + r0 + r` is one of `y`'s `rows`, `o0 < outs`.
                    let row = unsafe { y.at((first_row + r0 + r) * outs + o0) };
                    let out = if width == BLOCK {
                        row
                    } else {
                        spare.as_mut_ptr()
                    };
                    // SAFETY: the CPU has `isa`; row `r`'s 16 runs of `BLOCK` values lie
                    // `group * BLOCK` apart in `partial`; `out` holds `BLOCK` values: `spare`,
                    // or columns `o0..o0 + BLOCK` of the row, which only this task writes.
                    unsafe {
                        simd::lane_sums(isa, partial[r * BLOCK..].as_ptr(), group * BLOCK, out)
                    };
                    if width < BLOCK {
                        // SAFETY: tasks write disjoint columns `o0..o0 + width` of their rows.
                        unsafe { std::ptr::copy_nonoverlapping(spare.as_ptr(), row, width) };
                    }
                }
            }
            finite
        })
    });
    finite.reduce(|| true, |a, b| a && b)
}

/// `dw [outs][ins] += gᵀ x` for `g` `rows x outs` and `x` `rows x ins`, in the dense kernels'
/// bits. Returns false, leaving `dw` unchanged, where a gradient is not finite.
pub fn weight_grad(
    isa: Isa,
    x: &[f32],
    g: &[f32],
    (rows, ins, outs): Dims,
    dw: &mut [f32],
) -> bool {
    assert_eq!(
        (x.len(), g.len(), dw.len()),
        (rows * ins, rows * outs, outs * ins)
    );
    if !all_finite(g) {
        return false;
    }
    let columns = by_column(isa, x, rows, ins);
    dw.par_chunks_mut(BLOCK * ins)
        .enumerate()
        .for_each(|(block, dw)| {
            let width = dw.len() / ins;
            // The block's columns of `g`, contiguous (`[row][BLOCK]`, zero past `width`), then
            // a row of zeros (row `rows`, for [`padding`]): rows of `g` itself lie 4 KB apart,
            // and would share the same few sets of L1.
            with_scratch(|scratch| {
                let gb = buffer(&mut scratch.a, (rows + 1) * BLOCK);
                if width < BLOCK {
                    gb.fill(0.0);
                } else {
                    gb[rows * BLOCK..].fill(0.0);
                }
                for (dst, src) in gb.chunks_exact_mut(BLOCK).zip(g.chunks_exact(outs)) {
                    dst[..width].copy_from_slice(&src[block * BLOCK..][..width]);
                }
                // `t[p][o]`: the sums of the block's outputs, input by input, then a spare run.
                let t = buffer(&mut scratch.b, (ins + 1) * BLOCK);
                // SAFETY: the CPU has `isa`; each entry's `at` is a row of `gb` (below `rows`,
                // or `rows`: its zero row), `BLOCK` values each.
                unsafe { simd::quads(isa, &columns.quads, &columns.entries, gb.as_ptr(), t) };
                add_transposed(&t[..ins * BLOCK], dw, width, ins);
            })
        });
    true
}

/// Rows of the batch whose partial sums a forward task keeps at once (512 KB per block).
const ROW_GROUP: usize = 128;

/// `(rows, ins, outs)`: the batch, the layer's inputs and its outputs.
pub type Dims = (usize, usize, usize);

/// Chains four at a time: quad `q`'s chain `c` has its entry `k` at `entries[q.start + 4 * k +
/// c]`, `q.len` entries each, the shorter chains padded to the longest with [`padding`]
/// entries; its sums go to run `q.dst[c]` of the destination. Four chains keep 16 vectors of
/// multiply-adds in flight (AVX-512), and one loop whose length is the quad's replaces each
/// chain's mispredicted end and lone tail: chains run two at a time to their ends took 6.3
/// cycles an entry of 4 vectors on an Intel Xeon, for 2 at the CPU's rate. Sorted, MNIST's
/// chains pad 2 % more entries.
#[derive(Default)]
struct Quads {
    entries: Vec<Entry>,
    quads: Vec<Quad>,
}

#[derive(Clone, Copy, Debug)]
struct Quad {
    start: u32,
    len: u32,
    dst: [u32; 4],
}

/// The entry that pads a chain: `-0 * +0` is `-0`, and `s + -0` is `s` for every `s`, `±0`
/// included, so a padded chain's sums are the unpadded chain's bits. `zero_row` is a row of
/// the other operand that holds `+0`s.
fn padding(zero_row: usize) -> Entry {
    Entry {
        at: zero_row as u32,
        x: -0.0,
    }
}

impl Quads {
    /// Room for chains `lens` (their lengths) as quads, longest first, so that the four chains
    /// of a quad are about as long and little is padded: chain `i` sums into run `dst + i`, the
    /// missing chains of a last, short quad into run `spare`. The new entries are all `pad`;
    /// chain `i`'s entry `k` goes to `first[i] + 4 * k`.
    fn push(
        &mut self,
        lens: &[usize],
        (dst, spare): (usize, usize),
        pad: Entry,
        first: &mut [usize],
    ) {
        // A counting sort, longest first (lengths are at most a lane's inputs or the batch).
        let longest = lens.iter().copied().max().unwrap_or(0);
        let mut at = vec![0usize; longest + 2];
        for &len in lens {
            at[longest - len + 1] += 1;
        }
        for l in 0..=longest {
            at[l + 1] += at[l];
        }
        let mut order = vec![0usize; lens.len()];
        for (chain, &len) in lens.iter().enumerate() {
            let slot = &mut at[longest - len];
            order[*slot] = chain;
            *slot += 1;
        }
        for four in order.chunks(4) {
            let (start, steps) = (self.entries.len(), lens[four[0]]);
            self.entries.resize(start + 4 * steps, pad);
            let mut runs = [spare as u32; 4];
            for (c, &chain) in four.iter().enumerate() {
                runs[c] = (dst + chain) as u32;
                first[chain] = start + c;
            }
            self.quads.push(Quad {
                start: start as u32,
                len: steps as u32,
                dst: runs,
            });
        }
    }
}

/// Quads of a forward's chains, group by group: `groups[g]` are the quads of the rows from `g *`
/// [`ROW_GROUP`].
struct GroupedQuads {
    quads: Quads,
    groups: Vec<std::ops::Range<usize>>,
    rows: usize,
}

/// The forward's chains in quads, per group of [`ROW_GROUP`] rows and lane: lane `j` of the
/// group's row `r` chains the row's nonzero inputs at `j, j + 16, ...` in order (`at`: the
/// input's row in [`transpose_block`]'s order, [`lane_major`]) and sums into run `j * group +
/// r`; padding chains into run `group * 16`, padding entries read `wt`'s zero row `ins`.
///
/// In two passes per group: each row's nonzero inputs in order (vector compresses where the
/// CPU has AVX-512), then, once the quads are laid out by the chains' lengths, each of them
/// dealt to its lane's chain. Picking each lane's inputs out of the row one by one cost twice
/// as much (0.56 ms for 1000 MNIST images on one thread, and 0.3 ms more to lay them out).
fn forward_lists(isa: Isa, x: &[f32], rows: usize, ins: usize) -> GroupedQuads {
    let mut quads = Quads {
        entries: Vec::with_capacity(x.len() / 4),
        quads: Vec::with_capacity(rows * LANES / 4 + LANES),
    };
    let (mut groups, mut lists) = (Vec::new(), RowLists::default());
    for r0 in (0..rows).step_by(ROW_GROUP) {
        let group = ROW_GROUP.min(rows - r0);
        lists.fill(isa, &x[r0 * ins..][..group * ins], ins);
        // `lens[j * group + r]`: the length of lane `j`'s chain for row `r`.
        let mut lens = vec![0usize; group * LANES];
        for r in 0..group {
            for (p, _) in lists.row(r) {
                lens[(p as usize % LANES) * group + r] += 1;
            }
        }
        let first_quad = quads.quads.len();
        let mut first = vec![0usize; group * LANES];
        for lane in 0..LANES {
            let chains = lane * group..(lane + 1) * group;
            quads.push(
                &lens[chains.clone()],
                (lane * group, group * LANES),
                padding(ins),
                &mut first[chains],
            );
        }
        groups.push(first_quad..quads.quads.len());
        for r in 0..group {
            let mut next: [usize; LANES] = std::array::from_fn(|j| first[j * group + r]);
            for (p, x) in lists.row(r) {
                let at = &mut next[p as usize % LANES];
                quads.entries[*at] = Entry {
                    at: lane_major(p as usize, ins) as u32,
                    x,
                };
                *at += 4;
            }
        }
    }
    GroupedQuads {
        quads,
        groups,
        rows,
    }
}

/// Each row's nonzero inputs in order, with their values: row `r`'s end at `ends[r]`.
#[derive(Default)]
struct RowLists {
    inputs: Vec<u32>,
    values: Vec<f32>,
    ends: Vec<usize>,
}

impl RowLists {
    /// The lists of `x`'s rows of `ins` (whole vectors) in place of the current ones.
    fn fill(&mut self, isa: Isa, x: &[f32], ins: usize) {
        assert!(ins.is_multiple_of(LANES), "whole vectors");
        let RowLists {
            inputs,
            values,
            ends,
        } = self;
        inputs.clear();
        values.clear();
        ends.clear();
        inputs.reserve(x.len());
        values.reserve(x.len());
        for row in x.chunks_exact(ins) {
            let len = inputs.len();
            // SAFETY: the CPU has `isa` (`applies` chose it); both vectors have `row.len()`
            // values of room past `len` (`x.len()` reserved, `len` of them used by the rows
            // before); the kernel writes within it and returns how many of those values it
            // wrote, in order.
            unsafe {
                let n = simd::compress(
                    isa,
                    row,
                    inputs.as_mut_ptr().add(len),
                    values.as_mut_ptr().add(len),
                );
                inputs.set_len(len + n);
                values.set_len(len + n);
            }
            ends.push(inputs.len());
        }
    }

    /// Row `r`'s nonzero inputs and their values, in order.
    fn row(&self, r: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let from = if r == 0 { 0 } else { self.ends[r - 1] };
        let to = self.ends[r];
        self.inputs[from..to]
            .iter()
            .copied()
            .zip(self.values[from..to].iter().copied())
    }
}

/// The weight gradient's chains in quads: input `p`'s nonzero values down the batch in order
/// (`at`: the row) sum into run `p`; padding chains into run `ins`, and padding entries read
/// `gb`'s zero row `rows`.
fn by_column(isa: Isa, x: &[f32], rows: usize, ins: usize) -> Quads {
    let mut lists = RowLists::default();
    lists.fill(isa, x, ins);
    let mut lens = vec![0usize; ins];
    for &p in &lists.inputs {
        lens[p as usize] += 1;
    }
    let mut quads = Quads::default();
    let mut next = vec![0usize; ins];
    quads.push(&lens, (0, ins), padding(rows), &mut next);
    for r in 0..rows {
        for (p, x) in lists.row(r) {
            let at = &mut next[p as usize];
            quads.entries[*at] = Entry { at: r as u32, x };
            *at += 4;
        }
    }
    quads
}

/// A task's buffers, kept from call to call: zeroing fresh ones cost more than the kernels
/// (the forward's partial sums are 8 MB a call for the reference's first layer).
#[derive(Default)]
struct Scratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// `f` on this thread's value of `key` (a fresh one if it is in use further up the stack).
fn with_local<T: Default, R>(key: &'static LocalKey<RefCell<T>>, f: impl FnOnce(&mut T) -> R) -> R {
    key.with(|v| match v.try_borrow_mut() {
        Ok(mut v) => f(&mut v),
        Err(_) => f(&mut T::default()),
    })
}

/// `f` on this thread's [`Scratch`].
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    with_local(&SCRATCH, f)
}

/// The first `len` values of `v`, grown (with zeros) as needed; their values are stale.
fn buffer(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Where input `p`'s row goes in a transposed block: lane by lane (`p % 16`), so that a lane's
/// rows are contiguous.
fn lane_major(p: usize, ins: usize) -> usize {
    (p % LANES) * (ins / LANES) + p / LANES
}

/// A block of weight rows (`width <= BLOCK` rows of `ins`) as `[ins][BLOCK]` with its rows in
/// [`lane_major`] order, zero past `width`, then a row of zeros (row `ins`, for [`padding`]),
/// into `wt`; whether every weight is finite.
fn transpose_block(w: &[f32], ins: usize, wt: &mut Vec<f32>) -> bool {
    let width = w.len() / ins;
    let wt = buffer(wt, (ins + 1) * BLOCK);
    if width < BLOCK {
        wt.fill(0.0);
    } else {
        wt[ins * BLOCK..].fill(0.0);
    }
    let whole = width - width % 8;
    // Consecutive inputs of a tile of 8 go to rows `ins / 16` apart (see `lane_major`).
    let step = ins / LANES * BLOCK;
    // SAFETY: the CPU has AVX2 (`applies` chose one of the two paths); rows `o0..o0 + 8` of `w` hold
    // inputs `p0..p0 + 8` (`ins` is a multiple of 16, `o0 + 8 <= width`); `wt` holds rows
    // `lane_major(p0 + i)` (`lane_major(p0) + i * step / BLOCK`) to column `o0 + 8`.
    unsafe {
        simd::transpose_tiles::<false>(
            (ins, whole),
            (w.as_ptr(), ins, |p0, o0| o0 * ins + p0),
            (wt.as_mut_ptr(), step, |p0, o0| {
                lane_major(p0, ins) * BLOCK + o0
            }),
        )
    };
    for p0 in (0..ins).step_by(8) {
        let base = lane_major(p0, ins) * BLOCK;
        for o in whole..width {
            for i in 0..8 {
                wt[base + i * step + o] = w[o * ins + p0 + i];
            }
        }
    }
    all_finite(w)
}

/// Whether no value is infinite or NaN, in a loop the compiler vectorises.
fn all_finite(v: &[f32]) -> bool {
    v.iter()
        .map(|x| x.to_bits() & 0x7fff_ffff)
        .max()
        .unwrap_or(0)
        < 0x7f80_0000
}

/// `dw[o][p] += t[p][o]` for the block's `width` outputs, by 8x8 transposes.
fn add_transposed(t: &[f32], dw: &mut [f32], width: usize, ins: usize) {
    assert!(ins.is_multiple_of(8) && t.len() == ins * BLOCK && dw.len() == width * ins);
    let whole = width - width % 8;
    // SAFETY: the CPU has AVX2 (`applies` chose one of the two paths); `t` holds rows `p0..p0 + 8` of
    // `BLOCK`, `dw` rows `o0..o0 + 8` of `ins` (asserted above, `o0 + 8 <= width`).
    unsafe {
        simd::transpose_tiles::<true>(
            (ins, whole),
            (t.as_ptr(), BLOCK, |p0, o0| p0 * BLOCK + o0),
            (dw.as_mut_ptr(), ins, |p0, o0| o0 * ins + p0),
        )
    };
    for p0 in (0..ins).step_by(8) {
        for o in whole..width {
            for i in 0..8 {
                dw[o * ins + p0 + i] += t[(p0 + i) * BLOCK + o];
            }
        }
    }
}

/// `y`'s pointer, shared by the tasks that write its disjoint parts.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: `forward`'s tasks write disjoint columns of `y` through it.
unsafe impl Send for Shared {}
// SAFETY: as for `Send`: no two tasks write the same value.
unsafe impl Sync for Shared {}

impl Shared {
    /// # Safety
    /// `at` is inside the slice the pointer came from.
    unsafe fn at(self, at: usize) -> *mut f32 {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(at) }
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Entry, Isa, Quad, BLOCK};
    use crate::ops::vector::Vector;
    use std::arch::x86_64::*;

    /// For each quad `q`, chain `c`: `dst[q.dst[c] * BLOCK + o] = Σ x * src[e.at * BLOCK + o]`
    /// over the chain's entries `e` in order, from zero, for `BLOCK` outputs `o` (see
    /// [`Quads`](super::Quads)).
    ///
    /// # Safety
    /// The CPU has `isa`; for each entry, `src + at * BLOCK` holds `BLOCK` values (entries and
    /// destinations are checked by slicing).
    pub unsafe fn quads(
        isa: Isa,
        quads: &[Quad],
        entries: &[Entry],
        src: *const f32,
        dst: &mut [f32],
    ) {
        // SAFETY: this function's contract.
        unsafe {
            match isa {
                // 4 chains of 4 vectors: 16 accumulators of 32 registers.
                Isa::Avx512 => quads512(quads, entries, src, dst),
                // 1 chain of 8 vectors at a time: 8 of 16.
                Isa::Avx2 => quads256(quads, entries, src, dst),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn quads512(quads: &[Quad], entries: &[Entry], src: *const f32, dst: &mut [f32]) {
        // SAFETY: `quads`' contract; the CPU has AVX-512F.
        unsafe { quads_with::<__m512, 4, 4>(quads, entries, src, dst) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn quads256(quads: &[Quad], entries: &[Entry], src: *const f32, dst: &mut [f32]) {
        // SAFETY: `quads`' contract; the CPU has AVX2 and FMA.
        unsafe { quads_with::<__m256, 1, 8>(quads, entries, src, dst) }
    }

    /// `C` chains of a quad by `W` vectors of the block at a time.
    #[inline(always)]
    unsafe fn quads_with<V: Vector, const C: usize, const W: usize>(
        quads: &[Quad],
        entries: &[Entry],
        src: *const f32,
        dst: &mut [f32],
    ) {
        // SAFETY: `quads`' contract: every load is inside an entry's row of `src`; stores go
        // to `dst[at..at + BLOCK]`, checked.
        unsafe {
            for q in quads {
                let steps = &entries[q.start as usize..][..4 * q.len as usize];
                for c0 in (0..4).step_by(C) {
                    for v0 in (0..BLOCK).step_by(W * V::LANES) {
                        let mut acc = [[V::zero(); W]; C];
                        for step in steps.chunks_exact(4) {
                            for (c, acc) in acc.iter_mut().enumerate() {
                                let e = step[c0 + c];
                                let x = V::splat(e.x);
                                let row = src.add(e.at as usize * BLOCK + v0);
                                for (v, acc) in acc.iter_mut().enumerate() {
                                    *acc = acc.mul_add(x, V::load(row.add(v * V::LANES)));
                                }
                            }
                        }
                        for (c, acc) in acc.iter().enumerate() {
                            let at = q.dst[c0 + c] as usize * BLOCK + v0;
                            let out = dst[at..at + W * V::LANES].as_mut_ptr();
                            for (v, acc) in acc.iter().enumerate() {
                                acc.store(out.add(v * V::LANES));
                            }
                        }
                    }
                }
            }
        }
    }

    /// [`RowLists::fill`](super::RowLists::fill)'s kernel: per vector of the row, its nonzero values and
    /// their indices moved to the front and stored whole, the count advanced by how many.
    /// Stores start at the count, never past the vector's own place: within the row's length.
    ///
    /// # Safety
    /// The CPU has `isa`; the row is whole vectors of 16; `inputs` and `values` have room for
    /// `row.len()` values.
    pub unsafe fn compress(isa: Isa, row: &[f32], inputs: *mut u32, values: *mut f32) -> usize {
        // SAFETY: this function's contract.
        unsafe {
            match isa {
                Isa::Avx512 => compress512(row, inputs, values),
                Isa::Avx2 => compress256(row, inputs, values),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn compress512(row: &[f32], inputs: *mut u32, values: *mut f32) -> usize {
        let mut index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let mut n = 0;
        for p0 in (0..row.len()).step_by(16) {
            // SAFETY: `n <= p0` and `p0 + 16 <= row.len()`: within the row and the caller's
            // room.
            unsafe {
                let v = _mm512_loadu_ps(row.as_ptr().add(p0));
                // Not equal, unordered: NaN is kept, as `x != 0.0` keeps it.
                let keep = _mm512_cmpneq_ps_mask(v, _mm512_setzero_ps());
                _mm512_storeu_ps(values.add(n), _mm512_maskz_compress_ps(keep, v));
                let at = _mm512_maskz_compress_epi32(keep, index);
                _mm512_storeu_si512(inputs.add(n).cast(), at);
                n += keep.count_ones() as usize;
            }
            index = _mm512_add_epi32(index, _mm512_set1_epi32(16));
        }
        n
    }

    /// For each 8-bit mask, the indices of its set bits in order: AVX2 has no compress, so a
    /// permutation from this table moves the kept values to the front.
    static FRONT: [[u32; 8]; 256] = {
        let mut table = [[0u32; 8]; 256];
        let mut mask = 0;
        while mask < 256 {
            let (mut bit, mut n) = (0, 0);
            while bit < 8 {
                if mask & (1 << bit) != 0 {
                    table[mask][n] = bit as u32;
                    n += 1;
                }
                bit += 1;
            }
            mask += 1;
        }
        table
    };

    #[target_feature(enable = "avx2")]
    unsafe fn compress256(row: &[f32], inputs: *mut u32, values: *mut f32) -> usize {
        let mut index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut n = 0;
        for p0 in (0..row.len()).step_by(8) {
            // SAFETY: `n <= p0` and `p0 + 8 <= row.len()`: within the row and the caller's
            // room; the table's rows are 8 values.
            unsafe {
                let v = _mm256_loadu_ps(row.as_ptr().add(p0));
                // Not equal, unordered: NaN is kept, as `x != 0.0` keeps it.
                let keep = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NEQ_UQ>(v, _mm256_setzero_ps()));
                let front = _mm256_loadu_si256(FRONT[keep as usize].as_ptr().cast());
                _mm256_storeu_ps(values.add(n), _mm256_permutevar8x32_ps(v, front));
                let at = _mm256_permutevar8x32_epi32(index, front);
                _mm256_storeu_si256(inputs.add(n).cast(), at);
                n += keep.count_ones() as usize;
            }
            index = _mm256_add_epi32(index, _mm256_set1_epi32(8));
        }
        n
    }

    /// For every tile origin `(p0, o0)` (`p0` below `ins`, `o0` below `whole`, steps of 8): the
    /// 8x8 tile at `src + src_at(p0, o0)` (rows `src_rs` apart), transposed, written (or with
    /// `ADD`, added) to the tile at `dst + dst_at(p0, o0)` (rows `dst_rs` apart). AVX registers
    /// on both paths (AVX-512 CPUs have AVX2); data movement only, but for `ADD`.
    ///
    /// # Safety
    /// The CPU has AVX2; every tile is inside its allocation; `src` and `dst` do not overlap.
    #[target_feature(enable = "avx2")]
    pub unsafe fn transpose_tiles<const ADD: bool>(
        (ins, whole): (usize, usize),
        (src, src_rs, src_at): (*const f32, usize, impl Fn(usize, usize) -> usize),
        (dst, dst_rs, dst_at): (*mut f32, usize, impl Fn(usize, usize) -> usize),
    ) {
        for p0 in (0..ins).step_by(8) {
            for o0 in (0..whole).step_by(8) {
                // SAFETY: this function's contract.
                unsafe {
                    transpose8::<ADD>(
                        src.add(src_at(p0, o0)),
                        src_rs,
                        dst.add(dst_at(p0, o0)),
                        dst_rs,
                    )
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn transpose8<const ADD: bool>(
        src: *const f32,
        src_rs: usize,
        dst: *mut f32,
        dst_rs: usize,
    ) {
        // SAFETY: `transpose_tiles`' contract: eight rows of eight values at each end.
        unsafe {
            let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * src_rs)));
            let lo = |a, b| _mm256_unpacklo_ps(a, b);
            let hi = |a, b| _mm256_unpackhi_ps(a, b);
            let t = [
                lo(r[0], r[1]),
                hi(r[0], r[1]),
                lo(r[2], r[3]),
                hi(r[2], r[3]),
                lo(r[4], r[5]),
                hi(r[4], r[5]),
                lo(r[6], r[7]),
                hi(r[6], r[7]),
            ];
            let u = [
                _mm256_shuffle_ps::<0x44>(t[0], t[2]),
                _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
                _mm256_shuffle_ps::<0x44>(t[1], t[3]),
                _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
                _mm256_shuffle_ps::<0x44>(t[4], t[6]),
                _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
                _mm256_shuffle_ps::<0x44>(t[5], t[7]),
                _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
            ];
            for i in 0..4 {
                let (a, b) = (
                    _mm256_permute2f128_ps::<0x20>(u[i], u[i + 4]),
                    _mm256_permute2f128_ps::<0x31>(u[i], u[i + 4]),
                );
                for (row, v) in [(i, a), (i + 4, b)] {
                    let d = dst.add(row * dst_rs);
                    let v = if ADD {
                        _mm256_add_ps(_mm256_loadu_ps(d), v)
                    } else {
                        v
                    };
                    _mm256_storeu_ps(d, v);
                }
            }
        }
    }

    /// `out[o]` = the 16 lanes `lanes[j * stride + o]` summed as `Vector::sum` sums a
    /// register's: lanes `j` and `j + 8`, then those sums `i` and `i + 4`, then `0 + 2` and
    /// `1 + 3`, then the last two.
    ///
    /// # Safety
    /// The CPU has `isa`; `lanes + j * stride` holds `BLOCK` values for each `j < 16`, `out`
    /// `BLOCK`.
    pub unsafe fn lane_sums(isa: Isa, lanes: *const f32, stride: usize, out: *mut f32) {
        // SAFETY: this function's contract.
        unsafe {
            match isa {
                Isa::Avx512 => lane_sums512(lanes, stride, out),
                Isa::Avx2 => lane_sums256(lanes, stride, out),
            }
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn lane_sums512(lanes: *const f32, stride: usize, out: *mut f32) {
        // SAFETY: `lane_sums`' contract; the CPU has AVX-512F.
        unsafe { lane_sums_with::<__m512>(lanes, stride, out) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn lane_sums256(lanes: *const f32, stride: usize, out: *mut f32) {
        // SAFETY: `lane_sums`' contract; the CPU has AVX2.
        unsafe { lane_sums_with::<__m256>(lanes, stride, out) }
    }

    #[inline(always)]
    unsafe fn lane_sums_with<V: Vector>(lanes: *const f32, stride: usize, out: *mut f32) {
        // SAFETY: `lane_sums`' contract.
        unsafe {
            for o in (0..BLOCK).step_by(V::LANES) {
                let l = |j: usize| V::load(lanes.add(j * stride + o));
                let s: [V; 8] = std::array::from_fn(|i| l(i).add(l(i + 8)));
                let h: [V; 4] = std::array::from_fn(|i| s[i].add(s[i + 4]));
                h[0].add(h[2]).add(h[1].add(h[3])).store(out.add(o));
            }
        }
    }
}

/// Off x86-64 `applies` is always `None`: nothing calls these.
#[cfg(not(target_arch = "x86_64"))]
mod simd {
    use super::{Entry, Isa, Quad};

    pub unsafe fn quads(_: Isa, _: &[Quad], _: &[Entry], _: *const f32, _: &mut [f32]) {
        unreachable!("no vector instruction set off x86-64")
    }

    pub unsafe fn compress(_: Isa, _: &[f32], _: *mut u32, _: *mut f32) -> usize {
        unreachable!("no vector instruction set off x86-64")
    }

    pub unsafe fn lane_sums(_: Isa, _: *const f32, _: usize, _: *mut f32) {
        unreachable!("no vector instruction set off x86-64")
    }

    pub unsafe fn transpose_tiles<const ADD: bool>(
        _: (usize, usize),
        _: (*const f32, usize, impl Fn(usize, usize) -> usize),
        _: (*mut f32, usize, impl Fn(usize, usize) -> usize),
    ) {
        unreachable!("no vector instruction set off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gemm::{matmul, View};
    use crate::ops::isa::test_values;

    /// Every path this CPU can run, whatever `RUNNER_ISA` says (the dense kernels give the same
    /// bits on both, so either is the reference).
    fn paths() -> Vec<Isa> {
        use gemm::isa::Isa as Path;
        Path::available()
            .into_iter()
            .map(|path| match path {
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => Isa::Avx512,
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => Isa::Avx2,
            })
            .collect()
    }

    /// Inputs with about `percent` % nonzeros (positive and negative), row 1 all zeros.
    fn sparse_input(rows: usize, ins: usize, percent: u64, seed: u64) -> Vec<f32> {
        let mut x = test_values(rows * ins, seed);
        for (i, v) in x.iter_mut().enumerate() {
            let h = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            if h % 100 >= percent || i / ins.max(1) == 1 {
                *v = 0.0;
            }
        }
        x
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Both products bit for bit those of the dense fixed-order kernels, on every path, at
    /// widths that are and are not whole blocks (and not whole tiles of 8), one row, more rows
    /// than a row group, and the reference's input width; and within rounding of f64 sums.
    #[test]
    fn products_match_the_dense_kernels_bit_for_bit_on_every_path() {
        let paths = paths();
        if paths.is_empty() {
            eprintln!("no AVX2 or AVX-512 on this CPU: the sparse kernels never run");
            return;
        }
        for (rows, ins, outs) in [
            (50, 784, 200),
            (130, 48, 70),
            (257, 32, 70),
            (1, 16, 64),
            (3, 32, 9),
        ] {
            let x = sparse_input(rows, ins, 20, rows as u64);
            let w = test_values(outs * ins, 7);
            let g = test_values(rows * outs, 11);
            let dw0 = test_values(outs * ins, 13);
            let mut y_dense = vec![0.0; rows * outs];
            matmul(
                View::rows(&x, rows, ins),
                View::transposed(&w, ins, outs),
                &mut y_dense,
                false,
            );
            let mut dw_dense = dw0.clone();
            matmul(
                View::transposed(&g, outs, rows),
                View::rows(&x, rows, ins),
                &mut dw_dense,
                true,
            );
            for r in 0..rows {
                for o in 0..outs {
                    let want: f64 = (0..ins)
                        .map(|p| x[r * ins + p] as f64 * w[o * ins + p] as f64)
                        .sum();
                    assert!((y_dense[r * outs + o] as f64 - want).abs() < 1e-4);
                }
            }
            for &isa in &paths {
                let case = format!("{isa:?} rows {rows} ins {ins} outs {outs}");
                let mut y = vec![f32::NAN; rows * outs];
                assert!(forward(isa, &x, &w, (rows, ins, outs), &mut y), "{case}");
                assert_eq!(bits(&y), bits(&y_dense), "forward, {case}");
                let mut dw = dw0.clone();
                assert!(
                    weight_grad(isa, &x, &g, (rows, ins, outs), &mut dw),
                    "{case}"
                );
                assert_eq!(bits(&dw), bits(&dw_dense), "weight gradient, {case}");
                let (o, p) = (outs - 1, ins / 2);
                let want = dw0[o * ins + p] as f64
                    + (0..rows)
                        .map(|b| g[b * outs + o] as f64 * x[b * ins + p] as f64)
                        .sum::<f64>();
                assert!((dw[o * ins + p] as f64 - want).abs() < 1e-4, "{case}");
            }
        }
    }

    /// A weight or gradient that is not finite where the input is zero would turn the dense
    /// sums into NaN: the sparse kernels decline, and leave the gradient as it was.
    #[test]
    fn non_finite_factors_send_the_products_to_the_dense_kernels() {
        let (rows, ins, outs) = (4, 32, 10);
        let x = sparse_input(rows, ins, 20, 3);
        for &isa in &paths() {
            let mut w = test_values(outs * ins, 5);
            w[3 * ins + 7] = f32::INFINITY;
            assert!(!forward(
                isa,
                &x,
                &w,
                (rows, ins, outs),
                &mut vec![0.0; rows * outs]
            ));
            let mut g = test_values(rows * outs, 6);
            g[5] = f32::NAN;
            let mut dw = test_values(outs * ins, 8);
            let before = dw.clone();
            assert!(!weight_grad(isa, &x, &g, (rows, ins, outs), &mut dw));
            assert_eq!(bits(&dw), bits(&before));
        }
    }

    /// The kernels take sparse inputs of whole 16-lane widths only.
    #[test]
    fn applies_only_to_sparse_inputs_of_whole_lane_widths() {
        if paths().is_empty() {
            return;
        }
        assert!(applies(&sparse_input(8, 48, 20, 1), 48).is_some());
        assert!(
            applies(&sparse_input(8, 40, 20, 1), 40).is_none(),
            "40 inputs"
        );
        assert!(
            applies(&test_values(8 * 48, 1), 48).is_none(),
            "dense input"
        );
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release --lib first_dense::sparse::timing -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn forward_on_a_test_batch() {
        let data = crate::data::Dataset::load(&crate::data::mnist::Source::for_config(
            &Default::default(),
        ))
        .unwrap();
        let (rows, ins, outs) = (1000, 784, 512);
        let mut x = vec![0.0; rows * ins];
        for (i, c) in x.chunks_exact_mut(ins).enumerate() {
            data.test.write_image(i, c);
        }
        let w = crate::ops::isa::test_values(outs * ins, 3);
        let mut y = vec![0.0; rows * outs];
        let isa = applies(&x, ins).unwrap();
        // The fastest and the median of 31 calls.
        let timed = |f: &mut dyn FnMut()| {
            let mut ms: Vec<f64> = (0..31)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            (ms[0], ms[15])
        };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (forward, lists) = pool.install(|| {
                (
                    timed(&mut || {
                        forward(isa, &x, &w, (rows, ins, outs), &mut y);
                    }),
                    timed(&mut || {
                        std::hint::black_box(forward_lists(isa, &x, rows, ins));
                    }),
                )
            });
            eprintln!(
                "{isa:?}, {threads} threads: forward {:.3} ms per 1000 images, fastest {:.3} (lists alone: {:.3}, fastest {:.3})",
                forward.1, forward.0, lists.1, lists.0
            );
            // A training step's weight gradient: 64 images, 512 outputs.
            let batch = 64;
            let g = crate::ops::isa::test_values(batch * outs, 5);
            let mut dw = vec![0.0; outs * ins];
            let grad = pool.install(|| {
                timed(&mut || {
                    weight_grad(isa, &x[..batch * ins], &g, (batch, ins, outs), &mut dw);
                })
            });
            eprintln!(
                "{isa:?}, {threads} threads: weight gradient {:.1} us per 64 images, fastest {:.1}",
                grad.1 * 1e3,
                grad.0 * 1e3
            );
        }
    }
}
