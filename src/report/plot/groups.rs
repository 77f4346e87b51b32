//! What a plot draws: runs grouped as `compare` groups them (configs equal but for `seed`),
//! each curve the mean over the group's runs with the min-max band around it.

use crate::report::compare::differing_keys;
use crate::report::runs::Run;
use std::collections::BTreeMap;

/// One curve: at each step, the mean over the runs that have it, and their min and max.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Band {
    pub points: Vec<BandPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BandPoint {
    pub step: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Band {
    /// The band of several runs' curves (`(step, value)` each).
    fn of(curves: &[Vec<(f64, f64)>]) -> Band {
        let mut at: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for curve in curves {
            for &(step, value) in curve {
                if value.is_finite() {
                    at.entry(step as u64).or_default().push(value);
                }
            }
        }
        Band {
            points: at
                .into_iter()
                .map(|(step, vs)| BandPoint {
                    step: step as f64,
                    mean: vs.iter().sum::<f64>() / vs.len() as f64,
                    min: vs.iter().copied().fold(f64::INFINITY, f64::min),
                    max: vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Every value the band spans, for the axis range.
    pub fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.points.iter().flat_map(|p| [p.min, p.max])
    }
}

/// A group's curves, one per panel.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// What differs between groups (`optimizer.lr=0.1 seed=...`), or the run id.
    pub label: String,
    pub train_loss: Band,
    pub test_loss: Band,
    pub val_loss: Band,
    pub test_accuracy: Band,
    pub val_accuracy: Band,
    pub lr: Band,
}

/// Groups `runs` by config without `seed`, in the order of their first run; `smoothing` is the
/// EMA weight of each run's training loss before averaging. Legends name the values of `label`
/// keys, by default the keys that differ.
pub fn groups(runs: &[Run], smoothing: f64, label: &[String]) -> Vec<Group> {
    let refs: Vec<&Run> = runs.iter().collect();
    let keys: Vec<String> = if label.is_empty() {
        differing_keys(&refs)
            .into_iter()
            .filter(|k| k != "seed")
            .collect()
    } else {
        label.to_vec()
    };
    let mut order: Vec<Vec<&Run>> = Vec::new();
    let mut index: BTreeMap<Vec<(String, String)>, usize> = BTreeMap::new();
    for run in runs {
        let i = *index.entry(run.config_without_seed()).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[i].push(run);
    }
    order
        .into_iter()
        .map(|members| group(&members, &keys, smoothing))
        .collect()
}

fn group(members: &[&Run], keys: &[String], smoothing: f64) -> Group {
    let first = members[0];
    let mut label = if keys.is_empty() && members.len() > 1 {
        first.name.clone()
    } else if keys.is_empty() {
        first.id.clone()
    } else {
        keys.iter()
            .map(|k| {
                let v = first.config.get(k).map_or("-", |v| v.trim_matches('"'));
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    if members.len() > 1 {
        label += &format!(" (n={}: mean, min-max band)", members.len());
    }
    let curves = |f: &dyn Fn(&Run) -> Vec<(f64, f64)>| -> Band {
        Band::of(&members.iter().map(|r| f(r)).collect::<Vec<_>>())
    };
    let steps: Vec<Vec<crate::report::runs::StepRow>> =
        members.iter().map(|r| r.steps(None)).collect();
    let by_run = |f: &dyn Fn(&crate::report::runs::StepRow, &mut Option<f64>) -> f64| -> Band {
        Band::of(
            &steps
                .iter()
                .map(|rows| {
                    let mut state = None;
                    rows.iter()
                        .filter(|r| r.loss.is_finite())
                        .map(|r| (r.step as f64, f(r, &mut state)))
                        .collect()
                })
                .collect::<Vec<_>>(),
        )
    };
    Group {
        label,
        train_loss: by_run(&|r, ema| {
            let e = ema.map_or(r.loss, |e| (1.0 - smoothing) * e + smoothing * r.loss);
            *ema = Some(e);
            e
        }),
        lr: by_run(&|r, _| r.lr),
        test_loss: curves(&|r| {
            r.evals
                .iter()
                .map(|e| (e.step as f64, e.test_loss))
                .collect()
        }),
        test_accuracy: curves(&|r| {
            r.evals
                .iter()
                .map(|e| (e.step as f64, 100.0 * e.test_accuracy))
                .collect()
        }),
        val_loss: curves(&|r| {
            r.evals
                .iter()
                .filter_map(|e| e.val.map(|(l, _)| (e.step as f64, l)))
                .collect()
        }),
        val_accuracy: curves(&|r| {
            r.evals
                .iter()
                .filter_map(|e| e.val.map(|(_, a)| (e.step as f64, 100.0 * a)))
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_band_is_the_mean_min_and_max_at_each_step() {
        let band = Band::of(&[
            vec![(1.0, 1.0), (2.0, 4.0)],
            vec![(1.0, 3.0), (2.0, 2.0)],
            vec![(1.0, 2.0)],
        ]);
        assert_eq!(
            band.points,
            [
                BandPoint {
                    step: 1.0,
                    mean: 2.0,
                    min: 1.0,
                    max: 3.0
                },
                BandPoint {
                    step: 2.0,
                    mean: 3.0,
                    min: 2.0,
                    max: 4.0
                }
            ]
        );
    }
}
