//! The training loop: seeded data order, per-step metrics, periodic evaluation.

use crate::config::Experiment;
use crate::data::mnist::IMAGE_PIXELS;
use crate::data::{Dataset, Split};
use crate::error::Result;
use crate::models::Trainable;
use crate::progress::Progress;
use crate::rundir::{CsvLog, Status};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
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
        let mut images = vec![0.0f32; (end - start) * IMAGE_PIXELS];
        for (k, chunk) in images.chunks_exact_mut(IMAGE_PIXELS).enumerate() {
            split.write_image(start + k, chunk);
        }
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

/// What the loop achieved, for the summary.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub steps_done: u64,
    pub final_eval: Option<(f64, f64)>,
    pub best_eval: Option<(u64, f64)>,
    pub train_time: Duration,
    pub error: Option<String>,
}

/// Everything the loop writes to.
pub struct Sinks<'a> {
    pub metrics: &'a mut CsvLog,
    pub evals: &'a mut CsvLog,
    pub progress: &'a mut Progress,
    pub interrupted: &'a AtomicBool,
    /// Early stopping: given an evaluation step and its test accuracy, whether to stop here.
    pub prune: Option<&'a dyn Fn(u64, f64) -> bool>,
}

/// Runs `exp.train.steps` steps. Stops early (with the status saying why) on interruption or a
/// non-finite loss; errors are tensor or I/O failures.
pub fn train(
    exp: &Experiment,
    data: &Dataset,
    model: &mut dyn Trainable,
    data_rng: ChaCha8Rng,
    sinks: Sinks,
) -> Result<Outcome> {
    let t = &exp.train;
    let lr = exp.optimizer.lr();
    let mut batcher = Batcher::new(&data.train, t.batch_size, data_rng);
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    let start = Instant::now();
    let mut last_flush = Instant::now();
    let mut outcome = Outcome {
        status: Status::Running,
        steps_done: 0,
        final_eval: None,
        best_eval: None,
        train_time: Duration::ZERO,
        error: None,
    };
    let (mut loss_ema, mut acc_ema) = (None::<f64>, 0.0);
    for step in 1..=t.steps {
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
            format!("{:.3}", start.elapsed().as_secs_f64()),
        ])?;
        outcome.steps_done = step;
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
        let ema = loss_ema.map_or(loss as f64, |e| smooth(e, loss as f64));
        acc_ema = if step == 1 {
            accuracy
        } else {
            smooth(acc_ema, accuracy)
        };
        loss_ema = Some(ema);
        sinks.progress.step(step, ema, acc_ema);
        if step % t.eval_every == 0 || step == t.steps {
            let (test_loss, test_acc) = evaluate(model, &data.test)?;
            let test_loss = test_loss as f32;
            sinks.evals.row([
                step.to_string(),
                test_loss.to_string(),
                test_acc.to_string(),
                format!("{:.3}", start.elapsed().as_secs_f64()),
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
    }
    sinks.metrics.flush()?;
    if outcome.status == Status::Running {
        outcome.status = Status::Complete;
    }
    Ok(outcome)
}
