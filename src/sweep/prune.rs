//! Early stopping inside a sweep. A trial consults its siblings' evaluations (through the sweep
//! manifest) after each of its own and stops with status `pruned` when the rule says so.
//! - Median: stop when the test accuracy at an evaluation step is below the median of the
//!   finished trials at that step (once `min_trials` of them have one).
//! - ASHA (asynchronous successive halving): at rung steps `min_steps * eta^k`, continue only
//!   when in the top `1/eta` of all trials that have reached that rung so far.

use crate::report::runs::Run;
use crate::rundir::Status;
use crate::train::EarlyStopping;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    Median { min_trials: usize },
    Asha { min_steps: u64, eta: u64 },
}

impl Rule {
    /// The hidden `--early-stop` argument that carries the rule to a trial process.
    pub fn to_arg(self) -> String {
        match self {
            Rule::Median { min_trials } => format!("median:{min_trials}"),
            Rule::Asha { min_steps, eta } => format!("asha:{min_steps}:{eta}"),
        }
    }

    pub fn from_arg(s: &str) -> Result<Rule, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |p: &str| {
            p.parse::<u64>()
                .map_err(|_| format!("--early-stop {s}: bad number {p:?}"))
        };
        match parts.as_slice() {
            ["median", n] => Ok(Rule::Median {
                min_trials: num(n)? as usize,
            }),
            ["asha", r, e] if num(r)? >= 1 && num(e)? >= 2 => Ok(Rule::Asha {
                min_steps: num(r)?,
                eta: num(e)?,
            }),
            _ => Err(format!(
                "--early-stop {s}: expected median:N or asha:MIN_STEPS:ETA (ETA >= 2)"
            )),
        }
    }

    /// Whether `step` is a rung where ASHA decides (every evaluation for the median rule).
    fn decides_at(self, step: u64) -> bool {
        match self {
            Rule::Median { .. } => true,
            Rule::Asha { min_steps, eta } => {
                let mut rung = min_steps;
                while rung < step {
                    rung = rung.saturating_mul(eta);
                }
                rung == step
            }
        }
    }
}

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
    /// Whether the run in `own` should stop after evaluating `accuracy` at `step`.
    fn should_stop(&self, own: &Path, step: u64, accuracy: f64) -> bool {
        if !self.rule.decides_at(step) {
            return false;
        }
        let finished_only = matches!(self.rule, Rule::Median { .. });
        let mut peers: Vec<f64> = super::manifest::run_dirs(&self.manifest)
            .into_iter()
            .filter(|dir| dir != own)
            .filter_map(|dir| Run::load(&dir).ok())
            .filter(|r| {
                !finished_only
                    || r.summary
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_and_asha_rungs() {
        for r in [
            Rule::Median { min_trials: 3 },
            Rule::Asha {
                min_steps: 100,
                eta: 3,
            },
        ] {
            assert_eq!(Rule::from_arg(&r.to_arg()).unwrap(), r);
        }
        assert!(Rule::from_arg("asha:100:1").is_err());
        let asha = Rule::Asha {
            min_steps: 100,
            eta: 3,
        };
        let rungs: Vec<u64> = (1..=1000).filter(|&s| asha.decides_at(s)).collect();
        assert_eq!(rungs, [100, 300, 900]);
    }
}
