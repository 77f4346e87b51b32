//! The training loop: seeded data order, per-step metrics, periodic evaluation.

use crate::config::Experiment;
use crate::data::mnist::IMAGE_PIXELS;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::models::Trainable;
use crate::progress::Progress;
use crate::rundir::checkpoint::{self, Checkpoint, LoopState};
use crate::rundir::{CsvLog, Status};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Test-set evaluation batch size (does not affect results beyond float rounding).
pub const EVAL_BATCH: usize = 1000;

/// Seeded epoch-wise shuffling. Each epoch is a fresh permutation of the training set cut into
/// `batch`-sized pieces; the last partial batch of an epoch is dropped (with reshuffling, a
/// different remainder each epoch), so every step sees exactly `batch` examples.
pub struct Batcher<'a> {
    split: &'a Split,
    batch: usize,
    rng: ChaCha8Rng,
    order: Vec<u32>,
    pos: usize,
    /// 0-based epoch of the batch last returned.
    pub epoch: u64,
}

impl<'a> Batcher<'a> {
    pub fn new(split: &'a Split, batch: usize, mut rng: ChaCha8Rng) -> Self {
        assert!(
            batch >= 1 && batch <= split.len(),
            "batch size validated before training"
        );
        let mut order: Vec<u32> = (0..split.len() as u32).collect();
        order.shuffle(&mut rng);
        Batcher {
            split,
            batch,
            rng,
            order,
            pos: 0,
            epoch: 0,
        }
    }

    /// A batcher continuing from a checkpoint's data order and generator state.
    pub fn restore(split: &'a Split, batch: usize, ckpt: &Checkpoint) -> Result<Self> {
        let s = &ckpt.state;
        let bad = |what: &str| Error::Failed(format!("checkpoint data position: {what}"));
        let mut seen = vec![false; split.len()];
        let is_permutation = ckpt.order.len() == split.len()
            && ckpt.order.iter().all(|&i| {
                seen.get_mut(i as usize)
                    .is_some_and(|s| !std::mem::replace(s, true))
            });
        if !is_permutation {
            return Err(bad(
                "the data order is not a permutation of the training set",
            ));
        }
        if s.batch_pos > split.len() {
            return Err(bad("the position is past the end of the epoch"));
        }
        let seed: [u8; 32] = hex_bytes(&s.rng_seed)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("bad generator seed"))?;
        let word_pos: u128 = s
            .rng_word_pos
            .parse()
            .map_err(|_| bad("bad generator position"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(s.rng_stream);
        rng.set_word_pos(word_pos);
        Ok(Batcher {
            split,
            batch,
            rng,
            order: ckpt.order.clone(),
            pos: s.batch_pos,
            epoch: s.epoch,
        })
    }

    /// Fills `images` (batch x 784, scaled to [0, 1]) and `labels` with the next batch.
    pub fn next_batch(&mut self, images: &mut Vec<f32>, labels: &mut Vec<u8>) {
        if self.pos + self.batch > self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.pos = 0;
            self.epoch += 1;
        }
        let idx = &self.order[self.pos..self.pos + self.batch];
        self.pos += self.batch;
        images.resize(self.batch * IMAGE_PIXELS, 0.0);
        labels.clear();
        for (k, &i) in idx.iter().enumerate() {
            self.split.write_image(
                i as usize,
                &mut images[k * IMAGE_PIXELS..(k + 1) * IMAGE_PIXELS],
            );
            labels.push(self.split.labels[i as usize]);
        }
    }
}

/// Mean loss and accuracy over a whole split.
pub fn evaluate(model: &dyn Trainable, split: &Split) -> Result<(f64, f64)> {
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let mut start = 0;
    while start < split.len() {
        let end = (start + EVAL_BATCH).min(split.len());
        let mut images = crate::ops::zeroed((end - start) * IMAGE_PIXELS);
        images
            .par_chunks_exact_mut(IMAGE_PIXELS)
            .enumerate()
            .for_each(|(k, chunk)| split.write_image(start + k, chunk));
        let stats = model.evaluate(images, &split.labels[start..end])?;
        loss_sum += stats.loss * (end - start) as f64;
        correct += stats.correct;
        start = end;
    }
    Ok((
        loss_sum / split.len() as f64,
        correct as f64 / split.len() as f64,
    ))
}

/// An f32 as the f64 with the same shortest decimal spelling (0.0635 rather than
/// 0.06353972852230072), so JSON shows the digits the CSV shows.
fn shortest_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

