//! The run directory: its files, their formats, and how they are written.

pub mod annotations;
pub mod atomic;
pub mod checkpoint;
pub mod digest;
pub mod integrity;
pub mod logs;
pub mod meta;
pub mod proof;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.toml";
pub const METRICS: &str = "metrics.csv";
pub const EVAL: &str = "eval.csv";
pub const SUMMARY: &str = "summary.json";
pub const META: &str = "meta.json";
pub const WEIGHTS: &str = "model.safetensors";
/// Resumable state of an unfinished run; removed once the run is complete.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// Held (flock) by the process working on the run; says who that is.
pub const LOCK: &str = ".lock";

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
/// Columns of `eval.csv` with a validation split: its two columns after the test set's, so the
/// test columns keep their places.
pub const EVAL_HEADER_WITH_VALIDATION: [&str; 6] = [
    "step",
    "test_loss",
    "test_accuracy",
    "val_loss",
    "val_accuracy",
    "elapsed_s",
];
/// The best weights (`train.keep_best`), written at each new best validation accuracy.
pub const BEST_WEIGHTS: &str = "model-best.safetensors";

/// The columns of `eval.csv` for a run with or without a validation split.
pub fn eval_header(validation: bool) -> &'static [&'static str] {
    if validation {
        &EVAL_HEADER_WITH_VALIDATION
    } else {
        &EVAL_HEADER
    }
}

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
    /// Never written: how a `complete` summary reads when the run's files are missing or do
    /// not match it (see [`integrity`]).
    Damaged,
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
            Status::Damaged => "damaged",
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
    /// Test accuracy at the best evaluation: the best test accuracy, or with a validation split,
    /// the test accuracy where validation accuracy was best.
    pub best_test_accuracy: Option<f64>,
    pub best_test_step: Option<u64>,
    /// The split whose accuracy picked the best evaluation: "test", or "validation" with
    /// `data.validation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_split: Option<String>,
    /// Validation loss and accuracy of the last evaluation, and the best validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_val_accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_val_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_val_accuracy: Option<f64>,
    /// Wall time of the whole run, set-up and evaluations included.
    pub wall_time_s: f64,
    /// Time spent in training steps only.
    pub train_time_s: f64,
    /// `train_time_s` per step, in milliseconds.
    pub ms_per_step: Option<f64>,
    /// Seconds from the start of `runner run` to the first training step of the last session:
    /// config, data loading and checks, building the network (and loading a checkpoint).
    #[serde(default)]
    pub startup_s: f64,
    /// Checkpoints written, and the time spent writing them (over every session).
    #[serde(default)]
    pub checkpoints: u64,
    #[serde(default)]
    pub checkpoint_time_s: f64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// Fingerprints of the results, for `runner verify` (set once the run has finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digests: Option<digest::Digests>,
}

/// What a run has done so far, carried across sessions: kept by the training loop, saved in
/// each checkpoint and recorded into the summary (see [`Summary::record`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Steps completed (and optimizer updates applied).
    #[serde(rename = "step")]
    pub steps_done: u64,
    /// Test loss and accuracy of the last evaluation.
    pub final_eval: Option<(f64, f64)>,
    /// Step and test accuracy of the best evaluation (by validation accuracy when there is a
    /// validation split).
    pub best_eval: Option<(u64, f64)>,
    /// Validation loss and accuracy of the last evaluation, and the best validation accuracy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_val: Option<(f64, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_val: Option<f64>,
    /// Time in training steps only.
    pub train_time_s: f64,
    /// Wall time of every session, up to the checkpoint or the end. After a resume, the file
    /// write of the checkpoint resumed from is not counted in the checkpoint time: its record
    /// was made before it.
    pub wall_time_s: f64,
    /// Checkpoints written, and the time they took.
    pub checkpoints: u64,
    pub checkpoint_time_s: f64,
}

impl Summary {
    /// The summary of a run starting now, at step 0.
    pub fn started(name: &str, hash: &str, steps: u64) -> Summary {
        Summary {
            status: Status::Running,
            name: name.to_string(),
            hash: hash.to_string(),
            steps,
            steps_done: 0,
            final_test_accuracy: None,
            final_test_loss: None,
            best_test_accuracy: None,
            best_test_step: None,
            best_split: None,
            final_val_accuracy: None,
            final_val_loss: None,
            best_val_accuracy: None,
            wall_time_s: 0.0,
            train_time_s: 0.0,
            ms_per_step: None,
            startup_s: 0.0,
            checkpoints: 0,
            checkpoint_time_s: 0.0,
            started_at: meta::now(),
            finished_at: None,
            error: None,
            digests: None,
        }
    }

