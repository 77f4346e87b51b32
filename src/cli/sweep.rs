//! `runner sweep` (run, dry run, status, Slurm submission) and `runner slurm-task`.

use super::args::{Output, RunsDirArg, SlurmArgs};
use super::stdout::{out, outln};
use super::sweep_output::report_submission;
use super::sweep_study;
use crate::error::{Error, Result};
use crate::sweep::journal::Journal;
use crate::sweep::strategy::{Fixed, TpeSearch};
use crate::sweep::study::{self, Study};
use crate::sweep::{self as sw, manifest, slurm, spec, Planned};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    pub action: Option<SweepAction>,
    /// The sweep file (TOML).
    #[arg(required = true, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Trials to run at once; the cores are split between them.
    #[arg(short = 'j', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
    /// Print the trials, their run directories and which are done; run nothing (with
    /// --slurm: also write the sbatch script, without submitting it).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub store: RunsDirArg,
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// What each array task of `--slurm --workers` runs: one worker of the sweep whose
    /// directory has this name (a sweep file edited since submission is refused, not started
    /// as a new sweep).
    #[arg(
        long,
        value_name = "SWEEP_DIR_NAME",
        hide = true,
        conflicts_with = "slurm"
    )]
    pub slurm_worker: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SweepAction {
    /// Each trial's state (done, pruned, running, failed, missing), and what Slurm says of it.
    Status {
        /// The sweep file (TOML).
        file: PathBuf,
        #[command(flatten)]
        store: RunsDirArg,
    },
}

#[derive(Debug, Args)]
pub struct SlurmTaskArgs {
    /// The sweep's manifest.jsonl.
    pub manifest: PathBuf,
    /// The array task: runs trials TASK*PACK .. TASK*PACK+PACK-1.
    #[arg(long)]
    pub task: usize,
    /// Trials per array task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub pack: u32,
    #[command(flatten)]
    pub store: RunsDirArg,
}

/// A grid, zip or random sweep file's trials, planned against the runs directory, and the
/// sweep's own directory.
struct Loaded {
    sweep: spec::Sweep,
    planned: Vec<Planned>,
    dir: PathBuf,
}

fn load(sweep: spec::Sweep, runs_dir: &Path) -> Result<Loaded> {
    let planned = sw::plan(&sweep, runs_dir)?;
    let dir = sw::sweep_dir(&sweep, &planned, runs_dir);
    Ok(Loaded {
        sweep,
        planned,
        dir,
    })
}

/// `runner sweep`: the strategy from the file (`[tpe]`, else the trials it expands to), then a
/// launcher: pulling workers here, pulling workers on Slurm (`--workers`), or one Slurm array
/// task per trial (grid, zip, random only).
pub fn sweep(args: SweepArgs, out: Output) -> Result<()> {
    if let Some(SweepAction::Status { file, store }) = &args.action {
        return status(file, &store.runs_dir, out);
    }
    let file = args
        .file
        .as_deref()
        .expect("clap requires FILE without a subcommand");
    let runs_dir = &args.store.runs_dir;
    let parsed = spec::load(file).map_err(Error::Input)?;
    networks_first(&parsed, file, args.dry_run)?;
    if let Some(tpe) = &parsed.tpe {
        return with_tpe_study(&parsed, tpe, runs_dir, |study| {
            if args.dry_run && !args.slurm.slurm {
                return print_search(study, tpe);
            }
            if args.slurm.slurm && args.slurm.workers.is_none() {
                return Err(Error::Input(format!(
                    "{}: a [tpe] sweep runs on Slurm as pulling workers: add --workers K (K \
                     array tasks that each take trials from the journal until the {} trials \
                     are done)",
                    file.display(),
                    tpe.trials
                )));
            }
            launch(study, &args, file, out)
        });
    }
    let s = load(parsed, runs_dir)?;
    if args.dry_run && !args.slurm.slurm {
        return print_plan(&s);
    }
    if args.slurm.slurm && args.slurm.workers.is_none() {
        return submit_array(&s, runs_dir, args.slurm, args.dry_run, out);
    }
    if args.slurm_worker.is_none() && !args.dry_run {
        // Early stopping reads every trial's siblings from it, and Slurm workers need it.
        manifest::write(&s.dir, &s.sweep, &s.planned)?;
    }
    let study = Study {
        sweep: &s.sweep,
        strategy: &Fixed {
            planned: &s.planned,
        },
        runs_dir,
        dir: s.dir.clone(),
    };
    launch(&study, &args, file, out)
}

