//! `runner sweep`: a sweep is a list of run hashes. Trials whose run directory is complete are
//! skipped, so every sweep is resumable and idempotent.

pub mod prune;
pub mod slurm;
pub mod spec;

use crate::error::{Error, Result};
use crate::run;
use crate::rundir::{RunDir, Status};
use serde_json::json;
use spec::{Sweep, Trial};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A trial resolved to its run directory.
#[derive(Debug, Clone)]
pub struct Planned {
    pub index: usize,
    pub overrides: Trial,
    pub dir: RunDir,
}

/// Where a trial stands, from its run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialState {
    Done,
    Running,
    Failed,
    /// Stopped early by the sweep's early-stopping rule: decided, not run again.
    Pruned,
    Missing,
}

impl Planned {
    pub fn state(&self) -> TrialState {
        if self.dir.is_complete() {
            return TrialState::Done;
        }
        // A damaged run (its files do not match its summary) is run again: missing.
        match self.dir.read_summary().map(|s| s.status) {
            Some(Status::Running) => TrialState::Running,
            Some(Status::Pruned) => TrialState::Pruned,
            Some(Status::Failed | Status::Diverged | Status::Interrupted) => TrialState::Failed,
            Some(Status::Complete | Status::Damaged) | None => TrialState::Missing,
        }
    }

