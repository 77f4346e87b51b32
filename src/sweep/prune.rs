//! Median early stopping: a trial whose test accuracy at an evaluation step is below the median
//! of the finished trials of its sweep at that step stops there, with status `pruned`.

use crate::report::runs::Run;
use crate::rundir::Status;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct MedianRule {
    /// The sweep manifest, which lists the sibling trials' run directories.
    pub manifest: PathBuf,
    /// Finished trials with an evaluation at the step needed before anything is pruned.
    pub min_trials: usize,
}

impl MedianRule {
    /// Whether the run in `own` should stop after evaluating `accuracy` at `step`.
    pub fn should_prune(&self, own: &Path, step: u64, accuracy: f64) -> bool {
        let Ok(text) = std::fs::read_to_string(&self.manifest) else {
            return false;
        };
        let mut peers: Vec<f64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|e| e["run_dir"].as_str().map(PathBuf::from))
            .filter(|dir| dir != own)
            .filter_map(|dir| Run::load(&dir).ok())
            .filter(|r| {
                r.summary
                    .as_ref()
                    .is_some_and(|s| s.status == Status::Complete)
            })
            .filter_map(|r| {
                r.evals
                    .iter()
                    .find(|e| e.step == step)
                    .map(|e| e.test_accuracy)
            })
            .collect();
        if peers.len() < self.min_trials.max(1) {
            return false;
        }
        peers.sort_by(f64::total_cmp);
        let n = peers.len();
        let median = if n % 2 == 1 {
            peers[n / 2]
        } else {
            (peers[n / 2 - 1] + peers[n / 2]) / 2.0
        };
        accuracy < median
    }
}
