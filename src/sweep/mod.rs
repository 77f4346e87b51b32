//! `runner sweep`: a sweep is a list of run hashes. Trials whose run directory is complete are
//! skipped, so every sweep is resumable and idempotent.

pub mod journal;
pub mod launch;
pub mod manifest;
pub mod prune;
pub mod slurm;
pub mod strategy;
pub mod study;
pub mod tpe;
pub use runner_spec::sweep as spec;

use crate::error::{Error, Result};
use crate::run;
use crate::rundir::{RunDir, Status};
use spec::{Sweep, Trial};
use std::path::{Path, PathBuf};

/// A trial resolved to its run directory.
#[derive(Debug, Clone)]
pub struct Planned {
    pub index: usize,
    pub overrides: Trial,
    pub dir: RunDir,
}

/// Where a trial stands, from its run directory: the run's status, in the words `ls` uses, or
/// missing (never started, or damaged: its files do not match its summary, so it runs again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialState {
    Complete,
    Running,
    Failed,
    Interrupted,
    Diverged,
    /// Stopped early by the sweep's early-stopping rule: decided, not run again.
    Pruned,
    Missing,
}

impl TrialState {
    /// Every state, in the order `sweep status` counts them.
    pub const ALL: [TrialState; 7] = [
        TrialState::Complete,
        TrialState::Pruned,
        TrialState::Running,
        TrialState::Failed,
        TrialState::Interrupted,
        TrialState::Diverged,
        TrialState::Missing,
    ];

    /// The word for it, the same as the run status `ls` shows.
    pub fn word(self) -> &'static str {
        match self {
            TrialState::Complete => "complete",
            TrialState::Running => "running",
            TrialState::Failed => "failed",
            TrialState::Interrupted => "interrupted",
            TrialState::Diverged => "diverged",
            TrialState::Pruned => "pruned",
            TrialState::Missing => "missing",
        }
    }

    /// Decided: a sweep does not run it again.
    pub fn is_final(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned)
    }
}

impl TrialState {
    /// What the trial whose run directory is `dir` is now: the run's status; missing when it
    /// never started or is damaged (its files do not match its summary).
    pub fn of(dir: &RunDir) -> TrialState {
        if dir.is_complete() {
            return TrialState::Complete;
        }
        match dir.read_summary().map(|s| s.status) {
            Some(Status::Running) => TrialState::Running,
            Some(Status::Pruned) => TrialState::Pruned,
            Some(Status::Failed) => TrialState::Failed,
            Some(Status::Interrupted) => TrialState::Interrupted,
            Some(Status::Diverged) => TrialState::Diverged,
            Some(Status::Complete | Status::Damaged) | None => TrialState::Missing,
        }
    }
}

impl Planned {
    pub fn state(&self) -> TrialState {
        TrialState::of(&self.dir)
    }

    pub fn id(&self) -> String {
        self.dir
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// How a trial's `runner run` ended, in the words of trial states: `complete` or `pruned` (what
/// its summary says), `interrupted` (exit 130), `diverged` (exit 5), else `failed` with the exit
/// code and the trial's log.
pub fn verdict(exit: Option<i32>, dir: &RunDir, log: &str) -> String {
    match exit {
        Some(0) => dir
            .read_summary()
            .map_or("complete".to_string(), |s| s.status.to_string()),
        Some(130) => TrialState::Interrupted.word().into(),
        Some(5) => TrialState::Diverged.word().into(),
        Some(code) => format!("failed (exit {code}, see {log})"),
        None => format!("failed (killed by a signal, see {log})"),
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

/// Counts of trials per state, for `runner sweep status`: `6 trials: 4 complete, 0 pruned, ...`.
pub fn status_line(planned: &[Planned]) -> String {
    let states: Vec<TrialState> = planned.iter().map(Planned::state).collect();
    let counts: Vec<String> = TrialState::ALL
        .iter()
        .map(|&s| {
            format!(
                "{} {}",
                states.iter().filter(|&&t| t == s).count(),
                s.word()
            )
        })
        .collect();
    format!("{} trials: {}", planned.len(), counts.join(", "))
}

/// The trials still to run: neither complete nor pruned, each run directory once (two trials
/// can resolve to the same run).
pub fn pending(planned: &[Planned]) -> Vec<&Planned> {
    let mut seen = std::collections::HashSet::new();
    planned
        .iter()
        .filter(|p| !p.state().is_final() && seen.insert(p.dir.path.clone()))
        .collect()
}
