//! Command-line interface (clap derive). Parsing and printing only; the work is elsewhere.

use crate::config::{overrides, Override};
use crate::error::{Error, Result};
use crate::run::{self, RunRequest, RunResult};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const ABOUT: &str = "Declarative experiment runner: a TOML file in, a trained dfdx network and a \
content-hashed run directory out.";

const AFTER_HELP: &str = "\
Examples:
  runner run experiments/baseline.toml
  runner run experiments/mlp.toml --set optimizer.lr=3e-4 --set train.steps=200
  runner resolve experiments/mlp.toml --set seed=3 --dir     # where would that run go?

Exit codes: 0 success, 1 run failed, 2 bad input (experiment, --set, arguments), 3 bad dataset
files, 4 file-system error, 5 diverged (non-finite loss), 6 run directory busy (another runner
holds its lock), 130 interrupted (Ctrl-C, SIGTERM).

--json prints one JSON object per run on stdout (dir, name, hash, status, steps, test_accuracy,
test_loss, best_test_accuracy, ms_per_step, ...) for run, sweep, ls and compare; --quiet drops
progress output.";

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print one JSON object per run on stdout (dir, hash, status, metrics) instead of text:
    /// for run, sweep, ls and compare.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress output on stderr (errors still go there).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More detail on stderr: the resolved run (hash, directory, data source and whether its
    /// checksums are enforced), data loading time, threads and CPU, each checkpoint, and for
    /// errors their full cause and what the exit code means.
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an experiment and write its run directory (skipped if already complete).
    #[command(after_help = "\
The run directory is <runs-dir>/<name>-<hash>, where <hash> is the first 12 hex digits of the
SHA-256 of the resolved config (all defaults filled in, overrides applied) and the dataset's
checksums. Running the same experiment again prints the finished run's summary instead of
retraining; --force retrains. It contains config.toml, metrics.csv, eval.csv, summary.json,
meta.json and model.safetensors (see README.md).

Runs are resumable: a checkpoint (weights, optimizer state, data order and position) is written
every train.checkpoint_every steps (default: at each evaluation) and when Ctrl-C or SIGTERM stops
the run. Running the same experiment again continues an interrupted or killed run from its
checkpoint, and the result is bit-identical to an uninterrupted run. One process at a time works
on a run directory: a second exits with code 6 (or waits, with --wait).")]
    Run(RunArgs),
    /// Continue an interrupted or killed run from its last checkpoint (same as `runner run` on
    /// its experiment).
    #[command(after_help = "\
The run's own config.toml is used, so the experiment file need not exist any more. A complete
run is left alone; a run without a usable checkpoint starts over. The finished run is
bit-identical to one that was never interrupted (`runner verify` checks this).

Example:
  runner resume runs/baseline-0123456789ab")]
    Resume {
        /// The run directory.
        run: PathBuf,
        /// Wait for another runner holding the run instead of exiting with code 6.
        #[arg(long)]
        wait: bool,
    },
    /// Re-run a run (or its first N steps) in a temporary directory and check it is
    /// bit-identical: every logged value but timings, and the weights.
    #[command(after_help = "\
Compares metrics.csv and eval.csv row by row (all columns but elapsed_s) and reports the first
step and column that differ; compares each weight tensor by SHA-256 against the run's final
weights (when re-running all its steps) or its checkpoint (when that is at step N); and checks
the files against the digests summary.json recorded when the run finished. Exit code 0 when
everything compared is identical, 1 when anything differs. The thread count does not matter:
results do not depend on it.

Examples:
  runner verify runs/baseline-0123456789ab --steps 200
  RAYON_NUM_THREADS=1 runner verify runs/mlp-0123456789ab")]
    Verify {
        /// The run directory.
        run: PathBuf,
        /// Re-run only the first N steps.
        #[arg(long, value_name = "N")]
        steps: Option<u64>,
    },
    /// List the network architectures compiled into this binary.
    Models,
    /// Run a sweep file's trials (skipping complete ones), or show its status: `runner sweep status FILE`.
    #[command(after_help = "\
