//! Early stopping inside a sweep. A trial consults its siblings' evaluations (through the sweep
//! manifest) after each of its own and stops with status `pruned` when the rule says so.
//! - Median: stop when the test accuracy at an evaluation step is below the median of the
//!   finished trials at that step (once `min_trials` of them have one).
//! - ASHA (asynchronous successive halving): at rung steps `min_steps * eta^k`, continue only
//!   when in the top `1/eta` of all trials that have reached that rung so far.

use crate::rundir::{logs, RunDir, CONFIG};
use crate::train::EarlyStopping;
pub use runner_spec::rule::Rule;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStop {
    /// The sweep manifest, which lists the sibling trials' run directories.
    pub manifest: PathBuf,
    pub rule: Rule,
}

impl EarlyStop {
    /// The rule as the training loop asks it.
    pub fn shared(self) -> std::sync::Arc<dyn EarlyStopping> {
        std::sync::Arc::new(self)
    }
}

impl EarlyStopping for EarlyStop {
    /// Whether the run in `own` should stop after evaluating `accuracy` at `step` (validation
    /// accuracy in runs with a validation split, compared with their peers' at that step).
    fn should_stop(&self, own: &Path, step: u64, accuracy: f64) -> bool {
        if !self.rule.decides_at(step) {
            return false;
        }
        let finished_only = matches!(self.rule, Rule::Median { .. });
        let mut peers: Vec<f64> = super::manifest::run_dirs(&self.manifest)
            .into_iter()
            .filter(|dir| dir != own)
            .map(RunDir::new)
            .filter(|r| r.file(CONFIG).is_file())
            .filter(|r| !finished_only || r.is_complete())
            .filter_map(|r| {
                logs::evals(&r)
                    .iter()
                    .find(|e| e.step == step)
                    .map(|e| e.selection_accuracy())
            })
            .collect();
        match self.rule {
            Rule::Median { min_trials } => {
                if peers.len() < min_trials.max(1) {
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
            Rule::Asha { eta, .. } => {
                // Enough trials at the rung to keep a top 1/eta that excludes someone.
                if (peers.len() as u64) + 1 < eta {
                    return false;
                }
                peers.push(accuracy);
                peers.sort_by(|a, b| b.total_cmp(a));
                let keep = (peers.len() / eta as usize).max(1);
                accuracy < peers[keep - 1]
            }
        }
    }
}
