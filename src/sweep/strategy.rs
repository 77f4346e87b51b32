//! Sweep strategies: what to run next. A strategy proposes the trial at an index from the trials
//! that have ended; where trials run (here, or Slurm workers) is the study's and the launcher's
//! business, so every strategy runs on every launcher. Adding one = a type implementing
//! [`Strategy`] and its arm in `cli/sweep.rs`.

use super::spec::{Distribution, Tpe, Trial};
use super::tpe::{self, Observation, Space};
use super::Planned;
use crate::config::Override;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The parameters of a trial as the journal records them: key to JSON value.
pub type Params = serde_json::Map<String, serde_json::Value>;

/// A trial that ended: its parameters and the sweep's metric (none if its run did not record
/// it), in the order trials ended.
pub struct Ended<'a> {
    pub params: &'a Params,
    pub metric: Option<f64>,
}

/// What a strategy proposes for one trial.
pub struct Proposal {
    /// What the journal records (and what `sweep status` shows per axis).
    pub params: Params,
    /// The trial's overrides of the base experiment, `[set]` included.
    pub overrides: Trial,
}

/// Proposes trials.
pub trait Strategy: Sync {
    /// How many trials the sweep runs.
    fn budget(&self) -> usize;
    /// The keys a trial's parameters have, in order (the columns of `sweep status`).
    fn axes(&self) -> Vec<String>;
    /// Trial `trial`, given the trials that ended and the parameters of those still running.
    /// The same inputs give the same proposal, so replaying the journal proposes the same
    /// trials.
    fn propose(&self, trial: usize, ended: &[Ended], running: &[&Params]) -> Proposal;
    /// Whether every proposal is known before any trial ends (grid, zip, random): such trials
    /// can be proposed in any order, and those whose run is already decided are recorded
    /// without running.
    fn is_fixed(&self) -> bool {
        false
    }
}

/// Grid, zip and random sweeps: the trials expanded from the sweep file, in order.
pub struct Fixed<'a> {
    pub planned: &'a [Planned],
}

impl Strategy for Fixed<'_> {
    fn budget(&self) -> usize {
        self.planned.len()
    }

    fn axes(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for o in self.planned.iter().flat_map(|p| &p.overrides) {
            if !keys.contains(&o.key) {
                keys.push(o.key.clone());
            }
        }
        keys
    }

    fn propose(&self, trial: usize, _ended: &[Ended], _running: &[&Params]) -> Proposal {
        let overrides = self.planned[trial].overrides.clone();
        let params = overrides
            .iter()
            .map(|o| {
                let v = o.value.as_ref().map_or(serde_json::Value::Null, |v| {
                    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
                });
                (o.key.clone(), v)
            })
            .collect();
        Proposal { params, overrides }
    }

    fn is_fixed(&self) -> bool {
        true
    }
}

/// `[tpe]`: the Tree-structured Parzen Estimator over the sweep's distributions.
pub struct TpeSearch<'a> {
    pub tpe: &'a Tpe,
    /// `[set]`: the overrides every trial carries.
    pub set: &'a [Override],
    pub maximize: bool,
    /// The base experiment's seed after `[set]`: trial `i` trains at this plus `i` with
    /// `seed_per_trial`.
    pub base_seed: u64,
}

impl Strategy for TpeSearch<'_> {
    fn budget(&self) -> usize {
        self.tpe.trials
    }

    fn axes(&self) -> Vec<String> {
        self.tpe.axes.iter().map(|(k, _)| k.clone()).collect()
    }

    /// From the finished trials in the order they finished and the running ones, with the
    /// random stream of that trial.
    fn propose(&self, trial: usize, ended: &[Ended], running: &[&Params]) -> Proposal {
        let sign = if self.maximize { -1.0 } else { 1.0 };
        let values = |params: &Params| {
            self.tpe
                .axes
                .iter()
                .map(|(k, d)| from_json(d, params.get(k)?))
                .collect::<Option<Vec<f64>>>()
        };
        let observed: Vec<Observation> = ended
            .iter()
            .filter_map(|e| {
                Some(Observation {
                    params: values(e.params)?,
                    loss: sign * e.metric?,
                })
            })
            .collect();
        let running: Vec<Vec<f64>> = running.iter().filter_map(|p| values(p)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.tpe.seed);
        rng.set_stream(trial as u64);
        let x = tpe::propose(
            &space(self.tpe),
            &observed,
            &running,
            self.tpe.startup,
            &self.tpe.options,
            &mut rng,
        );
        let params: Params = self
            .tpe
            .axes
            .iter()
            .zip(x)
            .map(|((k, d), x)| {
                let v = serde_json::to_value(to_toml(d, x)).unwrap_or(serde_json::Value::Null);
                (k.clone(), v)
            })
            .collect();
        let mut overrides = self.set.to_vec();
        if self.tpe.options.seed_per_trial {
            let seed = self.base_seed.wrapping_add(trial as u64);
            overrides.push(Override::set("seed", toml::Value::Integer(seed as i64)));
        }
        for (k, d) in &self.tpe.axes {
            if let Some(x) = params.get(k).and_then(|v| from_json(d, v)) {
                overrides.push(Override::set(k, to_toml(d, x)));
            }
        }
        Proposal { params, overrides }
    }
}

/// The search space of the estimator, axis by axis.
fn space(tpe: &Tpe) -> Vec<Space> {
    tpe.axes
        .iter()
        .map(|(_, d)| match d {
            Distribution::Uniform(lo, hi) => Space::Float {
                lo: *lo,
                hi: *hi,
                log: false,
            },
            Distribution::LogUniform(lo, hi) => Space::Float {
                lo: *lo,
                hi: *hi,
                log: true,
            },
            Distribution::IntRange(lo, hi) => Space::Int { lo: *lo, hi: *hi },
            Distribution::Choice(c) => Space::Choice(c.len()),
        })
        .collect()
}

/// The estimator's value of an axis as the TOML value a trial sets, and back.
fn to_toml(d: &Distribution, x: f64) -> toml::Value {
    match d {
        Distribution::Uniform(..) | Distribution::LogUniform(..) => toml::Value::Float(x),
        Distribution::IntRange(..) => toml::Value::Integer(x as i64),
        Distribution::Choice(c) => c[x as usize].clone(),
    }
}

fn from_json(d: &Distribution, v: &serde_json::Value) -> Option<f64> {
    match d {
        Distribution::Choice(c) => c
            .iter()
            .position(|item| serde_json::to_value(item).ok().as_ref() == Some(v))
            .map(|i| i as f64),
        _ => v.as_f64(),
    }
}