A sweep expands to trials (grid x zip x random samples, times seeds), each a `runner run` of the
base experiment with overrides. Trials whose run directory is complete are skipped, so running a
sweep again resumes it. The manifest goes to <runs-dir>/sweeps/<name>-<hash>/manifest.jsonl with
one log per trial beside it.

With --slurm the trials go to a Slurm job array instead: runner writes
<sweep-dir>/slurm/submit-<time>.sh (array task T runs trials T*pack .. T*pack+pack-1 of the
manifest through `runner slurm-task`), submits it with sbatch, prints the job id and returns.
Submitting again sends only trials that are missing or failed and not queued or running in Slurm
(squeue); an interrupted trial continues from its checkpoint. Slurm's SIGTERM before the time
limit (--signal-before), on preemption or scancel makes the running trial checkpoint and stop.
`runner sweep status FILE` adds what squeue (and sacct, with accounting) says.

Examples:
  runner sweep experiments/sweeps/lr.toml --dry-run
  runner sweep experiments/sweeps/lr.toml -j 2
  runner sweep status experiments/sweeps/lr.toml
  runner sweep experiments/sweeps/lr.toml --slurm --partition cpu --time 01:00:00 --max-parallel 8
  runner sweep experiments/sweeps/width.toml --slurm --pack 3 --sbatch-arg=--account=ml --dry-run")]
    Sweep {
        /// `FILE`, or `status FILE`.
        #[arg(num_args = 1..=2, required = true, value_name = "[status] FILE")]
        words: Vec<String>,
        /// Trials to run at once; the cores are split between them.
        #[arg(short = 'j', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
        jobs: u16,
        /// Print the trials, their run directories and which are done; run nothing (with
        /// --slurm: also write the sbatch script, without submitting it).
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        store: RunsDirArg,
        #[command(flatten)]
        slurm: SlurmArgs,
    },
    /// Run one Slurm array task's trials of a sweep manifest, one after another (what the
    /// script of `runner sweep --slurm` runs; SLURM_ARRAY_TASK_ID gives the task).
    SlurmTask {
        /// The sweep's manifest.jsonl.
        manifest: PathBuf,
        /// The array task: runs trials TASK*PACK .. TASK*PACK+PACK-1.
        #[arg(long)]
        task: usize,
        /// Trials per array task.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        pack: u32,
        #[command(flatten)]
        store: RunsDirArg,
    },
    /// One line per run: name, hash, status, steps, final test accuracy, ms per step, start.
    #[command(
        after_help = "Examples:\n  runner ls\n  runner ls 'mlp-*' --where optimizer.lr=1e-3 --sort test_acc --desc"
    )]
    Ls {
        /// Globs over run directory names or experiment names (default: all runs).
        patterns: Vec<String>,
        #[command(flatten)]
        common: ReportArgs,
        /// Keep runs whose config key has this value (numbers compare by value: 1e-4 = 0.0001).
        /// Repeatable.
        #[arg(long = "where", value_name = "KEY=VALUE")]
        filters: Vec<crate::report::ls::Filter>,
        /// Sort by a config key or one of test_acc, best_acc, test_loss, ms_per_step, steps, started.
        #[arg(long, value_name = "KEY")]
        sort: Option<String>,
        /// Sort in descending order.
        #[arg(long)]
        desc: bool,
    },
    /// Compare runs: the config keys that differ, then test accuracy, losses and timings.
    #[command(after_help = "\
Runs are directories, globs over run names, or name/hash prefixes under the runs directory.
Runs whose configs differ only in `seed` are one row (mean ± standard deviation, n). The best
value of each metric column is marked with *. train_loss is an exponential moving average
(alpha 0.05) of the per-step loss.

