//! Argument groups shared by several commands.

use crate::config::{overrides, Override};
use crate::error::Result;
use crate::sweep::slurm;
use clap::Args;
use std::path::{Path, PathBuf};

/// What every command's output obeys: `--json` and `--quiet`.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
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

/// `runner sweep --slurm` settings (sbatch options of the array job).
#[derive(Debug, Clone, Args)]
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
    /// Submit K pulling workers instead of one array task per trial: each takes trials from
    /// the sweep's journal and runs them one after another until none is left (submitting
    /// again tops them up to K). Required for [tpe] sweeps; any sweep can use it.
    #[arg(long, value_name = "K", requires = "slurm", value_parser = clap::value_parser!(u32).range(1..))]
    pub workers: Option<u32>,
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
    /// Where a binary built on demand (for networks the installed one lacks) is copied for the
    /// nodes to run: a directory they see. Default: <runs-dir>/builds.
    #[arg(long, value_name = "DIR", requires = "slurm")]
    pub build_dir: Option<PathBuf>,
}

/// `--runs-dir`, shared by every command.
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

impl ExperimentArgs {
    pub fn overrides(&self) -> Result<Vec<Override>> {
        self.set.iter().map(|s| overrides::parse(s)).collect()
    }
}

impl SlurmArgs {
    /// The sbatch settings of the array job.
    /// The submission's options; `runs_dir` holds the default build directory.
    pub fn options(self, runs_dir: &Path) -> Result<slurm::Options> {
        let build_dir = self.build_dir.unwrap_or_else(|| runs_dir.join("builds"));
        Ok(slurm::Options {
            executable: crate::compile::for_nodes(&build_dir)?,
            partition: self.partition,
            time: self.time,
            cpus_per_task: self.cpus_per_task,
            mem: self.mem,
            max_parallel: self.max_parallel,
            pack: self.pack as usize,
            sbatch_args: self.sbatch_args,
            signal_before_s: self.signal_before,
        })
    }
}
