//! Headline metrics of a run, at its end or at a given step, from its files.

use super::runs::Run;
use crate::rundir::Summary;
pub use runner_spec::metric::Metric;

/// Smoothing of the per-step training loss: EMA with this weight on the newest step
/// (a memory of about 20 steps), over the last `EMA_WINDOW` steps.
pub const EMA_ALPHA: f64 = 0.05;
const EMA_WINDOW: usize = 200;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    pub test_acc: Option<f64>,
    pub best_acc: Option<f64>,
    pub best_step: Option<u64>,
    pub test_loss: Option<f64>,
    pub val_acc: Option<f64>,
    pub val_loss: Option<f64>,
    pub train_loss: Option<f64>,
    pub ms_per_step: Option<f64>,
    pub wall_s: Option<f64>,
}

/// Metrics at the end of the run (`at = None`) or at step `at` (the last evaluation at or
/// before it; timings are end-of-run figures and are left out).
pub fn of(run: &Run, at: Option<u64>) -> Metrics {
    let evals: Vec<_> = run
        .evals
        .iter()
        .filter(|e| at.is_none_or(|s| e.step <= s))
        .collect();
    let last = evals.last();
    let best = evals
        .iter()
        .fold(None::<&&super::runs::EvalRow>, |b, e| match b {
            Some(b) if b.selection_accuracy() >= e.selection_accuracy() => Some(b),
            _ => Some(e),
        });
    let steps = match at {
        None => run.steps(Some(EMA_WINDOW)),
        Some(s) => {
            let all = run.steps(None);
            let end = all.partition_point(|r| r.step <= s);
            all[end.saturating_sub(EMA_WINDOW)..end].to_vec()
        }
    };
    let train_loss = steps
        .iter()
        .map(|r| r.loss)
        .reduce(|ema, x| (1.0 - EMA_ALPHA) * ema + EMA_ALPHA * x);
    let summary = run.summary.as_ref().filter(|_| at.is_none());
    Metrics {
        test_acc: last.map(|e| e.test_accuracy),
        best_acc: best.map(|e| e.test_accuracy),
        best_step: best.map(|e| e.step),
        test_loss: last.map(|e| e.test_loss),
        val_acc: last.and_then(|e| e.val).map(|(_, a)| a),
        val_loss: last.and_then(|e| e.val).map(|(l, _)| l),
        train_loss,
        ms_per_step: summary.and_then(|s| s.ms_per_step),
        wall_s: summary.map(|s| s.wall_time_s).filter(|w| *w > 0.0),
    }
}

/// The figures a run's summary records, without reading its logs (no training loss).
pub fn recorded(s: &Summary) -> Metrics {
    Metrics {
        test_acc: s.final_test_accuracy,
        best_acc: s.best_test_accuracy,
        best_step: s.best_test_step,
        test_loss: s.final_test_loss,
        val_acc: s.final_val_accuracy,
        val_loss: s.final_val_loss,
        train_loss: None,
        ms_per_step: s.ms_per_step,
        wall_s: Some(s.wall_time_s),
    }
}

/// How each [`Metric`] is read from a run's [`Metrics`].
pub trait ReadMetric {
    fn read(self, m: &Metrics) -> Option<f64>;
}

impl ReadMetric for Metric {
    fn read(self, m: &Metrics) -> Option<f64> {
        match self {
            Metric::TestAccuracy => m.test_acc,
            Metric::BestTestAccuracy => m.best_acc,
            Metric::BestTestStep => m.best_step.map(|s| s as f64),
            Metric::TestLoss => m.test_loss,
            Metric::ValAccuracy => m.val_acc,
            Metric::ValLoss => m.val_loss,
            Metric::TrainLoss => m.train_loss,
            Metric::MsPerStep => m.ms_per_step,
            Metric::WallTime => m.wall_s,
        }
    }
}
