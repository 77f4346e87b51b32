//! What a command's run arguments name, sweeps included: a sweep file or a sweep directory
//! stands for its trials' run directories (those that exist), and brings its name, the keys it
//! varies and its metric, which `compare` and `report` rank by.

use crate::error::{Error, Result};
use crate::report::metrics::Metric;
use crate::sweep::{self as sw, journal, manifest, spec, study};
use std::path::{Path, PathBuf};

/// Run arguments with sweeps replaced by their trials' run directories.
#[derive(Default)]
pub struct Chosen {
    pub specs: Vec<String>,
    pub sweep: Option<SweepView>,
}

/// A named sweep: its name, the keys it varies, and its metric and goal (a sweep file has them;
/// a sweep directory does not).
pub struct SweepView {
    pub name: String,
    pub axes: Vec<String>,
    pub metric: Option<(Metric, bool)>,
}

/// Sweep files and sweep directories replaced by their trials' run directories (those that
/// exist); other arguments kept as they are. A sweep none of whose trials has started is an
/// error (it would otherwise select nothing, or everything where no argument means all).
pub fn expand(specs: &[String], runs_dir: &Path) -> Result<Chosen> {
    let mut chosen = Chosen::default();
    for s in specs {
        let Some((view, dirs)) = sweep_trials(Path::new(s), runs_dir)? else {
            chosen.specs.push(s.clone());
            continue;
        };
        let started: Vec<String> = dirs
            .iter()
            .filter(|d| d.join(crate::rundir::CONFIG).is_file())
            .map(|d| d.display().to_string())
            .collect();
        if started.is_empty() {
            return Err(Error::Input(format!(
                "{s}: the sweep has no trial that has started (runner sweep {s} runs them)"
            )));
        }
        chosen.specs.extend(started);
        chosen.sweep = Some(view);
    }
    Ok(chosen)
}

/// The sweep `path` names, with its trials' run directories; `None` when it is not a sweep.
fn sweep_trials(path: &Path, runs_dir: &Path) -> Result<Option<(SweepView, Vec<PathBuf>)>> {
    if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let is_sweep = text
            .parse::<toml::Table>()
            .is_ok_and(|t| runner_spec::sweep::is_sweep(&t));
        if !is_sweep {
            return Ok(None);
        }
        let sweep = spec::load(path).map_err(Error::Input)?;
        let metric = Some((sweep.metric, sweep.maximize));
        let (trials, dirs) = match &sweep.tpe {
            Some(tpe) => journal_trials(&study::sweep_dir(&sweep, tpe, runs_dir)?, runs_dir),
            None => {
                let planned = sw::plan(&sweep, runs_dir)?;
                let trials = planned
                    .iter()
                    .map(|p| {
                        p.overrides
                            .iter()
                            .map(|o| (o.key.clone(), o.to_string()))
                            .collect()
                    })
                    .collect();
                (trials, planned.into_iter().map(|p| p.dir.path).collect())
            }
        };
        let name = sweep.name.clone();
        return Ok(Some((view(name, trials, metric), dirs)));
    }
    let name = || {
        path.file_name().map_or(String::new(), |n| {
            let n = n.to_string_lossy();
            n.rsplit_once('-')
                .map_or(n.to_string(), |(name, _)| name.into())
        })
    };
    if path.join(manifest::FILE).is_file() {
        let entries = manifest::read(&path.join(manifest::FILE))?;
        let trials = entries
            .iter()
            .map(|e| {
                e.overrides
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            })
            .collect();
        let dirs = entries.into_iter().map(|e| e.run_dir).collect();
        return Ok(Some((view(name(), trials, None), dirs)));
    }
    if path.join(journal::FILE).is_file() {
        let (trials, dirs) = journal_trials(path, runs_dir);
        return Ok(Some((view(name(), trials, None), dirs)));
    }
    Ok(None)
}

type Trials = Vec<Vec<(String, String)>>;

/// The trials a `[tpe]` sweep's journal has proposed: their parameters and run directories.
fn journal_trials(sweep_dir: &Path, runs_dir: &Path) -> (Trials, Vec<PathBuf>) {
    let (records, _) = study::trials(&journal::Journal::new(sweep_dir).read());
    records
        .values()
        .map(|r| {
            let params = r
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            (params, runs_dir.join(&r.run))
        })
        .unzip()
}

fn view(name: String, trials: Trials, metric: Option<(Metric, bool)>) -> SweepView {
    SweepView {
        name,
        axes: crate::report::html::plotted_keys(&varied(&trials)),
        metric,
    }
}

/// The keys whose values differ among the trials, in first-seen order: the sweep's axes,
/// without the keys its `[set]` gives every trial.
fn varied(trials: &Trials) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for (k, _) in trials.iter().flatten() {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    keys.retain(|k| {
        let value =
            |t: &Vec<(String, String)>| t.iter().find(|(key, _)| key == k).map(|p| p.1.clone());
        let first = trials.first().and_then(value);
        trials.iter().any(|t| value(t) != first)
    });
    keys
}
