//! The run directory: its files, their formats, and how they are written.

pub mod atomic;
pub mod meta;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.toml";
pub const METRICS: &str = "metrics.csv";
pub const EVAL: &str = "eval.csv";
pub const SUMMARY: &str = "summary.json";
pub const META: &str = "meta.json";
pub const WEIGHTS: &str = "model.safetensors";

/// Columns of `metrics.csv`, one row per training step.
pub const METRICS_HEADER: [&str; 7] = [
    "step",
    "epoch",
    "loss",
    "accuracy",
    "lr",
    "examples",
    "elapsed_s",
];
/// Columns of `eval.csv`, one row per evaluation on the test set.
pub const EVAL_HEADER: [&str; 4] = ["step", "test_loss", "test_accuracy", "elapsed_s"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Complete,
    Failed,
    Interrupted,
    Diverged,
    /// Stopped early by a sweep's early-stopping rule.
    Pruned,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Running => "running",
            Status::Complete => "complete",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Diverged => "diverged",
            Status::Pruned => "pruned",
        };
        f.write_str(s)
    }
}

/// `summary.json`: the run's state and headline numbers. Rewritten atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub status: Status,
    pub name: String,
    pub hash: String,
    /// Steps the experiment asks for.
    pub steps: u64,
    pub steps_done: u64,
    pub final_test_accuracy: Option<f64>,
    pub final_test_loss: Option<f64>,
    pub best_test_accuracy: Option<f64>,
    pub best_test_step: Option<u64>,
    /// Wall time of the whole run, set-up and evaluations included.
    pub wall_time_s: f64,
    /// Time spent in training steps only.
    pub train_time_s: f64,
    /// `train_time_s` per step, in milliseconds.
    pub ms_per_step: Option<f64>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// The object that `--json` prints for a run: one per line, for `jq` and shell scripts.
pub fn run_json(dir: &Path, summary: Option<&Summary>) -> serde_json::Value {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hash = id.rsplit_once('-').map_or("", |(_, h)| h).to_string();
    serde_json::json!({
        "dir": dir.display().to_string(),
        "name": summary.map(|s| s.name.clone()),
        "hash": hash,
        "status": summary.map_or("unknown".to_string(), |s| s.status.to_string()),
        "steps": summary.map(|s| s.steps),
        "steps_done": summary.map(|s| s.steps_done),
        "test_accuracy": summary.and_then(|s| s.final_test_accuracy),
        "test_loss": summary.and_then(|s| s.final_test_loss),
        "best_test_accuracy": summary.and_then(|s| s.best_test_accuracy),
        "best_test_step": summary.and_then(|s| s.best_test_step),
        "ms_per_step": summary.and_then(|s| s.ms_per_step),
        "wall_time_s": summary.map(|s| s.wall_time_s),
    })
}

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(path: PathBuf) -> Self {
        RunDir { path }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The summary, if the directory has a readable one.
    pub fn read_summary(&self) -> Option<Summary> {
        let text = std::fs::read_to_string(self.file(SUMMARY)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// A run is complete only when its summary says so and its weights exist.
    pub fn is_complete(&self) -> bool {
        self.read_summary()
            .is_some_and(|s| s.status == Status::Complete)
            && self.file(WEIGHTS).is_file()
    }

    /// Empties (or creates) the directory for a fresh attempt.
    pub fn recreate(&self) -> Result<()> {
        if self.path.exists() {
            std::fs::remove_dir_all(&self.path)
                .map_err(|e| Error::io("remove old run directory", &self.path, e))?;
        }
        std::fs::create_dir_all(&self.path)
            .map_err(|e| Error::io("create run directory", &self.path, e))
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value).expect("run files serialise to JSON");
        text.push('\n');
        atomic::write(&self.file(name), text.as_bytes())
    }

    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        atomic::write(&self.file(name), text.as_bytes())
    }
}

/// Appends CSV rows to a run file, flushing so that readers see progress while it runs.
pub struct CsvLog {
    path: PathBuf,
    writer: csv::Writer<std::fs::File>,
}

impl CsvLog {
    pub fn create(path: &Path, header: &[&str]) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
        let mut log = CsvLog {
            path: path.to_path_buf(),
            writer: csv::Writer::from_writer(file),
        };
        log.row(header)?;
        log.flush()?;
        Ok(log)
    }

    pub fn row<I, T>(&mut self, fields: I) -> Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        self.writer
            .write_record(fields)
            .map_err(|e| self.csv_err(e))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| Error::io("write", &self.path, e))
    }

    fn csv_err(&self, e: csv::Error) -> Error {
        match e.into_kind() {
            csv::ErrorKind::Io(io) => Error::io("write", &self.path, io),
            other => Error::Failed(format!("{}: {other:?}", self.path.display())),
        }
    }
}
