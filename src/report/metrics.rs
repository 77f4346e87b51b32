//! Headline metrics of a run, at its end or at a given step, from its files.

use super::runs::Run;
use crate::rundir::Summary;

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
            Some(b) if b.test_accuracy >= e.test_accuracy => Some(b),
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
        train_loss: None,
        ms_per_step: s.ms_per_step,
        wall_s: Some(s.wall_time_s),
    }
}

/// One headline metric of a run: its name (the JSON and sweep-file vocabulary), its column
/// label in tables, which way is better, and how it is read from a run's [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    TestAccuracy,
    BestTestAccuracy,
    BestTestStep,
    TestLoss,
    TrainLoss,
    MsPerStep,
    WallTime,
}

impl Metric {
    /// Every metric, in the order `runner compare` shows them.
    pub const ALL: [Metric; 7] = [
        Metric::TestAccuracy,
        Metric::BestTestAccuracy,
        Metric::BestTestStep,
        Metric::TestLoss,
        Metric::TrainLoss,
        Metric::MsPerStep,
        Metric::WallTime,
    ];

    /// The metrics a sweep can rank its trials by.
    pub const RANKABLE: [Metric; 4] = [
        Metric::TestAccuracy,
        Metric::TestLoss,
        Metric::BestTestAccuracy,
        Metric::MsPerStep,
    ];

    /// The name in `--json` objects and sweep files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "test_accuracy",
            Metric::BestTestAccuracy => "best_test_accuracy",
            Metric::BestTestStep => "best_test_step",
            Metric::TestLoss => "test_loss",
            Metric::TrainLoss => "train_loss",
            Metric::MsPerStep => "ms_per_step",
            Metric::WallTime => "wall_time_s",
        }
    }

    /// The column label in tables (`runner compare`, `runner ls`).
    pub fn column(self) -> &'static str {
        match self {
            Metric::TestAccuracy => "test_acc",
            Metric::BestTestAccuracy => "best_acc",
            Metric::BestTestStep => "best_step",
            Metric::TestLoss => "test_loss",
            Metric::TrainLoss => "train_loss",
            Metric::MsPerStep => "ms/step",
            Metric::WallTime => "wall_s",
        }
    }

    /// The metric a name or a column label stands for.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL
            .into_iter()
            .find(|m| m.name() == s || m.column() == s)
    }

    /// Whether a larger value is better (accuracy; the step of the best evaluation counts as
    /// larger-is-better, as later means trained longer).
    pub fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::TestAccuracy | Metric::BestTestAccuracy | Metric::BestTestStep
        )
    }

    pub fn read(self, m: &Metrics) -> Option<f64> {
        match self {
            Metric::TestAccuracy => m.test_acc,
            Metric::BestTestAccuracy => m.best_acc,
            Metric::BestTestStep => m.best_step.map(|s| s as f64),
            Metric::TestLoss => m.test_loss,
            Metric::TrainLoss => m.train_loss,
            Metric::MsPerStep => m.ms_per_step,
            Metric::WallTime => m.wall_s,
        }
    }

    /// How a table shows it: scale, decimals and unit suffix.
    pub fn format(self) -> (f64, usize, &'static str) {
        match self {
            Metric::TestAccuracy | Metric::BestTestAccuracy => (100.0, 2, "%"),
            Metric::BestTestStep => (1.0, 0, ""),
            Metric::TestLoss | Metric::TrainLoss => (1.0, 4, ""),
            Metric::MsPerStep => (1.0, 2, ""),
            Metric::WallTime => (1.0, 1, ""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Metric;

    #[test]
    fn names_and_columns_parse_back() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.name()), Some(m));
            assert_eq!(Metric::parse(m.column()), Some(m));
        }
        assert_eq!(Metric::parse("speed"), None);
    }
}
