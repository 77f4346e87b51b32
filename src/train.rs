//! The training loop: seeded data order, per-step metrics, periodic evaluation.

use crate::config::Experiment;
use crate::data::mnist::IMAGE_PIXELS;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::models::{BatchStats, Trainable};
use crate::optim::Optimizer;
use crate::progress::Progress;
use crate::rundir::checkpoint::{self, Checkpoint, LoopState};
use crate::rundir::{CsvLog, Status, Totals};
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
        let bad = |what: &str| {
            Error::Failed(format!(
                "{}: data position: {what} (the checkpoint is damaged; `runner run --force` \
                 starts the run over)",
                crate::rundir::CHECKPOINT
            ))
        };
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

/// Mean loss and accuracy over a whole split, in batches of [`EVAL_BATCH`] images whose results
/// are added in order (the same bits however they run). The first runs alone, its kernels on
/// every thread; where it took under [`SIDE_BY_SIDE_UNDER`], the rest run side by side, one per
/// thread (idle threads still take a share of a batch's kernels). A short batch leaves the other
/// core idle in every serial stretch between its kernels: side by side, an MLP's evaluation ran
/// 1.14-1.28x faster. A long one keeps both cores busy already: two of the reference's at once
/// ran no faster and doubled its peak memory (154 -> 330 MB).
pub fn evaluate(model: &dyn Trainable, split: &Split) -> Result<(f64, f64)> {
    evaluate_side_by_side_under(model, split, SIDE_BY_SIDE_UNDER)
}

/// [`evaluate`] with the first batch's time below which the rest run side by side.
fn evaluate_side_by_side_under(
    model: &dyn Trainable,
    split: &Split,
    side_by_side_under: std::time::Duration,
) -> Result<(f64, f64)> {
    let batch = |start: usize| -> Result<(usize, BatchStats)> {
        let end = (start + EVAL_BATCH).min(split.len());
        let mut images = crate::ops::zeroed((end - start) * IMAGE_PIXELS);
        images
            .par_chunks_exact_mut(IMAGE_PIXELS)
            .enumerate()
            .for_each(|(k, chunk)| split.write_image(start + k, chunk));
        Ok((
            end - start,
            model.evaluate(images, &split.labels[start..end])?,
        ))
    };
    let starts: Vec<usize> = (0..split.len()).step_by(EVAL_BATCH).collect();
    let mut stats = Vec::with_capacity(starts.len());
    if let Some((&first, rest)) = starts.split_first() {
        let clock = std::time::Instant::now();
        stats.push(batch(first)?);
        if clock.elapsed() < side_by_side_under {
            stats.extend(
                rest.par_iter()
                    .map(|&s| batch(s))
                    .collect::<Result<Vec<_>>>()?,
            );
        } else {
            for &start in rest {
                stats.push(batch(start)?);
            }
        }
    }
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    for (images, stats) in stats {
        loss_sum += stats.loss * images as f64;
        correct += stats.correct;
    }
    Ok((
        loss_sum / split.len() as f64,
        correct as f64 / split.len() as f64,
    ))
}

/// Evaluation batches that take less than this run side by side (see [`evaluate`]). On an Intel
/// Xeon: an MLP's batch 4 ms, the CNNs' 6-35 ms, the reference's 62 ms.
const SIDE_BY_SIDE_UNDER: std::time::Duration = std::time::Duration::from_millis(30);

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

/// How the loop ended, and the run's totals (over every session, this one included).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub error: Option<String>,
    pub totals: Totals,
}

/// Where the loop starts.
pub enum Start {
    /// Step 1, with the data-order generator.
    Fresh(ChaCha8Rng),
    /// Right after a checkpoint's step (the model is restored from it).
    Resume(Checkpoint),
}

/// An early-stopping rule (a sweep's, for instance), asked after each evaluation but the last.
pub trait EarlyStopping: std::fmt::Debug + Send + Sync {
    /// Whether the run in `run_dir` should stop after `test_accuracy` at evaluation `step`.
    fn should_stop(&self, run_dir: &Path, step: u64, test_accuracy: f64) -> bool;
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
    /// Early stopping: given an evaluation step and its accuracy (validation when there is a
    /// split, else test), whether to stop here.
    pub prune: Option<&'a dyn Fn(u64, f64) -> bool>,
    /// Where `train.keep_best` writes the weights of each new best evaluation.
    pub best_weights: Option<&'a Path>,
    pub checkpoints: Option<Checkpointing<'a>>,
}

