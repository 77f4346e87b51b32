//! `runner run`, `resume`, `verify`, `resolve` and `models`.

use super::args::{ExperimentArgs, Output, RunsDirArg};
use super::stdout::{out, outln};
use crate::error::{Error, Result};
use crate::run::{self, RunRequest, RunResult};
use crate::sweep::prune::{EarlyStop, Rule};
use clap::Args;
use std::path::{Path, PathBuf};

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
    #[arg(long, value_name = "RULE", hide = true, value_parser = Rule::from_arg)]
    pub early_stop: Option<Rule>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run: its directory, or a name, id or hash prefix, or glob under --runs-dir that
    /// matches one run.
    pub run: String,
    #[command(flatten)]
    pub store: RunsDirArg,
    /// Wait for another runner holding the run instead of exiting with code 6.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run: its directory, or a name, id or hash prefix, or glob under --runs-dir that
    /// matches one run.
    pub run: String,
    #[command(flatten)]
    pub store: RunsDirArg,
    /// Re-run only the first N steps.
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    #[command(flatten)]
    pub exp: ExperimentArgs,
    /// Print only the run directory path.
    #[arg(long)]
    pub dir: bool,
}

pub fn run(args: RunArgs, out: Output) -> Result<()> {
    let req = RunRequest {
        overrides: args.exp.overrides()?,
        experiment: args.exp.experiment,
        runs_dir: args.exp.store.runs_dir,
        force: args.force,
        wait: args.wait,
        quiet: out.quiet,
        early_stop: args
            .early_stop_manifest
            .zip(args.early_stop)
            .map(|(manifest, rule)| EarlyStop { manifest, rule }.shared()),
    };
    let interrupted = super::start_training()?;
    print_run_result(run::run(&req, &interrupted)?, out)?;
    Ok(())
}

pub fn resume(args: ResumeArgs, out: Output) -> Result<()> {
    let interrupted = super::start_training()?;
    let dir = one_run(&args.run, &args.store.runs_dir)?;
    let result = run::resume(&dir, args.wait, out.quiet, &interrupted)?;
    print_run_result(result, out)?;
    Ok(())
}

pub fn verify(args: VerifyArgs, out: Output) -> Result<()> {
    let interrupted = super::start_training()?;
    let dir = one_run(&args.run, &args.store.runs_dir)?;
    let report = crate::verify::verify(&dir, args.steps, out.quiet, &interrupted)?;
    if out.json {
        outln!(
            "{}",
            serde_json::to_string(&report).expect("report serialises")
        )?;
    } else {
        outln!("{report}")?;
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

/// The one run directory `spec` names, as `ls` and `compare` read names: a directory, or a name,
/// id or hash prefix, or glob under `runs_dir`. A spec that matches several runs is an error
/// listing them.
fn one_run(spec: &str, runs_dir: &Path) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf()); // a directory: the command says if it is not a run
    }
    let (runs, _) = crate::report::runs::select(&[spec.to_string()], runs_dir).map_err(|e| {
        Error::Input(format!(
            "{e}; give a run directory, or a name, id or hash prefix under --runs-dir"
        ))
    })?;
    match &runs[..] {
        [one] => Ok(one.dir.clone()),
        many => Err(Error::Input(format!(
            "'{spec}' matches {} runs under {}: {}; name one (its id, e.g. {})",
            many.len(),
            runs_dir.display(),
            many.iter()
                .map(|r| r.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            many[0].id
        ))),
    }
}

pub fn resolve(args: ResolveArgs) -> Result<()> {
    let overrides = args.exp.overrides()?;
    let resolved = run::resolve(&args.exp.experiment, &overrides, &args.exp.store.runs_dir)?;
    if args.dir {
        outln!("{}", resolved.dir.path.display())?;
    } else {
        out!("{}", resolved.exp.canonical_toml())?;
    }
    Ok(())
}

/// The networks of this binary, then those of the cached on-demand builds that it lacks.
pub fn models(out: Output) -> Result<()> {
    let mine = |key: &str| crate::models::find(key).is_some();
    let mut cached: Vec<(String, crate::compile::cache::NetworkSpec)> = Vec::new();
    for entry in crate::compile::cached() {
        for n in entry.record.networks {
            if !mine(&n.key) && !cached.iter().any(|(_, c)| c.key == n.key) {
                cached.push((entry.dir.display().to_string(), n));
            }
        }
    }
    if out.json {
        for c in crate::models::compiled() {
            let line = serde_json::json!({"key": c.key, "model": c.declaration, "files": c.files,
                "compiled_in": true});
            outln!("{line}")?;
        }
        for (build, n) in &cached {
            let line = serde_json::json!({"key": n.key, "model": n.declaration, "files": n.files,
                "compiled_in": false, "build": build});
            outln!("{line}")?;
        }
        return Ok(());
    }
    out!("{}", crate::models::describe_registry())?;
    if !cached.is_empty() {
        outln!(
            "{} more in cached on-demand builds ({}; used when a command needs them):",
            cached.len(),
            crate::compile::cache::builds_dir().display()
        )?;
        for (build, n) in &cached {
            outln!("  {}\n      in {build}", n.declaration)?;
        }
    }
    Ok(())
}

fn print_run_result(result: RunResult, out: Output) -> Result<()> {
    let (dir, summary) = match result {
        RunResult::Trained(dir, summary) => (dir, summary),
        RunResult::AlreadyComplete(dir, summary) => {
            if !out.quiet {
                crate::errln!("already complete; not retraining (use --force to retrain)");
            }
            (dir, summary)
        }
    };
    if out.json {
        let run = crate::report::runs::Run::load(&dir.path).map_err(|why| {
            Error::Failed(format!(
                "{}: cannot read the run back: {why}",
                dir.path.display()
            ))
        })?;
        outln!("{}", run.json())?;
    } else {
        outln!("{}", run::describe(&summary, &dir))?;
    }
    Ok(())
}
