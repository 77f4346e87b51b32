//! `runner ls`, `compare`, `diff` and `plot`: reading run directories back.

use super::args::{Output, ReportArgs, RunsDirArg};
use super::stdout::{out, outln};
use crate::error::{Error, Result};
use crate::report::runs::{self, Run};
use crate::report::table::Format;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Runs: names, name-<hash prefix>, hash prefixes, or globs over run directory and
    /// experiment names (default: all runs).
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
    /// Add columns: config keys (e.g. optimizer.lr,seed) or metrics (e.g. best_acc,val_acc).
    /// The keys that differ among the listed runs are always shown.
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
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
    /// Add Welch's t-test p-value between the two best groups of seed replicates.
    #[arg(long)]
    pub stats: bool,
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
    let query = crate::report::ls::Query {
        globs: args.patterns,
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
    if out.json {
        // The table's order, one object per listed run.
        for row in &table.rows {
            if let Some(r) = runs.iter().find(|r| r.id == row[0].text) {
                outln!("{}", crate::rundir::run_json(&r.dir, r.summary.as_ref()))?;
            }
        }
    } else {
        out!("{}", table.render(args.common.format))?;
    }
    Ok(())
}

pub fn compare(args: CompareArgs, out: Output) -> Result<()> {
    let runs = select(&args.runs, &args.common.store)?;
    if runs.is_empty() {
        return Err(Error::Input("no runs to compare".into()));
    }
    if out.json {
        print_runs(&runs)?;
        return Ok(());
    }
    let (table, welch) = crate::report::compare::compare(&runs, args.at, args.stats);
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
    };
    crate::report::plot::plot(&runs, &args.output, opts).map_err(Error::Input)?;
    crate::errln!("wrote {}", args.output.display());
    Ok(())
}

/// The runs that `specs` name, warning about directories that are not runs.
/// The runs `specs` name, warnings about skipped directories on stderr.
pub(super) fn select(specs: &[String], store: &RunsDirArg) -> Result<Vec<Run>> {
    let (runs, warnings) = runs::select(specs, &store.runs_dir).map_err(Error::Input)?;
    warn(&warnings);
    Ok(runs)
}

/// One `--json` object per run.
pub fn print_runs(runs: &[Run]) -> Result<()> {
    for r in runs {
        outln!("{}", crate::rundir::run_json(&r.dir, r.summary.as_ref()))?;
    }
    Ok(())
}

fn warn(warnings: &[String]) {
    for w in warnings {
        crate::errln!("warning: {w}");
    }
}
