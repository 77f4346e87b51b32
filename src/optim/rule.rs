//! What an optimizer is to the rest of the house: an elementwise [`Rule`] on plain slices, one
//! file per optimizer (`adam.rs`, `sgd.rs`, ...), and [`update`], the one parallel driver that
//! applies any rule. Rules follow dfdx 0.13's CPU kernels operation for operation where dfdx has
//! the optimizer (same f32 constants, same order), so results are bit-identical to dfdx's; being
//! elementwise, they are also independent of how work is split across threads.

use rayon::prelude::*;

/// Elements per parallel task: big enough to amortise scheduling, small enough to balance.
const CHUNK: usize = 1 << 15;

/// Weight decay as dfdx applies it: `L2` adds `wd * p` to the gradient; `Decoupled` adds
/// `wd * lr * p` to the step (AdamW, Lion).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decay {
    None,
    L2(f32),
    Decoupled(f32),
}

impl Decay {
    /// `Decoupled` carries `wd * lr`, multiplied in f64 as dfdx does.
    pub fn decoupled(wd: f64, lr: f64) -> Decay {
        if wd > 0.0 {
            Decay::Decoupled((wd * lr) as f32)
        } else {
            Decay::None
        }
    }

    pub fn l2(wd: f64) -> Decay {
        if wd > 0.0 {
            Decay::L2(wd as f32)
        } else {
            Decay::None
        }
    }
}

/// One optimizer's arithmetic for one update (its hyperparameters at this step).
pub trait Rule: Sync {
    /// Its per-parameter state slots, in order; checkpoints name them `<parameter>.<slot>`.
    fn slots(&self) -> &'static [&'static str];

    /// How weight decay enters the update.
    fn decay(&self) -> Decay;

    /// Sets a parameter's slots before its first update (they start at zero).
    fn first_update(&self, _slots: &mut [&mut [f32]]) {}

    /// Turns the gradient `g` into the step to subtract from the parameters, updating the
    /// slots in place. Called on chunks: every element's arithmetic must be its own.
    fn step(&self, g: &mut [f32], slots: &mut [&mut [f32]]);

    /// The whole update without decay (`p -= step`, `g = 0`) in one pass over the buffers, for
    /// rules where that saves memory traffic; `false` when the rule has none.
    fn fused(&self, _p: &mut [f32], _g: &mut [f32], _slots: &mut [&mut [f32]]) -> bool {
        false
    }
}

/// Updates one parameter in place: weight decay, the rule's step (updating its state `slots`),
/// `p -= step`, and `g = 0` ready for the next backward pass. One parallel pass over fixed
/// chunks, each cache-resident while its sub-passes run: the update is memory-bound, and this
/// reads and writes every buffer once. Every element's arithmetic is independent of the others,
/// so the split does not change results.
pub fn update(rule: &dyn Rule, p: &mut [f32], g: &mut [f32], slots: &mut [&mut [f32]]) {
    assert_eq!(p.len(), g.len());
    assert_eq!(slots.len(), rule.slots().len());
    assert!(slots.iter().all(|s| s.len() == p.len()));
    let mut slot_chunks: Vec<_> = slots.iter_mut().map(|s| s.chunks_mut(CHUNK)).collect();
    let work: Vec<_> = p
        .chunks_mut(CHUNK)
        .zip(g.chunks_mut(CHUNK))
        .map(|(p, g)| {
            let slots: Vec<&mut [f32]> = slot_chunks.iter_mut().flat_map(|c| c.next()).collect();
            (p, g, slots)
        })
        .collect();
    work.into_par_iter()
        .for_each(|(p, g, mut slots)| update_chunk(rule, p, g, &mut slots));
}

/// Weight decay as dfdx applies it (`g += wd * p` before the rule, `g += wd * lr * p` after it),
/// as separate passes: they round exactly as dfdx's fused loops do, and the rule's loops stay
/// free of branches.
fn update_chunk(rule: &dyn Rule, p: &mut [f32], g: &mut [f32], slots: &mut [&mut [f32]]) {
    let decay = rule.decay();
    if decay == Decay::None && rule.fused(p, g, slots) {
        return;
    }
    if let Decay::L2(wd) = decay {
        add_scaled(g, p, wd);
    }
    rule.step(g, slots);
    if let Decay::Decoupled(wd_lr) = decay {
        add_scaled(g, p, wd_lr);
    }
    for (p, g) in p.iter_mut().zip(g) {
        *p -= *g;
        *g = 0.0;
    }
}

fn add_scaled(g: &mut [f32], p: &[f32], s: f32) {
    g.iter_mut().zip(p).for_each(|(g, p)| *g += s * p);
}