Examples:
  runner compare 'mlp-*'
  runner compare runs/mlp-1a2b3c4d5e6f runs/mlp-0f9e8d7c6b5a --at 1000
  runner compare 'mlp-*' --stats --format markdown")]
    Compare {
        #[arg(required = true)]
        runs: Vec<String>,
        #[command(flatten)]
        common: ReportArgs,
        /// Compare at this step (last evaluation at or before it) instead of the end.
        #[arg(long, value_name = "STEP")]
        at: Option<u64>,
        /// Add Welch's t-test p-value between the two best groups of seed replicates.
        #[arg(long)]
        stats: bool,
    },
    /// Plot training loss and test accuracy against step, one line per run (.svg or .png).
    #[command(
        after_help = "Examples:\n  runner plot 'mlp-*' -o mlp.svg\n  runner plot runs/mlp-1a2b3c4d5e6f runs/mlp-0f9e8d7c6b5a -o lr.png --log-loss --smooth 0.02"
    )]
    Plot {
        #[arg(required = true)]
        runs: Vec<String>,
        /// Output file: .svg or .png.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// EMA weight of the newest step for the loss curves (1 = no smoothing).
        #[arg(long, value_name = "ALPHA", default_value_t = 0.05)]
        smooth: f64,
        /// Logarithmic loss axis.
        #[arg(long)]
        log_loss: bool,
        #[command(flatten)]
        store: RunsDirArg,
    },
    /// The resolved-config differences between two runs, key by key.
    Diff {
        run_a: String,
        run_b: String,
        #[command(flatten)]
        common: ReportArgs,
    },
    /// Print an experiment's resolved (canonical) config, or its run directory with --dir.
    Resolve {
        #[command(flatten)]
        exp: ExperimentArgs,
        /// Print only the run directory path.
        #[arg(long)]
        dir: bool,
    },
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The experiment file (TOML), e.g. experiments/baseline.toml.
    pub experiment: PathBuf,
    /// Override a config key: a dotted schema key and a value typed by the schema, e.g.
    /// --set optimizer.lr=3e-4 --set model.hidden=[512,128]. Repeatable; part of the hash.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub store: RunsDirArg,
}

/// `--runs-dir`, shared by every command.
/// `runner sweep --slurm` settings (sbatch options of the array job).
#[derive(Debug, Args)]
#[command(next_help_heading = "Slurm (with --slurm)")]
pub struct SlurmArgs {
    /// Submit the trials as a Slurm job array with sbatch instead of running them here, and
    /// return at once.
    #[arg(long)]
    pub slurm: bool,
    /// sbatch --partition.
    #[arg(long, value_name = "P", requires = "slurm")]
    pub partition: Option<String>,
    /// Time limit of each array task (sbatch --time, e.g. 02:00:00).
    #[arg(long, value_name = "T", requires = "slurm")]
    pub time: Option<String>,
    /// CPUs per array task; the trial uses that many threads.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub cpus_per_task: u16,
    /// Memory per array task (sbatch --mem, e.g. 4G).
    #[arg(long, value_name = "M", requires = "slurm")]
    pub mem: Option<String>,
    /// At most K array tasks at once (sbatch --array=...%K).
    #[arg(long, value_name = "K", requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_parallel: Option<u32>,
    /// Trials per array task, run one after another (for short trials).
    #[arg(long, value_name = "M", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub pack: u32,
    /// Any other sbatch option, as one word (repeatable): --sbatch-arg=--account=ml
    #[arg(
        long = "sbatch-arg",
        value_name = "ARG",
        requires = "slurm",
        allow_hyphen_values = true
    )]
    pub sbatch_args: Vec<String>,
    /// Seconds before the time limit at which Slurm sends SIGTERM, so that the running trial
    /// checkpoints (sbatch --signal=B:TERM@S; Slurm may send it up to a minute late).
    #[arg(long, value_name = "S", default_value_t = 120)]
    pub signal_before: u32,
}

#[derive(Debug, Args)]
pub struct RunsDirArg {
    /// Directory that holds run directories.
    #[arg(
        long,
        value_name = "DIR",
        env = "RUNNER_RUNS_DIR",
        default_value = "runs"
    )]
    pub runs_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub store: RunsDirArg,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: crate::report::table::Format,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub exp: ExperimentArgs,
    /// Start over even if the run directory is complete or resumable (its contents are replaced).
    #[arg(long)]
    pub force: bool,
    /// If another runner is working on this run, wait for it to finish instead of exiting with
    /// code 6.
    #[arg(long)]
    pub wait: bool,
    /// Early stopping against the trials of a sweep manifest (`runner sweep` sets these).
    #[arg(long, value_name = "MANIFEST", hide = true, requires = "early_stop")]
    pub early_stop_manifest: Option<PathBuf>,
    /// The early-stopping rule: median:MIN_TRIALS or asha:MIN_STEPS:ETA.
    #[arg(long, value_name = "RULE", hide = true, value_parser = crate::sweep::prune::Rule::from_arg)]
    pub early_stop: Option<crate::sweep::prune::Rule>,
}

