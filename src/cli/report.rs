//! `runner ls`, `compare`, `diff` and `plot`: reading run directories back.

use super::args::{Output, ReportArgs, RunsDirArg};
use super::selection::SweepView;
use super::stdout::{out, outln};
use crate::error::{Error, Result};
use crate::report::runs::{self, Run};
use crate::report::table::Format;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Runs: names, name-<hash prefix>, hash prefixes, globs over run directory and
    /// experiment names, sweep files or sweep directories (default: all runs).
    pub patterns: Vec<String>,
    #[command(flatten)]
    pub common: ReportArgs,
    /// Keep runs whose config key (or tag.KEY) compares so: KEY=VALUE, KEY!=VALUE, and on
    /// numbers KEY<VALUE, KEY<=VALUE, KEY>VALUE, KEY>=VALUE (numbers compare by value: 1e-4 =
    /// 0.0001; quote the argument for the shell). Repeatable: all must hold.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<crate::report::ls::Filter>,
    /// Sort by a config key or one of test_acc, best_acc, test_loss, ms_per_step, steps, started
    /// (the default).
    #[arg(long, value_name = "KEY")]
    pub sort: Option<String>,
    /// Sort in descending order.
    #[arg(long)]
    pub desc: bool,
    /// Add columns: config keys (e.g. optimizer.lr,seed) or metrics (e.g. best_acc,val_acc);
    /// remove one with -NAME (e.g. --columns=-hash,-started,seed).
    #[arg(
        long,
        value_name = "COL,...",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub columns: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[arg(required = true)]
    pub runs: Vec<String>,
    #[command(flatten)]
    pub common: ReportArgs,
    /// Compare at this step (last evaluation at or before it) instead of the end.
    #[arg(long, value_name = "STEP")]
    pub at: Option<u64>,
    /// Add Welch's t-test p-value between the two best groups of seed replicates (on the
    /// sweep's metric when given a sweep, else test accuracy).
    #[arg(long)]
    pub stats: bool,
    /// Add config keys as columns, or remove columns written -NAME
    /// (e.g. --columns=seed,-wall_s,-train_loss).
    #[arg(
        long,
        value_name = "COL,...",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub columns: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PlotArgs {
    #[arg(required = true)]
    pub runs: Vec<String>,
    /// Output file: .svg or .png.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// EMA weight of the newest step for the loss curves (1 = no smoothing).
    #[arg(long, value_name = "ALPHA", default_value_t = 0.05)]
    pub smooth: f64,
    /// Logarithmic loss axes (ticks at round values).
    #[arg(long)]
    pub log_loss: bool,
    /// The panels, in order: loss (training), eval-loss (test, validation dashed), accuracy
    /// (test, validation dashed), lr. Runs that differ only in seed are one curve: the mean, with
    /// the min-max band.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "loss,eval-loss,accuracy,lr"
    )]
    pub panels: Vec<crate::report::plot::Panel>,
    /// Config keys whose values name the curves in the legend (e.g. --label optimizer.lr);
    /// default: every key that differs among the runs.
    #[arg(long, value_name = "KEY,...", value_delimiter = ',')]
    pub label: Vec<String>,
    #[command(flatten)]
    pub store: RunsDirArg,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub format: ExportFormat,
}

#[derive(Debug, clap::Subcommand)]
pub enum ExportFormat {
    /// TensorBoard event files: one directory per run with its scalars (train/loss,
    /// train/accuracy, train/lr per step; test/... and val/... per evaluation).
    #[command(
        after_help = "Example:\n  runner export tensorboard 'mlp-*' -o tb && tensorboard --logdir tb"
    )]
    Tensorboard {
        #[arg(required = true)]
        runs: Vec<String>,
        /// The directory to write (created if missing).
        #[arg(short, long, value_name = "DIR")]
        output: PathBuf,
        #[command(flatten)]
        store: RunsDirArg,
    },
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub run_a: String,
    pub run_b: String,
    #[command(flatten)]
    pub common: ReportArgs,
}

pub fn ls(args: LsArgs, out: Output) -> Result<()> {
    let (runs, warnings) = runs::discover(&args.common.store.runs_dir);
    warn(&warnings);
    // A sweep stands for its trials' runs, each named by its directory.
    let chosen = super::selection::expand(&args.patterns, &args.common.store.runs_dir)?;
    let globs = chosen
        .specs
        .iter()
        .map(|s| {
            let path = std::path::Path::new(s);
            match path.file_name() {
                Some(id) if path.join(crate::rundir::CONFIG).is_file() => {
                    id.to_string_lossy().into_owned()
                }
                _ => s.clone(),
            }
        })
        .collect();
    let query = crate::report::ls::Query {
        globs,
        filters: args.filters,
        sort: args.sort,
        desc: args.desc,
        columns: args.columns,
    };
    let table = crate::report::ls::list(&runs, &query).map_err(Error::Input)?;
    if table.rows.is_empty() && !(query.globs.is_empty() && query.filters.is_empty()) {
        // Exit 1, as grep does when nothing matches.
        return Err(Error::Failed(format!(
            "no run matches {} under {}",
            query.describe(),
            args.common.store.runs_dir.display()
        )));
    }
    if out.json || args.common.format == Format::Json {
        // The table's order, one run object per listed run (the same as every command's).
        for row in &table.rows {
            if let Some(r) = runs.iter().find(|r| r.id == row[0].text) {
                outln!("{}", r.json())?;
            }
        }
    } else {
        out!("{}", table.render(args.common.format))?;
    }
    Ok(())
}