    /// How a run directory whose summary is missing or unreadable reads: `status`, saying why,
    /// with the name and hash its directory name carries.
    pub fn without_one(dir: &Path, status: Status, why: &str) -> Summary {
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (name, hash) = id.rsplit_once('-').unwrap_or((&id, ""));
        Summary {
            status,
            error: Some(why.to_string()),
            started_at: String::new(),
            ..Summary::started(name, hash, 0)
        }
    }

    /// Copies the run's totals into their summary fields (the one place that does).
    pub fn record(&mut self, t: &Totals) {
        self.steps_done = t.steps_done;
        self.final_test_loss = t.final_eval.map(|(l, _)| l);
        self.final_test_accuracy = t.final_eval.map(|(_, a)| a);
        self.best_test_step = t.best_eval.map(|(s, _)| s);
        self.best_test_accuracy = t.best_eval.map(|(_, a)| a);
        self.final_val_loss = t.final_val.map(|(l, _)| l);
        self.final_val_accuracy = t.final_val.map(|(_, a)| a);
        self.best_val_accuracy = t.best_val;
        self.best_split = t.best_eval.map(|_| {
            if t.final_val.is_some() {
                "validation".to_string()
            } else {
                "test".to_string()
            }
        });
        self.train_time_s = t.train_time_s;
        self.ms_per_step =
            (t.steps_done > 0).then(|| 1000.0 * t.train_time_s / t.steps_done as f64);
        self.checkpoints = t.checkpoints;
        self.checkpoint_time_s = t.checkpoint_time_s;
        self.wall_time_s = t.wall_time_s;
    }
}

/// Opens (creating) a run's lock file without following a link: a `.lock` planted as a
/// symbolic link in a copied run directory is removed (the link, never its target) and a fresh
/// file made; anything else that is not a regular file is an error naming it.
fn open_lock_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let file = match open() {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            std::fs::remove_file(path).map_err(|e| Error::io("remove the link", path, e))?;
            open()
        }
        other => other,
    }
    .map_err(|e| Error::io("open lock file", path, e))?;
    let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !regular {
        return Err(Error::Input(format!(
            "{} is not a regular file; remove it (it is the run's lock)",
            path.display()
        )));
    }
    Ok(file)
}