fn parse_overrides(set: &[String]) -> Result<Vec<Override>> {
    set.iter().map(|s| overrides::parse(s)).collect()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    crate::malloc::tune();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if cli.verbose {
        crate::verbose::enable();
    }
    match execute(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            crate::verbose::say(|| {
                let mut detail = String::new();
                let mut cause = std::error::Error::source(&e);
                while let Some(c) = cause {
                    detail += &format!("caused by: {c:?}\n  ");
                    cause = c.source();
                }
                format!(
                    "{detail}exit code {} ({})",
                    e.exit_code(),
                    e.exit_code_meaning()
                )
            });
            e.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<()> {
    let (json, quiet) = (cli.json, cli.quiet);
    let print_runs = |runs: &[crate::report::runs::Run]| {
        for r in runs {
            println!("{}", crate::rundir::run_json(&r.dir, r.summary.as_ref()));
        }
    };
    match cli.command {
        Command::Run(args) => {
            let req = RunRequest {
                overrides: parse_overrides(&args.exp.set)?,
                experiment: args.exp.experiment,
                runs_dir: args.exp.store.runs_dir,
                force: args.force,
                wait: args.wait,
                quiet,
                early_stop: args.early_stop_manifest.zip(args.early_stop).map(
                    |(manifest, rule)| crate::sweep::prune::EarlyStop { manifest, rule }.shared(),
                ),
            };
            crate::fpmode::install();
            let interrupted = install_interrupt_handler()?;
            let result = run::run(&req, &interrupted)?;
            print_run_result(result, json, quiet);
            Ok(())
        }
        Command::Resume { run: dir, wait } => {
            crate::fpmode::install();
            let interrupted = install_interrupt_handler()?;
            let result = run::resume(&dir, wait, quiet, &interrupted)?;
            print_run_result(result, json, quiet);
            Ok(())
        }
        Command::Verify { run: dir, steps } => {
            crate::fpmode::install();
            let interrupted = install_interrupt_handler()?;
            let report = crate::verify::verify(&dir, steps, quiet, &interrupted)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("report serialises")
                );
            } else {
                println!("{report}");
            }
            if report.identical {
                Ok(())
            } else {
                Err(Error::Failed(format!(
                    "{} is not reproduced bit for bit",
                    dir.display()
                )))
            }
        }
        Command::Ls {
            patterns,
            common,
            filters,
            sort,
            desc,
        } => {
            let (runs, warnings) = crate::report::runs::discover(&common.store.runs_dir);
            warn(&warnings);
            let table = crate::report::ls::list(&runs, &patterns, &filters, sort.as_deref(), desc)
                .map_err(Error::Input)?;
            if json {
                // The table's order, one object per listed run.
                for row in &table.rows {
                    if let Some(r) = runs.iter().find(|r| r.id == row[0].text) {
                        println!("{}", crate::rundir::run_json(&r.dir, r.summary.as_ref()));
                    }
                }
            } else {
                print!("{}", table.render(common.format));
            }
            Ok(())
        }
        Command::Compare {
            runs,
            common,
            at,
            stats,
        } => {
            let (runs, warnings) =
                crate::report::runs::select(&runs, &common.store.runs_dir).map_err(Error::Input)?;
            warn(&warnings);
            if runs.is_empty() {
                return Err(Error::Input("no runs to compare".into()));
            }
            if json {
                print_runs(&runs);
                return Ok(());
            }
            let (table, stats_line) = crate::report::compare::compare(&runs, at, stats);
            print!("{}", table.render(common.format));
            if let Some(line) = stats_line {
                eprintln!("{line}");
            }
            Ok(())
        }
        Command::Diff {
            run_a,
            run_b,
            common,
        } => {
            let pick = |spec: &String| -> Result<crate::report::runs::Run> {
                let (runs, warnings) =
                    crate::report::runs::select(std::slice::from_ref(spec), &common.store.runs_dir)
                        .map_err(Error::Input)?;
                warn(&warnings);
                match runs.len() {
                    1 => Ok(runs.into_iter().next().expect("one run")),
                    0 => Err(Error::Input(format!("'{spec}' is not a run directory"))),
                    n => Err(Error::Input(format!(
                        "'{spec}' matches {n} runs; diff needs exactly one each"
                    ))),
                }
            };
            let (a, b) = (pick(&run_a)?, pick(&run_b)?);
            print!(
                "{}",
                crate::report::diff::diff(&a, &b).render(common.format)
            );
            Ok(())
        }
        Command::Plot {
            runs,
            output,
            smooth,
            log_loss,
            store,
        } => {
            let (runs, warnings) =
                crate::report::runs::select(&runs, &store.runs_dir).map_err(Error::Input)?;
            warn(&warnings);
            let opts = crate::report::plot::PlotOptions {
                smoothing: smooth,
                log_loss,
            };
            crate::report::plot::plot(&runs, &output, opts).map_err(Error::Input)?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Sweep {
            words,
            jobs,
            dry_run,
            store,
            slurm,
        } => sweep(
            &words,
            jobs as usize,
            dry_run,
            &store.runs_dir,
            slurm,
            json,
            quiet,
        ),
        Command::SlurmTask {
            manifest,
            task,
            pack,
            store,
        } => {
            crate::fpmode::install();
            let interrupted = install_interrupt_handler()?;
            crate::sweep::slurm::run_task(
                &manifest,
                task,
                pack as usize,
                &store.runs_dir,
                &interrupted,
                quiet,
            )
        }
        Command::Models => {
            print!("{}", crate::models::describe_registry());
            Ok(())
        }
        Command::Resolve { exp, dir } => {
            let overrides = parse_overrides(&exp.set)?;
            let resolved = run::resolve(&exp.experiment, &overrides, &exp.store.runs_dir)?;
            if dir {
                println!("{}", resolved.dir.path.display());
            } else {
                print!("{}", resolved.exp.canonical_toml());
            }
            Ok(())
        }
    }
}

fn sweep(
    words: &[String],
    jobs: usize,
    dry_run: bool,
    runs_dir: &std::path::Path,
    slurm: SlurmArgs,
    json: bool,
    quiet: bool,
) -> Result<()> {
    use crate::sweep::{self as sw, spec};
    let (status_only, file) = match words {
        [file] => (false, file),
        [cmd, file] if cmd == "status" => (true, file),
        _ => {
            return Err(Error::Input(format!(
                "runner sweep {}: expected FILE or status FILE",
                words.join(" ")
            )))
        }
    };
    let sweep = spec::load(std::path::Path::new(file)).map_err(Error::Input)?;
    let planned = sw::plan(&sweep, runs_dir)?;
    let dir = sw::sweep_dir(&sweep, &planned, runs_dir);
    if status_only {
        println!("{}", sw::status_line(&planned));
        print!("{}", crate::sweep::slurm::status(&planned, &dir));
        return Ok(());
    }
    if slurm.slurm {
        return submit_to_slurm(
            &sweep, &planned, &dir, runs_dir, slurm, dry_run, json, quiet,
        );
    }
    if dry_run {
        for p in &planned {
            println!(
                "{:>3}  {:<8}  {}  {}",
                p.index,
                format!("{:?}", p.state()).to_lowercase(),
                p.id(),
                spec::set_args(&p.overrides).join(" ")
            );
        }
        println!("{}", sw::status_line(&planned));
        println!("manifest: {}", dir.join("manifest.jsonl").display());
        return Ok(());
    }
    sw::write_manifest(&dir, &sweep, &planned)?;
    crate::fpmode::install();
    let interrupted = install_interrupt_handler()?;
    let results = sw::execute(&sweep, &planned, runs_dir, &dir, jobs, &interrupted, quiet)?;
    let runs: Vec<crate::report::runs::Run> = planned
        .iter()
        .filter_map(|p| crate::report::runs::Run::load(&p.dir.path).ok())
        .collect();
    let column = match sweep.metric.as_str() {
        "test_loss" => "test_loss",
        "best_test_accuracy" => "best_acc",
        "ms_per_step" => "ms/step",
        _ => "test_acc",
    };
    if json {
        for r in &runs {
            println!("{}", crate::rundir::run_json(&r.dir, r.summary.as_ref()));
        }
    } else if !runs.is_empty() {
        let (table, _) =
            crate::report::compare::compare_sorted(&runs, None, false, (column, sweep.maximize));
        print!("{}", table.render(crate::report::table::Format::Table));
    }
    if !quiet {
        eprintln!("{}", sw::status_line(&planned));
    }
    let failed = results.iter().filter(|r| r.exit_code != Some(0)).count();
    if interrupted.load(Ordering::SeqCst) {
        return Err(Error::Interrupted(
            "sweep stopped; run it again to resume".into(),
        ));
    }
    if failed > 0 {
        return Err(Error::Failed(format!(
            "{failed} trial(s) failed; logs in {}",
            dir.display()
        )));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn submit_to_slurm(
    sweep: &crate::sweep::spec::Sweep,
    planned: &[crate::sweep::Planned],
    dir: &std::path::Path,
    runs_dir: &std::path::Path,
    args: SlurmArgs,
    dry_run: bool,
    json: bool,
    quiet: bool,
) -> Result<()> {
    use crate::sweep::{self as sw, slurm};
    sw::write_manifest(dir, sweep, planned)?;
    let opts = slurm::Options {
        partition: args.partition,
        time: args.time,
        cpus_per_task: args.cpus_per_task,
        mem: args.mem,
        max_parallel: args.max_parallel,
        pack: args.pack as usize,
        sbatch_args: args.sbatch_args,
        signal_before_s: args.signal_before,
    };
    let s = slurm::submit(planned, dir, runs_dir, &opts, dry_run)?;
    let array = format!(
        "{}{}",
        slurm::array_ranges(&s.array),
        opts.max_parallel.map_or(String::new(), |k| format!("%{k}"))
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "job_id": s.job.as_ref().map(|j| j.job_id.clone()),
                "array": array,
                "tasks": s.array.len(),
                "trials": s.trials,
                "in_slurm": s.in_slurm,
                "script": (!s.array.is_empty()).then(|| s.script.display().to_string()),
            })
        );
    }
    let say = |line: String| {
        if !quiet {
            eprintln!("{line}")
        }
    };
    if s.array.is_empty() {
        say(format!(
            "nothing to submit: {} ({} queued or running in Slurm)",
            sw::status_line(planned),
            s.in_slurm
        ));
        return Ok(());
    }
    let what = format!(
        "array {array}: {} task(s) for {} trial(s){}",
        s.array.len(),
        s.trials,
        if s.in_slurm > 0 {
            format!(", {} already in Slurm left out", s.in_slurm)
        } else {
            String::new()
        }
    );
    match &s.job {
        None => say(format!(
            "wrote {} ({what}); not submitted (--dry-run)",
            s.script.display()
        )),
        Some(job) => {
            if !json {
                println!("{}", job.job_id);
            }
            say(format!(
                "submitted Slurm job {} ({what})\nscript: {}\nlogs:   {}/slurm/task-{}_<task>.log\nstatus: runner sweep status <file>",
                job.job_id,
                s.script.display(),
                dir.display(),
                job.job_id
            ));
        }
    }
    Ok(())
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Ctrl-C and SIGTERM set a flag that the training loop checks after every step.
fn print_run_result(result: RunResult, json: bool, quiet: bool) {
    let (dir, summary) = match result {
        RunResult::Trained(dir, summary) => (dir, summary),
        RunResult::AlreadyComplete(dir, summary) => {
            if !quiet {
                eprintln!("already complete; not retraining (use --force to retrain)");
            }
            (dir, summary)
        }
    };
    if json {
        println!("{}", crate::rundir::run_json(&dir.path, Some(&summary)));
    } else {
        println!("{}", run::describe(&summary, &dir));
    }
}

fn install_interrupt_handler() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || f.store(true, Ordering::SeqCst))
        .map_err(|e| Error::Failed(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}