/// The loop's own variables beside the totals, which a checkpoint must carry.
struct Position {
    elapsed_before: f64,
    loss_ema: Option<f64>,
    acc_ema: f64,
}

/// The loop in progress: the model, its data, where it is and what it has done.
struct Loop<'a, 's> {
    exp: &'a Experiment,
    data: &'a Dataset,
    model: &'a mut dyn Trainable,
    /// The optimizer, owned by the loop and lent to each step.
    opt: Optimizer,
    sinks: Sinks<'s>,
    batcher: Batcher<'a>,
    pos: Position,
    outcome: Outcome,
    /// When this session's loop started (for `elapsed_s`).
    start: Instant,
}

/// Runs the experiment's steps from `start`. Stops early (with the status saying why) on
/// interruption (after writing a checkpoint), a non-finite loss or pruning; errors are tensor or
/// I/O failures.
pub fn train(
    exp: &Experiment,
    data: &Dataset,
    model: &mut dyn Trainable,
    start: Start,
    sinks: Sinks,
) -> Result<Outcome> {
    let batch = exp.train.batch_size;
    let mut pos = Position {
        elapsed_before: 0.0,
        loss_ema: None,
        acc_ema: 0.0,
    };
    let mut totals = Totals::default();
    let mut opt = Optimizer::new(&exp.optimizer).with_clip_grad_norm(exp.train.clip_grad_norm);
    let batcher = match start {
        Start::Fresh(rng) => Batcher::new(&data.train, batch, rng),
        Start::Resume(mut ckpt) => {
            let s = ckpt.state.clone();
            model.import_state(&mut opt, s.totals.steps_done, &mut |name, len| {
                ckpt.take(name, len)
            })?;
            totals = s.totals;
            pos = Position {
                elapsed_before: s.elapsed_s,
                loss_ema: s.loss_ema,
                acc_ema: s.acc_ema,
            };
            Batcher::restore(&data.train, batch, &ckpt)?
        }
    };
    let mut run = Loop {
        exp,
        data,
        model,
        opt,
        sinks,
        batcher,
        pos,
        outcome: Outcome {
            status: Status::Running,
            error: None,
            totals,
        },
        start: Instant::now(),
    };
    run.run()?;
    Ok(run.outcome)
}

impl Loop<'_, '_> {
    fn elapsed(&self) -> f64 {
        self.pos.elapsed_before + self.start.elapsed().as_secs_f64()
    }

    fn stop(&mut self, status: Status, why: String) {
        self.outcome.status = status;
        self.outcome.error = Some(why);
    }

    /// Steps until the last one or an early stop; the status then says which.
    fn run(&mut self) -> Result<()> {
        let t = &self.exp.train;
        let (mut images, mut labels) = (Vec::new(), Vec::new());
        let mut last_flush = Instant::now();
        let mut last_checkpoint = self.outcome.totals.steps_done;
        for step in self.outcome.totals.steps_done + 1..=t.steps {
            if self.sinks.interrupted.load(Ordering::SeqCst) {
                self.stop(
                    Status::Interrupted,
                    format!("interrupted after step {}", step - 1),
                );
                break;
            }
            let loss = self.train_step(step, &mut images, &mut labels)?;
            if !loss.is_finite() {
                self.sinks.metrics.flush()?;
                let lr = self.exp.optimizer.lr();
                self.stop(
                    Status::Diverged,
                    format!(
                        "training loss became {loss} at step {step}; the run diverged (try a \
                         lower optimizer.lr, currently {lr})"
                    ),
                );
                return Ok(());
            }
            if last_flush.elapsed() > Duration::from_secs(1) {
                self.sinks.metrics.flush()?;
                last_flush = Instant::now();
            }
            if step % t.eval_every == 0 || step == t.steps {
                let accuracy = self.evaluate(step)?;
                let prune = self.sinks.prune;
                if step < t.steps && prune.is_some_and(|prune| prune(step, accuracy)) {
                    self.stop(
                        Status::Pruned,
                        format!(
                            "pruned at step {step}: {} accuracy below the median of finished \
                             trials",
                            if self.data.validation.is_some() {
                                "validation"
                            } else {
                                "test"
                            }
                        ),
                    );
                    break;
                }
            }
            if step % t.checkpoint_interval() == 0 && step < t.steps {
                self.checkpoint()?;
                last_checkpoint = step;
            }
        }
        if self.outcome.status == Status::Interrupted
            && self.outcome.totals.steps_done > last_checkpoint
        {
            self.checkpoint()?;
        }
        self.sinks.metrics.flush()?;
        if self.outcome.status == Status::Running {
            self.outcome.status = Status::Complete;
        }
        Ok(())
    }