pub fn compare(args: CompareArgs, out: Output) -> Result<()> {
    let (runs, sweep) = select_with_sweep(&args.runs, &args.common.store)?;
    if runs.is_empty() {
        return Err(Error::Input("no runs to compare".into()));
    }
    if out.json {
        print_runs(&runs)?;
        return Ok(());
    }
    // A sweep's own metric ranks its trials; else test accuracy.
    let sort = sweep
        .and_then(|s| s.metric)
        .unwrap_or((crate::report::metrics::Metric::TestAccuracy, true));
    let opts = crate::report::compare::Options {
        at: args.at,
        stats: args.stats,
        sort,
        columns: args.columns,
    };
    let (table, welch) = crate::report::compare::compare(&runs, &opts).map_err(Error::Input)?;
    let Some(welch) = welch else {
        return out!("{}", table.render(args.common.format));
    };
    // The test's result goes with the table in every format; CSV keeps only rows, so there it
    // goes to stderr.
    match args.common.format {
        Format::Table | Format::Markdown => {
            out!("{}", table.render(args.common.format))?;
            outln!("\n{}", welch.summary)
        }
        Format::Csv => {
            out!("{}", table.render(Format::Csv))?;
            crate::errln!("{}", welch.summary);
            Ok(())
        }
        Format::Json => {
            let rows: serde_json::Value =
                serde_json::from_str(&table.render(Format::Json)).expect("tables render JSON");
            let doc = serde_json::json!({
                "rows": rows,
                "welch": {"summary": welch.summary, "p": welch.p},
            });
            outln!("{}", serde_json::to_string_pretty(&doc).expect("JSON"))
        }
    }
}

pub fn diff(args: DiffArgs) -> Result<()> {
    let pick = |spec: &String| -> Result<Run> {
        let runs = select(std::slice::from_ref(spec), &args.common.store)?;
        match runs.len() {
            1 => Ok(runs.into_iter().next().expect("one run")),
            0 => Err(Error::Input(format!("'{spec}' is not a run directory"))),
            n => Err(Error::Input(format!(
                "'{spec}' matches {n} runs; diff needs exactly one each"
            ))),
        }
    };
    let (a, b) = (pick(&args.run_a)?, pick(&args.run_b)?);
    let table = crate::report::diff::diff(&a, &b);
    if table.rows.is_empty() && args.common.format == Format::Table {
        outln!(
            "identical: {} and {} have the same resolved config",
            a.id,
            b.id
        )?;
        return Ok(());
    }
    out!("{}", table.render(args.common.format))?;
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<()> {
    let ExportFormat::Tensorboard {
        runs,
        output,
        store,
    } = args.format;
    let runs = select(&runs, &store)?;
    let files = crate::report::tensorboard::export(&runs, &output).map_err(Error::Input)?;
    for f in &files {
        outln!("{}", f.display())?;
    }
    Ok(())
}

pub fn plot(args: PlotArgs) -> Result<()> {
    let runs = select(&args.runs, &args.store)?;
    let opts = crate::report::plot::PlotOptions {
        smoothing: args.smooth,
        log_loss: args.log_loss,
        panels: args.panels,
        label: args.label,
    };
    crate::report::plot::plot(&runs, &args.output, opts).map_err(Error::Input)?;
    crate::errln!("wrote {}", args.output.display());
    Ok(())
}

/// The runs `specs` name (sweep files and directories: their trials' runs), warnings about
/// skipped directories on stderr.
pub(super) fn select(specs: &[String], store: &RunsDirArg) -> Result<Vec<Run>> {
    Ok(select_with_sweep(specs, store)?.0)
}

/// [`select`], with the sweep named, if one was.
pub(super) fn select_with_sweep(
    specs: &[String],
    store: &RunsDirArg,
) -> Result<(Vec<Run>, Option<SweepView>)> {
    let chosen = super::selection::expand(specs, &store.runs_dir)?;
    let (runs, warnings) = runs::select(&chosen.specs, &store.runs_dir).map_err(Error::Input)?;
    warn(&warnings);
    Ok((runs, chosen.sweep))
}

/// One `--json` object per run.
pub fn print_runs(runs: &[Run]) -> Result<()> {
    for r in runs {
        outln!("{}", r.json())?;
    }
    Ok(())
}

fn warn(warnings: &[String]) {
    for w in warnings {
        crate::errln!("warning: {w}");
    }
}