    pub fn id(&self) -> String {
        self.dir
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Expands and resolves every trial (configs are validated here, before anything runs).
pub fn plan(sweep: &Sweep, runs_dir: &Path) -> Result<Vec<Planned>> {
    spec::expand(sweep)
        .into_iter()
        .enumerate()
        .map(|(index, overrides)| {
            let resolved =
                run::resolve(&sweep.base, &overrides, runs_dir).map_err(|e| match e {
                    Error::Input(m) => Error::Input(format!(
                        "sweep trial {index} ({}): {m}",
                        spec::set_args(&overrides).join(" ")
                    )),
                    other => other,
                })?;
            Ok(Planned {
                index,
                overrides,
                dir: resolved.dir,
            })
        })
        .collect()
}

/// `<runs-dir>/sweeps/<name>-<hash12>`, the hash over the trials' run directories.
pub fn sweep_dir(sweep: &Sweep, planned: &[Planned], runs_dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in planned {
        h.update(p.id().as_bytes());
        h.update(b"\n");
    }
    let hash = crate::config::hex(&h.finalize());
    runs_dir
        .join("sweeps")
        .join(format!("{}-{}", sweep.name, &hash[..12]))
}

/// One JSON object per line: index, overrides, run hash, run directory, and what
/// `runner slurm-task` needs to run the trial: the base experiment (absolute), the `--set`
/// arguments and the early-stopping rule.
pub fn manifest(sweep: &Sweep, planned: &[Planned]) -> String {
    let base = std::path::absolute(&sweep.base).unwrap_or_else(|_| sweep.base.clone());
    planned
        .iter()
        .map(|p| {
            let overrides: serde_json::Map<String, serde_json::Value> = p
                .overrides
                .iter()
                .map(|o| {
                    (
                        o.key.clone(),
                        serde_json::to_value(&o.value).unwrap_or(serde_json::Value::Null),
                    )
                })
                .collect();
            let id = p.id();
            let hash = id.rsplit_once('-').map_or("", |(_, h)| h).to_string();
            json!({
                "index": p.index,
                "overrides": overrides,
                "hash": hash,
                "run_dir": p.dir.path.display().to_string(),
                "base": base.display().to_string(),
                "set": spec::set_args(&p.overrides),
                "early_stop": sweep.early_stop.map(|r| r.to_arg()),
            })
            .to_string()
                + "\n"
        })
        .collect()
}

pub fn write_manifest(dir: &Path, sweep: &Sweep, planned: &[Planned]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create sweep directory", dir, e))?;
    crate::rundir::atomic::write(
        &dir.join("manifest.jsonl"),
        manifest(sweep, planned).as_bytes(),
    )
}

/// Counts of trials per state, for `runner sweep status`.
pub fn status_line(planned: &[Planned]) -> String {
    let count = |s: TrialState| planned.iter().filter(|p| p.state() == s).count();
    format!(
        "{} trials: {} done, {} pruned, {} running, {} failed, {} missing",
        planned.len(),
        count(TrialState::Done),
        count(TrialState::Pruned),
        count(TrialState::Running),
        count(TrialState::Failed),
        count(TrialState::Missing)
    )
}

/// Outcome of one `runner run` child.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub index: usize,
    pub exit_code: Option<i32>,
}

/// Runs every trial whose directory is not complete, `jobs` at a time as separate `runner run`
/// processes, each with its share of the cores. A failing trial does not stop the others.
pub fn execute(
    sweep: &Sweep,
    planned: &[Planned],
    runs_dir: &Path,
    sweep_dir: &Path,
    jobs: usize,
    interrupted: &AtomicBool,
    quiet: bool,
) -> Result<Vec<TrialResult>> {
    let mut seen = std::collections::HashSet::new();
    let pending: Vec<&Planned> = planned
        .iter()
        .filter(|p| {
            !matches!(p.state(), TrialState::Done | TrialState::Pruned)
                && seen.insert(p.dir.path.clone())
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cores / jobs.max(1)).max(1);
    let exe = std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find the runner executable: {e}")))?;
    let total = pending.len();
    let mut queue = pending.into_iter();
    let mut running: Vec<(usize, Child, Instant)> = Vec::new();
    let mut results = Vec::new();
    loop {
        while running.len() < jobs.max(1) && !interrupted.load(Ordering::SeqCst) {
            let Some(p) = queue.next() else { break };
            let log_path = sweep_dir.join(format!("trial-{}.log", p.index));
            let log =
                std::fs::File::create(&log_path).map_err(|e| Error::io("create", &log_path, e))?;
            let mut cmd = Command::new(&exe);
            cmd.arg("run")
                .arg(&sweep.base)
                .arg("--runs-dir")
                .arg(runs_dir);
            for s in spec::set_args(&p.overrides) {
                cmd.arg("--set").arg(s);
            }
            if let Some(rule) = sweep.early_stop {
                cmd.arg("--early-stop-manifest")
                    .arg(sweep_dir.join("manifest.jsonl"));
                cmd.arg("--early-stop").arg(rule.to_arg());
            }
            let child = cmd
                .env("RAYON_NUM_THREADS", threads.to_string())
                .stdin(Stdio::null())
                .stdout(
                    log.try_clone()
                        .map_err(|e| Error::io("open", &log_path, e))?,
                )
                .stderr(log)
                .spawn()
                .map_err(|e| Error::Failed(format!("cannot start trial {}: {e}", p.index)))?;
            let say = |line: String| {
                if !quiet {
                    eprintln!("{line}")
                }
            };
            say(format!(
                "[sweep] started trial {} ({}): {}",
                p.index,
                p.id(),
                spec::set_args(&p.overrides).join(" ")
            ));
            running.push((p.index, child, Instant::now()));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let mut still = Vec::new();
        for (index, mut child, started) in running {
            match child.try_wait() {
                Ok(Some(status)) => {
                    results.push(TrialResult {
                        index,
                        exit_code: status.code(),
                    });
                    let verdict = if status.success() {
                        "done".to_string()
                    } else {
                        format!("FAILED (exit {:?}, see trial-{index}.log)", status.code())
                    };
                    if !quiet {
                        eprintln!(
                            "[sweep] trial {index} {verdict} in {:.1}s ({}/{total})",
                            started.elapsed().as_secs_f64(),
                            results.len()
                        );
                    }
                }
                Ok(None) => still.push((index, child, started)),
                Err(e) => return Err(Error::Failed(format!("lost track of trial {index}: {e}"))),
            }
        }
        running = still;
    }
    Ok(results)
}
