//! Command-line interface (clap derive): the argument types, and one module per group of
//! commands that turns arguments into calls and prints what they return.

mod args;
mod html;
mod manage;
mod report;
mod run;
mod selection;
mod stdout;
mod sweep;
mod sweep_output;
mod sweep_study;

use crate::error::{Error, Result};
use args::Output;
use clap::{CommandFactory, Parser, Subcommand};
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
progress output.

Networks the binary lacks are compiled on demand (run, sweep, resume, verify): from the checkout
it was built from or RUNNER_SOURCE, with cargo, cached in RUNNER_CACHE_DIR (default
~/.cache/runner); --no-build or RUNNER_BUILD=never fails instead.

Environment: RUNNER_RUNS_DIR (as --runs-dir); RAYON_NUM_THREADS (threads); RUNNER_ISA=avx512|avx2
(the kernel path; default: the CPU's best). Neither threads nor path changes a run's bits.
RUNNER_MNIST_DIR: the vendored MNIST's directory (default: the checkout's data/mnist, then
~/.local/share/runner/mnist).";

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
    /// Never build a network this binary lacks (also RUNNER_BUILD=never): fail as before
    /// on-demand builds instead.
    #[arg(long, global = true)]
    pub no_build: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an experiment and write its run directory (skipped if already complete).
    #[command(after_help = "\
The run directory is <runs-dir>/<name>-<hash>, where <hash> is the first 12 hex digits of the
SHA-256 of the resolved config (all defaults filled in, overrides applied) and the dataset's
checksums. Running the same experiment again prints the finished run's summary instead of
retraining; --force retrains. It contains config.toml, metrics.csv, eval.csv, summary.json,
meta.json and model.safetensors (see docs/run-directory.md).

Runs are resumable: a checkpoint (weights, optimizer state, data order and position) is written
every train.checkpoint_every steps (default: at each evaluation) and when Ctrl-C or SIGTERM stops
the run. Running the same experiment again continues an interrupted or killed run from its
checkpoint, and the result is bit-identical to an uninterrupted run. One process at a time works
on a run directory: a second exits with code 6 (or waits, with --wait).")]
    Run(run::RunArgs),
    /// Continue an interrupted or killed run from its last checkpoint (same as `runner run` on
    /// its experiment).
    #[command(after_help = "\
The run's own config.toml is used, so the experiment file need not exist any more. A complete
run is left alone; a run without a usable checkpoint starts over. The finished run is
bit-identical to one that was never interrupted (`runner verify` checks this).

Example:
  runner resume runs/baseline-0123456789ab")]
    Resume(run::ResumeArgs),
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
    Verify(run::VerifyArgs),
    /// List the networks compiled into this binary and the files that asked for each, then those
    /// cached on-demand builds add (--json: one object per network, with `compiled_in`).
    Models,
    /// Run a sweep file's trials (skipping complete ones), or show its status: `runner sweep status FILE`.
    #[command(after_help = "\
A sweep expands to trials (grid x zip x random samples, times seeds), each a `runner run` of the
base experiment with overrides; a [tpe] sweep proposes each trial from the finished ones instead.
Either way -j N workers pull trials from <runs-dir>/sweeps/<name>-<hash>/journal.jsonl (ask,
run, tell) until every trial has ended, with the manifest (manifest.jsonl) and one log per trial
beside it. Trials whose run directory is complete are skipped, so running a sweep again resumes
it (its failed trials run again, once); a trial whose worker died is taken over and resumed.
Several `runner sweep FILE` processes sharing the runs directory cooperate through the journal;
on Slurm, --slurm --workers K submits K such workers as an array (submitting again tops them up
to K).

A grid, zip or random sweep can also go as one Slurm array task per trial (--slurm alone):
runner writes <sweep-dir>/slurm/submit-<time>.sh (array task T runs trials T*pack ..
T*pack+pack-1 of the manifest through `runner slurm-task`), submits it with sbatch, prints the
job id and returns.
Submitting again sends only trials that are missing or failed and not queued or running in Slurm
(squeue); an interrupted trial continues from its checkpoint. Slurm's SIGTERM before the time
limit (--signal-before), on preemption or scancel makes the running trial checkpoint and stop.
`runner sweep status FILE` adds what squeue (and sacct, with accounting) says.

Examples:
  runner sweep experiments/sweeps/lr.toml --dry-run
  runner sweep experiments/sweeps/lr.toml -j 2
  runner sweep status experiments/sweeps/lr.toml
  runner sweep experiments/sweeps/smoke-tpe.toml -j 2
  runner sweep experiments/sweeps/smoke-tpe.toml --slurm --workers 4 --cpus-per-task 2
  runner sweep experiments/sweeps/lr.toml --slurm --partition cpu --time 01:00:00 --max-parallel 8
  runner sweep experiments/sweeps/width.toml --slurm --pack 3 --sbatch-arg=--account=ml --dry-run")]
    Sweep(sweep::SweepArgs),
    /// Run one Slurm array task's trials of a sweep manifest, one after another (what the
    /// script of `runner sweep --slurm` runs; SLURM_ARRAY_TASK_ID gives the task).
    SlurmTask(sweep::SlurmTaskArgs),
    /// One line per run: name, hash, status, steps, final test accuracy, ms per step, start.
    #[command(
        after_help = "Examples:\n  runner ls\n  runner ls 'mlp-*' --where optimizer.lr=1e-3 --sort test_acc --desc"
    )]
    Ls(report::LsArgs),
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
    Compare(report::CompareArgs),
    /// Plot training loss and test accuracy against step, one line per run (.svg or .png).
    #[command(
        after_help = "Examples:\n  runner plot 'mlp-*' -o mlp.svg\n  runner plot runs/mlp-1a2b3c4d5e6f runs/mlp-0f9e8d7c6b5a -o lr.png --log-loss --smooth 0.02"
    )]
    Plot(report::PlotArgs),
    /// One self-contained HTML report of runs: a sortable, filterable table, curves, and for
    /// runs that differ in some keys parallel coordinates and scatters against a metric.
    #[command(after_help = "\