    /// One optimizer step on the next batch, logged; returns the batch loss.
    fn train_step(
        &mut self,
        step: u64,
        images: &mut Vec<f32>,
        labels: &mut Vec<u8>,
    ) -> Result<f32> {
        let batch = self.exp.train.batch_size;
        let base = self.exp.optimizer.lr();
        let lr = match &self.exp.schedule {
            Some(schedule) => {
                let lr = schedule.lr_at(base, step, self.exp.train.steps);
                self.opt.set_lr(lr);
                lr
            }
            None => base,
        };
        self.batcher.next_batch(images, labels);
        let t0 = Instant::now();
        let stats = self
            .model
            .train_step(&mut self.opt, step, std::mem::take(images), labels)?;
        self.outcome.totals.train_time_s += t0.elapsed().as_secs_f64();
        let loss = stats.loss as f32;
        let accuracy = stats.correct as f64 / labels.len() as f64;
        let elapsed = self.elapsed();
        self.sinks.metrics.row([
            step.to_string(),
            self.batcher.epoch.to_string(),
            loss.to_string(),
            accuracy.to_string(),
            lr.to_string(),
            (step * batch as u64).to_string(),
            format!("{elapsed:.6}"),
        ])?;
        self.outcome.totals.steps_done = step;
        if loss.is_finite() {
            let pos = &mut self.pos;
            let smooth = |ema: f64, x: f64| 0.95 * ema + 0.05 * x;
            let ema = pos.loss_ema.map_or(loss as f64, |e| smooth(e, loss as f64));
            pos.acc_ema = if step == 1 {
                accuracy
            } else {
                smooth(pos.acc_ema, accuracy)
            };
            pos.loss_ema = Some(ema);
            self.sinks.progress.step(step, ema, pos.acc_ema);
        }
        Ok(loss)
    }

    /// Evaluates on the test set (and the validation split), logs it, updates the totals and
    /// with `keep_best` writes the weights of a new best; returns the accuracy that picks the
    /// best evaluation and that early stopping judges: validation when there is a split, else
    /// test.
    fn evaluate(&mut self, step: u64) -> Result<f64> {
        let (test_loss, test_acc) = evaluate(self.model, &self.data.test)?;
        let test_loss = test_loss as f32;
        let val = match &self.data.validation {
            Some(split) => {
                let (loss, acc) = evaluate(self.model, split)?;
                Some((loss as f32, acc))
            }
            None => None,
        };
        let elapsed = self.elapsed();
        let mut row = vec![
            step.to_string(),
            test_loss.to_string(),
            test_acc.to_string(),
        ];
        if let Some((loss, acc)) = val {
            row.extend([loss.to_string(), acc.to_string()]);
        }
        row.push(format!("{elapsed:.6}"));
        self.sinks.evals.row(row)?;
        self.sinks.evals.flush()?;
        self.sinks.metrics.flush()?;
        let val_line = val.map(|(loss, acc)| (loss as f64, acc));
        self.sinks
            .progress
            .eval(step, test_loss as f64, test_acc, val_line);
        let totals = &mut self.outcome.totals;
        totals.final_eval = Some((shortest_f64(test_loss), test_acc));
        totals.final_val = val.map(|(loss, acc)| (shortest_f64(loss), acc));
        let select = val.map_or(test_acc, |(_, acc)| acc);
        let best_so_far = match (totals.best_val, totals.best_eval) {
            (Some(v), _) => Some(v),
            (None, best) => best.map(|(_, acc)| acc),
        };
        if best_so_far.is_none_or(|best| select > best) {
            totals.best_eval = Some((step, test_acc));
            totals.best_val = val.map(|(_, acc)| acc);
            if let Some(path) = self.sinks.best_weights {
                crate::rundir::atomic::write_with(path, |tmp| {
                    self.model
                        .save(tmp)
                        .map_err(|e| std::io::Error::other(e.to_string()))
                })?;
            }
        }
        Ok(select)
    }