/// Holds a run directory's lock while alive.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
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

    /// The run's metadata, if `meta.json` is readable.
    pub fn read_meta(&self) -> Option<meta::Meta> {
        let text = std::fs::read_to_string(self.file(META)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The summary, if the directory has a readable one. A `running` run whose lock nobody
    /// holds was killed (or its machine went down): it is reported `interrupted`. A `complete`
    /// one whose files are missing or do not match it is reported `damaged`. Without a
    /// readable summary, a directory that holds other run files reads as `interrupted` (no
    /// summary) or `damaged` (one that does not parse).
    pub fn read_summary(&self) -> Option<Summary> {
        let text = std::fs::read_to_string(self.file(SUMMARY));
        let parsed = text
            .as_ref()
            .ok()
            .map(|t| serde_json::from_str::<Summary>(t));
        let mut summary = match parsed {
            Some(Ok(summary)) => summary,
            _ if !self.holds_run_files() || self.is_locked() => return None,
            // Written whole or not at all: a summary that does not parse was edited.
            Some(Err(_)) => {
                let why = "summary.json is not valid";
                return Some(Summary::without_one(&self.path, Status::Damaged, why));
            }
            // A run killed while starting over (its old summary removed first) looks the same
            // as one whose summary was deleted: not complete, and `run` starts it over.
            None => {
                let why = "summary.json is missing (stopped while starting over, or deleted)";
                return Some(Summary::without_one(&self.path, Status::Interrupted, why));
            }
        };
        if summary.status == Status::Running && self.file(LOCK).exists() && !self.is_locked() {
            summary.status = Status::Interrupted;
            summary.error = Some(
                "stopped without finishing: the process was killed or its machine went down".into(),
            );
        }
        if summary.status == Status::Complete {
            let proven = integrity::check_complete(self, &summary)
                .and_then(|()| proof::check(self, &summary, proof::Depth::Remembered));
            if let Err(why) = proven {
                summary.status = Status::Damaged;
                summary.error = Some(format!("the summary says complete, but {why}"));
            }
        }
        Some(summary)
    }

    /// Whether the directory holds what only a started run writes besides its summary (its
    /// metadata, logs or weights): then it is a run, whatever is missing, not an empty one.
    pub fn holds_run_files(&self) -> bool {
        [META, METRICS, EVAL, WEIGHTS, CHECKPOINT]
            .iter()
            .any(|f| self.file(f).exists())
    }

    /// A run is complete when its summary says so and its files match it.
    pub fn is_complete(&self) -> bool {
        self.read_summary()
            .is_some_and(|s| s.status == Status::Complete)
    }

    /// Takes the run's lock, creating the directory if needed. Another process holding it is
    /// an `Error::Busy` naming that process, unless `wait`, which blocks until it is released.
    /// The lock is released when the returned guard drops, or when the process dies.
    pub fn lock(&self, wait: bool) -> Result<RunLock> {
        use std::io::{Read, Seek, Write};
        std::fs::create_dir_all(&self.path)
            .map_err(|e| Error::io("create run directory", &self.path, e))?;
        let path = self.file(LOCK);
        let mut file = open_lock_file(&path)?;
        // Readers checking for a live holder take a shared lock for an instant: retry a little
        // before concluding that another runner holds it.
        let mut attempt = 0;
        let locked = loop {
            match file.try_lock() {
                Err(std::fs::TryLockError::WouldBlock) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
                if !wait {
                    return Err(Error::Busy(format!(
                        "run {} is in use by another runner ({holder}); wait for it, pass --wait, \
                         or stop that process",
                        self.path.display()
                    )));
                }
                crate::errln!("waiting for run {} ({holder})", self.path.display());
                file.lock().map_err(|e| Error::io("lock", &path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
        }
        let who = format!(
            "pid={} host={} since={}\n",
            std::process::id(),
            meta::host_name(),
            meta::now()
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(who.as_bytes()))
            .map_err(|e| Error::io("write", &path, e))?;
        Ok(RunLock { _file: file })
    }

    /// Whether another process holds the run's lock now (a `running` run whose lock is free
    /// was killed).
    pub fn is_locked(&self) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.file(LOCK))
            .is_ok_and(|f| matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)))
    }

    /// Empties the directory for a fresh attempt, keeping the lock file and the user's tags and
    /// notes (they describe the experiment, not the attempt).
    pub fn clear(&self) -> Result<()> {
        // The summary goes first: a clear cut short must not leave a status claim behind.
        let summary = self.file(SUMMARY);
        if summary.exists() {
            std::fs::remove_file(&summary).map_err(|e| Error::io("remove", &summary, e))?;
        }
        let entries =
            std::fs::read_dir(&self.path).map_err(|e| Error::io("read", &self.path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("read", &self.path, e))?;
            if entry.file_name() == LOCK || entry.file_name() == annotations::ANNOTATIONS {
                continue;
            }
            let p = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            removed.map_err(|e| Error::io("remove", &p, e))?;
        }
        Ok(())
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

    /// Reopens a log for appending after step `last_step`: rows past it (and a partial last
    /// line left by a crash) are dropped, atomically. Fails, leaving the file alone, when the
    /// header differs or, with `contiguous`, when steps 1..=last_step are not all there.
    pub fn resume(path: &Path, header: &[&str], last_step: u64, contiguous: bool) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let bad = |what: String| Error::Failed(format!("{}: {what}", path.display()));
        let mut lines = text.split_inclusive('\n').filter(|l| l.ends_with('\n'));
        let first = lines.next().unwrap_or_default();
        if first.trim_end() != header.join(",") {
            return Err(bad(format!("header is not {}", header.join(","))));
        }
        let mut kept = first.to_string();
        let mut expected = 1;
        for line in lines {
            let step: u64 = line
                .split(',')
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("bad row {:?}", line.trim_end())))?;
            if step > last_step {
                break;
            }
            if contiguous && step != expected {
                return Err(bad(format!("step {expected} is missing")));
            }
            expected = step + 1;
            kept.push_str(line);
        }
        if contiguous && expected != last_step + 1 {
            return Err(bad(format!("step {expected} is missing")));
        }
        atomic::write(path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        Ok(CsvLog {
            path: path.to_path_buf(),
            writer: csv::Writer::from_writer(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and makes the rows durable (before a checkpoint that counts on them).
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.writer
            .get_ref()
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
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