/// What the loop achieved, for the summary.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub steps_done: u64,
    pub final_eval: Option<(f64, f64)>,
    pub best_eval: Option<(u64, f64)>,
    /// Time in training steps, over every session of the run.
    pub train_time: Duration,
    pub error: Option<String>,
    /// Checkpoints written over every session, and the time they took (after a resume, the file
    /// write of the checkpoint resumed from is not counted: its record was made before it).
    pub checkpoints: u64,
    pub checkpoint_time: Duration,
}

/// Where the loop starts.
pub enum Start {
    /// Step 1, with the data-order generator.
    Fresh(ChaCha8Rng),
    /// Right after a checkpoint's step (the model is restored from it).
    Resume(Checkpoint),
}

/// Periodic checkpoints of a run.
pub struct Checkpointing<'a> {
    pub path: &'a Path,
    /// The run's hash, recorded so a checkpoint is never applied to another run.
    pub hash: &'a str,
    /// Wall time of earlier sessions, and the start of this one.
    pub wall_before: f64,
    pub wall_start: Instant,
}

/// Everything the loop writes to.
pub struct Sinks<'a> {
    pub metrics: &'a mut CsvLog,
    pub evals: &'a mut CsvLog,
    pub progress: &'a mut Progress,
    pub interrupted: &'a AtomicBool,
    /// Early stopping: given an evaluation step and its test accuracy, whether to stop here.
    pub prune: Option<&'a dyn Fn(u64, f64) -> bool>,
    pub checkpoints: Option<Checkpointing<'a>>,
}

/// The loop's own variables, which a checkpoint must carry.
struct Position {
    step: u64,
    elapsed_before: f64,
    loss_ema: Option<f64>,
    acc_ema: f64,
}

/// Runs the experiment's steps from `start`. Stops early (with the status saying why) on
/// interruption (after writing a checkpoint), a non-finite loss or pruning; errors are tensor or
/// I/O failures.
pub fn train(
    exp: &Experiment,
    data: &Dataset,
    model: &mut dyn Trainable,
    start: Start,
    mut sinks: Sinks,
) -> Result<Outcome> {
    let t = &exp.train;
    let lr = exp.optimizer.lr();
    let mut outcome = Outcome {
        status: Status::Running,
        steps_done: 0,
        final_eval: None,
        best_eval: None,
        train_time: Duration::ZERO,
        error: None,
        checkpoints: 0,
        checkpoint_time: Duration::ZERO,
    };
    let mut pos = Position {
        step: 0,
        elapsed_before: 0.0,
        loss_ema: None,
        acc_ema: 0.0,
    };
    let mut batcher = match start {
        Start::Fresh(rng) => Batcher::new(&data.train, t.batch_size, rng),
        Start::Resume(mut ckpt) => {
            let s = ckpt.state.clone();
            model.import_state(s.step, &mut |name, len| ckpt.take(name, len))?;
            outcome.steps_done = s.step;
            outcome.final_eval = s.final_eval;
            outcome.best_eval = s.best_eval;
            outcome.train_time = Duration::from_secs_f64(s.train_time_s);
            outcome.checkpoints = s.checkpoints;
            outcome.checkpoint_time = Duration::from_secs_f64(s.checkpoint_time_s);
            pos = Position {
                step: s.step,
                elapsed_before: s.elapsed_s,
                loss_ema: s.loss_ema,
                acc_ema: s.acc_ema,
            };
            Batcher::restore(&data.train, t.batch_size, &ckpt)?
        }
    };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let elapsed = |pos: &Position| pos.elapsed_before + start.elapsed().as_secs_f64();
    let mut last_flush = Instant::now();
    let mut last_checkpoint = pos.step;
    for step in pos.step + 1..=t.steps {
        if sinks.interrupted.load(Ordering::SeqCst) {
            outcome.status = Status::Interrupted;
            outcome.error = Some(format!("interrupted after step {}", step - 1));
            break;
        }
        batcher.next_batch(&mut images, &mut labels);
        let t0 = Instant::now();
        let stats = model.train_step(std::mem::take(&mut images), &labels)?;
        outcome.train_time += t0.elapsed();
        let loss = stats.loss as f32;
        let accuracy = stats.correct as f64 / labels.len() as f64;
        sinks.metrics.row([
            step.to_string(),
            batcher.epoch.to_string(),
            loss.to_string(),
            accuracy.to_string(),
            lr.to_string(),
            (step * t.batch_size as u64).to_string(),
            format!("{:.3}", elapsed(&pos)),
        ])?;
        outcome.steps_done = step;
        pos.step = step;
        if !loss.is_finite() {
            sinks.metrics.flush()?;
            outcome.status = Status::Diverged;
            outcome.error = Some(format!(
                "training loss became {loss} at step {step}; the run diverged (try a lower optimizer.lr, \
                 currently {lr})"
            ));
            return Ok(outcome);
        }
        if last_flush.elapsed() > Duration::from_secs(1) {
            sinks.metrics.flush()?;
            last_flush = Instant::now();
        }
        let smooth = |ema: f64, x: f64| 0.95 * ema + 0.05 * x;
        let ema = pos.loss_ema.map_or(loss as f64, |e| smooth(e, loss as f64));
        pos.acc_ema = if step == 1 {
            accuracy
        } else {
            smooth(pos.acc_ema, accuracy)
        };
        pos.loss_ema = Some(ema);
        sinks.progress.step(step, ema, pos.acc_ema);
        if step % t.eval_every == 0 || step == t.steps {
            let (test_loss, test_acc) = evaluate(model, &data.test)?;
            let test_loss = test_loss as f32;
            sinks.evals.row([
                step.to_string(),
                test_loss.to_string(),
                test_acc.to_string(),
                format!("{:.3}", elapsed(&pos)),
            ])?;
            sinks.evals.flush()?;
            sinks.metrics.flush()?;
            sinks.progress.eval(step, test_loss as f64, test_acc);
            outcome.final_eval = Some((shortest_f64(test_loss), test_acc));
            if outcome.best_eval.is_none_or(|(_, best)| test_acc > best) {
                outcome.best_eval = Some((step, test_acc));
            }
            if step < t.steps && sinks.prune.is_some_and(|prune| prune(step, test_acc)) {
                outcome.status = Status::Pruned;
                outcome.error = Some(format!(
                    "pruned at step {step}: test accuracy below the median of finished trials"
                ));
                break;
            }
        }
        if step % t.checkpoint_interval() == 0 && step < t.steps {
            checkpoint(
                model,
                &batcher,
                &pos,
                &mut outcome,
                &mut sinks,
                elapsed(&pos),
            )?;
            last_checkpoint = step;
        }
    }
    if outcome.status == Status::Interrupted && pos.step > last_checkpoint {
        checkpoint(
            model,
            &batcher,
            &pos,
            &mut outcome,
            &mut sinks,
            elapsed(&pos),
        )?;
    }
    sinks.metrics.flush()?;
    if outcome.status == Status::Running {
        outcome.status = Status::Complete;
    }
    Ok(outcome)
}