/// The study of a `[tpe]` sweep, handed to `then`.
fn with_tpe_study<T>(
    parsed: &spec::Sweep,
    tpe: &spec::Tpe,
    runs_dir: &Path,
    then: impl FnOnce(&Study) -> Result<T>,
) -> Result<T> {
    let base_seed = if tpe.options.seed_per_trial {
        crate::config::load(&parsed.base, &parsed.set)?.seed
    } else {
        0
    };
    let search = TpeSearch {
        tpe,
        set: &parsed.set,
        maximize: parsed.maximize,
        base_seed,
    };
    then(&Study {
        sweep: parsed,
        strategy: &search,
        runs_dir,
        dir: study::sweep_dir(parsed, tpe, runs_dir)?,
    })
}

/// The pulling workers: one of a Slurm submission, K submitted to Slurm, or `-j` here.
fn launch(study: &Study, args: &SweepArgs, file: &Path, out: Output) -> Result<()> {
    if let Some(name) = &args.slurm_worker {
        return sweep_study::work_in_slurm(study, name, file, out);
    }
    if let (true, Some(workers)) = (args.slurm.slurm, args.slurm.workers) {
        let slurm = args.slurm.clone();
        return sweep_study::submit(study, file, workers, slurm, args.dry_run, out);
    }
    sweep_study::run(study, args.jobs as usize, out)
}

/// `sweep status`: a `[tpe]` sweep's journal, or a planned sweep's trials and what Slurm says
/// of them.
fn status(file: &Path, runs_dir: &Path, out: Output) -> Result<()> {
    let parsed = spec::load(file).map_err(Error::Input)?;
    if let Some(tpe) = &parsed.tpe {
        return with_tpe_study(&parsed, tpe, runs_dir, |study| {
            sweep_study::status(study, out)
        });
    }
    let s = load(parsed, runs_dir)?;
    if out.json {
        for p in &s.planned {
            outln!("{}", trial_json(p, s.sweep.metric))?;
        }
        return Ok(());
    }
    outln!("{}", sw::status_line(&s.planned))?;
    out!(
        "{}",
        trial_table(&s).render(crate::report::table::Format::Table)
    )?;
    out!("{}", slurm::status(&s.planned, &s.dir))?;
    Ok(())
}

/// The `--dry-run` line of a `[tpe]` sweep: its budget and how far it is.
fn print_search(study: &Study, tpe: &spec::Tpe) -> Result<()> {
    outln!(
        "[tpe] sweep {}: {} trials proposed one at a time ({} at random first), {} proposed so \
         far",
        study.sweep.name,
        tpe.trials,
        tpe.startup,
        study.records().len()
    )?;
    outln!(
        "dry run: nothing written; running the sweep appends to {}",
        Journal::new(&study.dir).path.display()
    )
}

/// Every network the sweep can train is compiled in before its first trial (or the error that
/// makes `runner` build them all at once). A dry run lists them on stderr, and whether each is
/// compiled in (stdout keeps the plan alone, for scripts).
fn networks_first(sweep: &spec::Sweep, file: &Path, dry_run: bool) -> Result<()> {
    let networks = runner_spec::catalog::sweep_networks(sweep).map_err(Error::Input)?;
    if !dry_run {
        return crate::models::require(&networks, file);
    }
    let compiled = |n: &runner_spec::network::Network| crate::models::find(&n.key()).is_some();
    let missing = networks.iter().filter(|n| !compiled(n)).count();
    let mut text = format!(
        "networks: {} ({})\n",
        networks.len(),
        if missing == 0 {
            "all compiled in".to_string()
        } else {
            format!("{missing} not compiled in: the sweep builds them before its first trial")
        }
    );
    for n in &networks {
        let state = if compiled(n) { "compiled" } else { "to build" };
        text += &format!("  {state:<9} [model] {n}\n");
    }
    crate::errln!("{}", text.trim_end());
    Ok(())
}

/// A trial's row of `sweep status`: its state, steps, the sweep's metric and overrides.
struct TrialView {
    state: sw::TrialState,
    steps: Option<(u64, u64)>,
    metric: Option<f64>,
}