Opens from disk in any current browser: script, styles and data are inline, nothing is fetched.
Curves are cut to at most 500 points per run (block means of the training loss), seed
replicates are one curve (mean, min-max band). The sort and filter are kept in the URL's
fragment (report.html#sort=test_accuracy&desc=1&filter=adam), so a view can be linked.

Examples:
  runner report 'mlp-*' -o mlp.html
  runner report experiments/sweeps/lr.toml -o lr.html
  runner report runs/sweeps/lr-1a2b3c4d5e6f --metric test_loss -o lr.html")]
    Report(html::ReportArgs),
    /// Export runs to another tool's format: `runner export tensorboard RUNS -o DIR`.
    Export(report::ExportArgs),
    /// The resolved-config differences between two runs, key by key.
    Diff(report::DiffArgs),
    /// Print an experiment's resolved (canonical) config, or its run directory with --dir.
    Resolve(run::ResolveArgs),
    /// Everything about runs: status, numbers, tags, notes, the command that made them, their
    /// files and config (--json: one object each).
    #[command(
        after_help = "Examples:\n  runner show baseline-3e52\n  runner show 'mlp-*' --json | jq .test_accuracy"
    )]
    Show(manage::ShowArgs),
    /// Set or remove tags on runs (kept in annotations.json, not part of the hash); `ls` shows
    /// them and filters on them with --where tag.KEY=VALUE.
    #[command(
        after_help = "Examples:\n  runner tag baseline-3e52 paper=fig3 status=final\n  runner tag 'mlp-*' ~status\n  runner ls --where tag.paper=fig3"
    )]
    Tag(manage::TagArgs),
    /// Add a note to runs (kept in annotations.json, with the time; `show` prints them).
    #[command(
        after_help = "Example:\n  runner note baseline-3e52 \"diverged after the lr change; rerun with warmup\""
    )]
    Note(manage::NoteArgs),
    /// Remove run directories; never one a running process holds (exit 6 names those).
    #[command(
        after_help = "Examples:\n  runner rm 'mlp-*' --incomplete --dry-run\n  runner rm mlp-cab6375c10b9"
    )]
    Rm(manage::RmArgs),
    /// Remove unfinished runs (failed, interrupted, diverged, damaged, abandoned) older than an
    /// age; complete and pruned runs, and runs a live process holds, stay.
    #[command(after_help = "Examples:\n  runner gc --dry-run\n  runner gc --older-than 12h")]
    Gc(manage::GcArgs),
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "\
Examples:
  runner completions bash > ~/.local/share/bash-completion/completions/runner
  runner completions zsh > ~/.zfunc/_runner        # with fpath+=(~/.zfunc) in ~/.zshrc
  runner completions fish > ~/.config/fish/completions/runner.fish")]
    Completions { shell: clap_complete::Shell },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    crate::malloc::tune();
    // A write past `ulimit -f` would kill the process with SIGXFSZ (exit 153, no message, the
    // run left `running`); ignored, the write fails with EFBIG and the run fails like on a full
    // disk: a message naming the file, status `failed`, exit 4.
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
    if let Err(e) = gemm::isa::choose() {
        crate::errln!("error: {e}");
        return crate::error::Error::Input(String::new()).exit_code();
    }
    let quiet = cli.quiet;
    let policy = match crate::compile::Policy::choose(cli.no_build) {
        Ok(p) => p,
        Err(e) => {
            crate::errln!("error: {}", runner_spec::text::message(&e.to_string()));
            return e.exit_code();
        }
    };
    let result = match execute(cli) {
        Err(Error::NotCompiled { networks, message }) => {
            Err(crate::compile::provide(&networks, &message, policy, quiet))
        }
        other => other,
    };
    match result {
        Ok(()) => 0,
        Err(e) if stdout::is_closed_pipe(&e) => 0,
        Err(e) => {
            crate::errln!("error: {}", runner_spec::text::message(&e.to_string()));
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
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Run(args) => run::run(args, out),
        Command::Resume(args) => run::resume(args, out),
        Command::Verify(args) => run::verify(args, out),
        Command::Resolve(args) => run::resolve(args),
        Command::Show(args) => manage::show(args, out),
        Command::Export(args) => report::export(args),
        Command::Report(args) => html::report(args),
        Command::Tag(args) => manage::tag(args),
        Command::Note(args) => manage::note(args),
        Command::Rm(args) => manage::rm(args),
        Command::Gc(args) => manage::gc(args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "runner", &mut script);
            stdout::out!("{}", String::from_utf8_lossy(&script))
        }
        Command::Models => run::models(out),
        Command::Ls(args) => report::ls(args, out),
        Command::Compare(args) => report::compare(args, out),
        Command::Diff(args) => report::diff(args),
        Command::Plot(args) => report::plot(args),
        Command::Sweep(args) => sweep::sweep(args, out),
        Command::SlurmTask(args) => sweep::slurm_task(args, out),
    }
}

/// The set-up of every command that trains: the thread pool and its floating-point mode, and a
/// flag that Ctrl-C and SIGTERM set and the training loop checks after every step.
fn start_training() -> Result<Arc<AtomicBool>> {
    crate::pool::install();
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || f.store(true, Ordering::SeqCst))
        .map_err(|e| Error::Failed(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}
