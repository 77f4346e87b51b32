//! `runner report`: the HTML report of runs, a sweep file's trials or a sweep directory's.

use super::args::RunsDirArg;
use crate::error::{Error, Result};
use crate::report::html::{self, Options};
use crate::report::metrics::Metric;
use crate::report::runs::Run;
use crate::sweep::{self as sw, manifest, spec};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Runs as other commands take them (names, hash prefixes, globs, directories), a sweep
    /// file (its trials) or a sweep directory (runs/sweeps/NAME-HASH).
    #[arg(required = true)]
    pub runs: Vec<String>,
    /// The HTML file to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The metric the sweep plots show: a sweep's own metric by default, else val_accuracy when
    /// every run has a validation split, else best_test_accuracy.
    #[arg(long, value_name = "METRIC")]
    pub metric: Option<String>,
    #[command(flatten)]
    pub store: RunsDirArg,
}

/// What the arguments name: run directories, and the sweep they come from if one was named.
#[derive(Default)]
struct Chosen {
    specs: Vec<String>,
    sweep: Option<SweepView>,
}

/// A named sweep: its name, the keys it varies, and its metric and goal (a sweep file has them;
/// a sweep directory does not).
struct SweepView {
    name: String,
    axes: Vec<String>,
    metric: Option<(Metric, bool)>,
}

pub fn report(args: ReportArgs) -> Result<()> {
    let chosen = expand(&args.runs, &args.store.runs_dir)?;
    let runs = super::report::select(&chosen.specs, &args.store)?;
    if runs.is_empty() {
        return Err(Error::Input(
            "nothing to report: the sweep has no trial that has started".into(),
        ));
    }
    let (sweep, axes, sweep_metric) = match chosen.sweep {
        Some(s) => (Some(s.name), Some(s.axes), s.metric),
        None => (None, None, None),
    };
    let (metric, maximize) = match &args.metric {
        Some(name) => {
            let m = Metric::parse(name).ok_or_else(|| {
                let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
                Error::Input(format!(
                    "--metric {name}: not a metric (one of {})",
                    names.join(", ")
                ))
            })?;
            (m, m.higher_is_better())
        }
        None => sweep_metric.unwrap_or_else(|| default_metric(&runs)),
    };
    let opts = Options {
        source: std::iter::once("runner".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        made_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        metric,
        maximize,
        axes,
        sweep,
    };
    let page = html::render(&runs, &opts);
    crate::rundir::atomic::write(&args.output, page.as_bytes())?;
    crate::errln!(
        "wrote {} ({} runs, {} KB)",
        args.output.display(),
        runs.len(),
        page.len().div_ceil(1024)
    );
    Ok(())
}

fn default_metric(runs: &[Run]) -> (Metric, bool) {
    if runs.iter().all(|r| r.evals.iter().any(|e| e.val.is_some())) {
        (Metric::ValAccuracy, true)
    } else {
        (Metric::BestTestAccuracy, true)
    }
}

/// Sweep files and sweep directories replaced by their trials' run directories (those that
/// exist); other arguments kept as they are.
fn expand(specs: &[String], runs_dir: &Path) -> Result<Chosen> {
    let mut chosen = Chosen::default();
    for s in specs {
        let path = Path::new(s);
        let trials = if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            let sweep = spec::load(path).map_err(Error::Input)?;
            let planned = sw::plan(&sweep, runs_dir)?;
            let keys = varied(planned.iter().map(|p| {
                p.overrides
                    .iter()
                    .map(|o| (o.key.clone(), o.to_string()))
                    .collect()
            }));
            let dirs = planned.into_iter().map(|p| p.dir.path).collect();
            let metric = (sweep.metric, sweep.maximize);
            Some((sweep.name, keys, dirs, Some(metric)))
        } else if path.join(manifest::FILE).is_file() {
            let entries = manifest::read(&path.join(manifest::FILE))?;
            let keys = varied(entries.iter().map(|e| {
                e.overrides
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect()
            }));
            let name = path.file_name().map_or(String::new(), |n| {
                let n = n.to_string_lossy();
                n.rsplit_once('-')
                    .map_or(n.to_string(), |(name, _)| name.into())
            });
            let dirs = entries.into_iter().map(|e| e.run_dir).collect();
            Some((name, keys, dirs, None))
        } else {
            None
        };
        match trials {
            Some((name, keys, dirs, metric)) => {
                let dirs: Vec<PathBuf> = dirs;
                chosen.specs.extend(
                    dirs.iter()
                        .filter(|d| d.join(crate::rundir::CONFIG).is_file())
                        .map(|d| d.display().to_string()),
                );
                chosen.sweep = Some(SweepView {
                    name,
                    axes: html::plotted_keys(&keys),
                    metric,
                });
            }
            None => chosen.specs.push(s.clone()),
        }
    }
    Ok(chosen)
}

/// The keys whose values differ among the trials (`(key, value)` lists), in first-seen order:
/// the sweep's axes, without the keys its `[set]` gives every trial.
fn varied(trials: impl Iterator<Item = Vec<(String, String)>>) -> Vec<String> {
    let trials: Vec<Vec<(String, String)>> = trials.collect();
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
