//! `runner report`: the HTML report of runs, a sweep file's trials or a sweep directory's.

use super::args::RunsDirArg;
use crate::error::{Error, Result};
use crate::report::html::{self, Options};
use crate::report::metrics::Metric;
use crate::report::runs::Run;
use clap::Args;
use std::path::PathBuf;

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

pub fn report(args: ReportArgs) -> Result<()> {
    let (runs, sweep) = super::report::select_with_sweep(&args.runs, &args.store)?;
    if runs.is_empty() {
        return Err(Error::Input(
            "nothing to report: the sweep has no trial that has started".into(),
        ));
    }
    let (sweep, axes, sweep_metric) = match sweep {
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
