//! `runner sweep`: a sweep is a list of run hashes. Trials whose run directory is complete are
//! skipped, so every sweep is resumable and idempotent.

pub mod launch;
pub mod manifest;
pub mod prune;
pub mod slurm;
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

/// The trials still to run: neither complete nor pruned, each run directory once (two trials
/// can resolve to the same run).
pub fn pending(planned: &[Planned]) -> Vec<&Planned> {
    let mut seen = std::collections::HashSet::new();
    planned
        .iter()
        .filter(|p| {
            !matches!(p.state(), TrialState::Done | TrialState::Pruned)
                && seen.insert(p.dir.path.clone())
        })
        .collect()
}