/// Makes the logs durable up to `pos.step`, then writes a checkpoint that points at them.
fn checkpoint(
    model: &mut dyn Trainable,
    batcher: &Batcher,
    pos: &Position,
    outcome: &mut Outcome,
    sinks: &mut Sinks,
    elapsed_s: f64,
) -> Result<()> {
    let Some(c) = &sinks.checkpoints else {
        return Ok(());
    };
    let t0 = Instant::now();
    outcome.checkpoints += 1;
    sinks.metrics.sync()?;
    sinks.evals.sync()?;
    let (rng_seed, rng_stream, rng_word_pos) = (
        crate::config::hex(&batcher.rng.get_seed()),
        batcher.rng.get_stream(),
        batcher.rng.get_word_pos().to_string(),
    );
    let ckpt = Checkpoint {
        state: LoopState {
            format: checkpoint::FORMAT,
            hash: c.hash.to_string(),
            step: pos.step,
            epoch: batcher.epoch,
            batch_pos: batcher.pos,
            rng_seed,
            rng_stream,
            rng_word_pos,
            elapsed_s,
            train_time_s: outcome.train_time.as_secs_f64(),
            wall_time_s: c.wall_before + c.wall_start.elapsed().as_secs_f64(),
            checkpoints: outcome.checkpoints,
            checkpoint_time_s: (outcome.checkpoint_time + t0.elapsed()).as_secs_f64(),
            loss_ema: pos.loss_ema,
            acc_ema: pos.acc_ema,
            final_eval: outcome.final_eval,
            best_eval: outcome.best_eval,
        },
        order: batcher.order.clone(),
        tensors: model.export_state()?,
    };
    checkpoint::save(c.path, &ckpt)?;
    outcome.checkpoint_time += t0.elapsed();
    crate::verbose::say(|| {
        format!(
            "checkpoint at step {} in {:.0} ms",
            pos.step,
            t0.elapsed().as_secs_f64() * 1e3
        )
    });
    Ok(())
}
