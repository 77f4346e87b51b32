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

Exit codes: 0 success, 1 run failed or diverged, 2 bad input (experiment, --set, arguments),
3 bad dataset files, 4 file-system error, 130 interrupted (Ctrl-C, SIGTERM).";

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an experiment and write its run directory (skipped if already complete).
    #[command(after_help = "\
The run directory is <runs-dir>/<name>-<hash>, where <hash> is the first 12 hex digits of the
SHA-256 of the resolved config (all defaults filled in, overrides applied) and the dataset's
checksums. Running the same experiment again prints the finished run's summary instead of
retraining; --force retrains. It contains config.toml, metrics.csv, eval.csv, summary.json,
meta.json and model.safetensors (see README.md).")]
    Run(RunArgs),
    /// List the network architectures compiled into this binary.
    Models,
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
pub struct RunArgs {
    #[command(flatten)]
    pub exp: ExperimentArgs,
    /// Retrain even if the run directory is already complete (its contents are replaced).
    #[arg(long)]
    pub force: bool,
}

fn parse_overrides(set: &[String]) -> Result<Vec<Override>> {
    set.iter().map(|s| overrides::parse(s)).collect()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match execute(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn execute(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run(args) => {
            let req = RunRequest {
                overrides: parse_overrides(&args.exp.set)?,
                experiment: args.exp.experiment,
                runs_dir: args.exp.runs_dir,
                force: args.force,
            };
            crate::fpmode::install();
            let interrupted = install_interrupt_handler()?;
            match run::run(&req, &interrupted)? {
                RunResult::Trained(dir, summary) => println!("{}", run::describe(&summary, &dir)),
                RunResult::AlreadyComplete(dir, summary) => {
                    eprintln!("already complete; not retraining (use --force to retrain)");
                    println!("{}", run::describe(&summary, &dir));
                }
            }
            Ok(())
        }
        Command::Models => {
            print!("{}", crate::models::describe_registry());
            Ok(())
        }
        Command::Resolve { exp, dir } => {
            let overrides = parse_overrides(&exp.set)?;
            let resolved = run::resolve(&exp.experiment, &overrides, &exp.runs_dir)?;
            if dir {
                println!("{}", resolved.dir.path.display());
            } else {
                print!("{}", resolved.exp.canonical_toml());
            }
            Ok(())
        }
    }
}

/// Ctrl-C and SIGTERM set a flag that the training loop checks after every step.
fn install_interrupt_handler() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || f.store(true, Ordering::SeqCst))
        .map_err(|e| Error::Failed(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}