    /// Makes the logs durable up to the current step, then writes a checkpoint that points at
    /// them.
    fn checkpoint(&mut self) -> Result<()> {
        let Some(c) = &self.sinks.checkpoints else {
            return Ok(());
        };
        let t0 = Instant::now();
        let elapsed_s = self.elapsed();
        self.sinks.metrics.sync()?;
        self.sinks.evals.sync()?;
        let logs = checkpoint::LogDigests {
            metrics: crate::rundir::digest::csv_digest(self.sinks.metrics.path())?,
            eval: crate::rundir::digest::csv_digest(self.sinks.evals.path())?,
        };
        let totals = &mut self.outcome.totals;
        totals.checkpoints += 1;
        let batcher = &self.batcher;
        let mut recorded = totals.clone();
        recorded.wall_time_s = c.wall_before + c.wall_start.elapsed().as_secs_f64();
        recorded.checkpoint_time_s += t0.elapsed().as_secs_f64();
        let ckpt = Checkpoint {
            state: LoopState {
                format: checkpoint::FORMAT,
                hash: c.hash.to_string(),
                totals: recorded,
                epoch: batcher.epoch,
                batch_pos: batcher.pos,
                rng_seed: crate::config::hex(&batcher.rng.get_seed()),
                rng_stream: batcher.rng.get_stream(),
                rng_word_pos: batcher.rng.get_word_pos().to_string(),
                elapsed_s,
                loss_ema: self.pos.loss_ema,
                acc_ema: self.pos.acc_ema,
                logs: Some(logs),
            },
            order: batcher.order.clone(),
            tensors: self.model.export_state(&mut self.opt)?,
        };
        checkpoint::save(c.path, &ckpt)?;
        totals.checkpoint_time_s += t0.elapsed().as_secs_f64();
        let step = totals.steps_done;
        crate::verbose::say(|| {
            format!(
                "checkpoint at step {step} in {:.0} ms",
                t0.elapsed().as_secs_f64() * 1e3
            )
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mnist::Source;
    use rand::SeedableRng;
    use std::time::Duration;

    /// Batches one at a time and side by side give the same bits, on a split that ends in a
    /// short batch, for an MLP (the sparse first layer and dense layers) and a CNN.
    #[test]
    fn evaluation_is_the_same_one_batch_at_a_time_and_side_by_side() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in ["experiments/smoke.toml", "experiments/smoke-cnn.toml"] {
            let exp = crate::config::load(&root.join(file), &[]).unwrap();
            let data = Dataset::load(&Source::for_config(&exp.data)).unwrap();
            let split = Split {
                images: data.test.images.slice(0, 2500 * IMAGE_PIXELS),
                labels: data.test.labels.slice(0, 2500),
            };
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let model = crate::models::build(&exp, &mut rng).unwrap();
            let one_at_a_time =
                evaluate_side_by_side_under(model.as_ref(), &split, Duration::ZERO).unwrap();
            let side_by_side =
                evaluate_side_by_side_under(model.as_ref(), &split, Duration::MAX).unwrap();
            let bits = |(loss, acc): (f64, f64)| (loss.to_bits(), acc.to_bits());
            assert_eq!(bits(one_at_a_time), bits(side_by_side), "{file}");
            assert!(
                one_at_a_time.1 > 0.0 && one_at_a_time.0.is_finite(),
                "{file}"
            );
        }
    }
}
