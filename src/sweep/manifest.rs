//! `manifest.jsonl`: a sweep's trials, one JSON object per line. Written by `runner sweep`,
//! read by `runner slurm-task` (to run a trial) and by early stopping (to find the siblings).

use super::spec::{self, Sweep};
use super::Planned;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The manifest's file name in the sweep directory.
pub const FILE: &str = "manifest.jsonl";

/// One trial: its overrides and run directory, and what `runner slurm-task` needs to run it
/// (the base experiment, absolute; the `--set` arguments; the early-stopping rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub index: usize,
    /// The trial's overrides as typed values, for people and `jq`.
    #[serde(default)]
    pub overrides: serde_json::Map<String, serde_json::Value>,
    /// The run directory's hash (its name's last 12 hex digits).
    #[serde(default)]
    pub hash: String,
    pub run_dir: PathBuf,
    pub base: PathBuf,
    pub set: Vec<String>,
    #[serde(default)]
    pub early_stop: Option<String>,
}

/// The manifest's entries for a planned sweep.
pub fn entries(sweep: &Sweep, planned: &[Planned]) -> Vec<Entry> {
    let base = std::path::absolute(&sweep.base).unwrap_or_else(|_| sweep.base.clone());
    planned
        .iter()
        .map(|p| {
            let id = p.id();
            Entry {
                index: p.index,
                overrides: p
                    .overrides
                    .iter()
                    .map(|o| {
                        let value = serde_json::to_value(&o.value);
                        (o.key.clone(), value.unwrap_or(serde_json::Value::Null))
                    })
                    .collect(),
                hash: id.rsplit_once('-').map_or("", |(_, h)| h).to_string(),
                run_dir: p.dir.path.clone(),
                base: base.clone(),
                set: spec::set_args(&p.overrides),
                early_stop: sweep.early_stop.map(|r| r.to_arg()),
            }
        })
        .collect()
}

/// The manifest's text: one entry per line.
pub fn render(entries: &[Entry]) -> String {
    entries
        .iter()
        .map(|e| serde_json::to_string(e).expect("manifest entries serialise") + "\n")
        .collect()
}

/// Writes the sweep's manifest in `dir` (atomically), creating the directory.
pub fn write(dir: &Path, sweep: &Sweep, planned: &[Planned]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create sweep directory", dir, e))?;
    let text = render(&entries(sweep, planned));
    crate::rundir::atomic::write(&dir.join(FILE), text.as_bytes())
}

/// Every entry of a manifest; a line that is not one is an error naming it.
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line).map_err(|e| {
                Error::Input(format!(
                    "{} line {}: not a manifest entry runner slurm-task can run ({e}); write the \
                     manifest again with `runner sweep FILE --slurm`",
                    path.display(),
                    n + 1
                ))
            })
        })
        .collect()
}

/// The run directories a manifest lists, skipping what cannot be read (early stopping asks
/// this while other trials may be rewriting it: a missing sibling only delays a decision).
pub fn run_dirs(path: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .map(|e| e.run_dir)
        .collect()
}