fn trial_view(p: &Planned, metric: crate::report::metrics::Metric) -> TrialView {
    use crate::report::metrics::ReadMetric;
    let run = crate::report::runs::Run::load(&p.dir.path).ok();
    let summary = run.as_ref().and_then(|r| r.summary.as_ref());
    TrialView {
        state: p.state(),
        steps: run
            .as_ref()
            .zip(summary)
            .map(|(r, s)| (r.steps_done(), s.steps)),
        metric: summary.and_then(|s| metric.read(&crate::report::metrics::recorded(s))),
    }
}

/// One JSON object per trial: `index`, `state`, `run`, `steps_done`, `steps`, the metric by its
/// name, and `overrides` (key to value as given).
fn trial_json(p: &Planned, metric: crate::report::metrics::Metric) -> serde_json::Value {
    let v = trial_view(p, metric);
    let overrides: serde_json::Map<String, serde_json::Value> = p
        .overrides
        .iter()
        .map(|o| {
            // TOML values as JSON values: numbers stay numbers.
            let value = serde_json::to_value(&o.value).unwrap_or_else(|_| o.to_string().into());
            (o.key.clone(), value)
        })
        .collect();
    serde_json::json!({
        "index": p.index,
        "state": v.state.word(),
        "run": p.id(),
        "steps_done": v.steps.map(|s| s.0),
        "steps": v.steps.map(|s| s.1),
        metric.name(): v.metric,
        "overrides": overrides,
    })
}

fn trial_table(s: &Loaded) -> crate::report::table::Table {
    use crate::report::table::{Cell, Table};
    let metric = s.sweep.metric;
    let mut table = Table {
        headers: [
            "trial",
            "state",
            "steps",
            metric.column(),
            "run",
            "overrides",
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    for p in &s.planned {
        let v = trial_view(p, metric);
        let (scale, decimals, unit) = metric.format();
        table.rows.push(vec![
            Cell::text(p.index.to_string()),
            Cell::text(v.state.word()),
            v.steps
                .map_or_else(Cell::empty, |(d, t)| Cell::text(format!("{d}/{t}"))),
            v.metric.map_or_else(Cell::empty, |m| {
                Cell::text(format!("{:.*}{unit}", decimals, m * scale))
            }),
            Cell::text(p.id()),
            Cell::text(spec::set_args(&p.overrides).join(" ")),
        ]);
    }
    table
}

/// The `--dry-run` listing: every trial, its state and overrides, and what a run would write.
fn print_plan(s: &Loaded) -> Result<()> {
    for p in &s.planned {
        outln!(
            "{:>3}  {:<8}  {}  {}",
            p.index,
            p.state().word(),
            p.id(),
            spec::set_args(&p.overrides).join(" ")
        )?;
    }
    outln!("{}", sw::status_line(&s.planned))?;
    outln!(
        "dry run: nothing written; running the sweep writes {}",
        s.dir.join(manifest::FILE).display()
    )
}

/// `--slurm` without `--workers`: the manifest, then one array task per pending trial (or
/// `--pack` trials per task).
fn submit_array(
    s: &Loaded,
    runs_dir: &Path,
    args: SlurmArgs,
    dry_run: bool,
    out: Output,
) -> Result<()> {
    let options = args.options(runs_dir)?;
    manifest::write(&s.dir, &s.sweep, &s.planned)?;
    let sub = slurm::submit(&s.planned, &s.dir, runs_dir, &options, dry_run)?;
    let max_parallel = options.max_parallel;
    let nothing = format!(
        "{} ({} queued or running in Slurm)",
        sw::status_line(&s.planned),
        sub.in_slurm
    );
    let what = format!(
        "{} task(s) for {} trial(s){}",
        sub.array.len(),
        sub.trials,
        if sub.in_slurm > 0 {
            format!(", {} already in Slurm left out", sub.in_slurm)
        } else {
            String::new()
        }
    );
    report_submission(&sub, max_parallel, &nothing, &what, &s.dir, out)
}

pub fn slurm_task(args: SlurmTaskArgs, out: Output) -> Result<()> {
    let interrupted = super::start_training()?;
    slurm::run_task(
        &args.manifest,
        args.task,
        args.pack as usize,
        &args.store.runs_dir,
        &interrupted,
        out.quiet,
    )
}
