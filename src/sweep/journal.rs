//! `journal.jsonl`: an adaptive sweep's whole state, one JSON event per line, append-only.
//! Every change happens under an exclusive lock on the file and ends with an fsync, so workers
//! in several processes (or on several Slurm nodes sharing the directory) never lose or tear a
//! line; a line cut short by a crash is skipped when read, and the next append starts on a new
//! line. Like Optuna's journal storage, and unlike a database, it survives NFS and `kill -9`.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The journal's file name in the sweep directory.
pub const FILE: &str = "journal.jsonl";

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A new trial and its parameters; its run directory's name.
    Proposed {
        trial: usize,
        params: serde_json::Map<String, serde_json::Value>,
        /// The trial's `--set` arguments as run, so a worker that takes it over runs exactly
        /// them (the run directory's hash depends on every digit).
        set: Vec<String>,
        run: String,
        at: String,
    },
    /// A worker took the trial (first time or again, after its worker died).
    Started {
        trial: usize,
        host: String,
        pid: u32,
        at: String,
    },
    /// The trial's run ended with a status (complete, pruned, diverged) and its metric.
    Finished {
        trial: usize,
        status: String,
        metric: Option<f64>,
        at: String,
    },
    /// The trial's run failed. Workers leave it until the sweep is started again, which
    /// reopens it (so a trial that always fails runs once per `runner sweep`, not in a loop).
    Failed {
        trial: usize,
        exit: Option<i32>,
        at: String,
    },
    /// `runner sweep` was started again: this failed trial is to be run again.
    Reopened { trial: usize, at: String },
}

impl Event {
    pub fn trial(&self) -> usize {
        match self {
            Event::Proposed { trial, .. }
            | Event::Started { trial, .. }
            | Event::Finished { trial, .. }
            | Event::Failed { trial, .. }
            | Event::Reopened { trial, .. } => *trial,
        }
    }
}

pub struct Journal {
    pub path: PathBuf,
}

impl Journal {
    pub fn new(sweep_dir: &Path) -> Journal {
        Journal {
            path: sweep_dir.join(FILE),
        }
    }

    /// Every complete event, in the order written (no lock: a reader may miss the newest).
    pub fn read(&self) -> Vec<Event> {
        std::fs::read(&self.path).map_or_else(|_| Vec::new(), |t| self.parse(&t))
    }

    /// The events of complete lines. A complete line that is not an event (edited, or bytes
    /// that are not UTF-8) is skipped with a warning naming its line; a last line without its
    /// newline is one a crash cut short, skipped quietly.
    fn parse(&self, bytes: &[u8]) -> Vec<Event> {
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&bytes[..0], |end| &bytes[..end]);
        let mut events = Vec::new();
        for (i, line) in complete.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice(line) {
                Ok(e) => events.push(e),
                Err(_) => crate::errln!(
                    "warning: {} line {}: not a journal event; skipped",
                    self.path.display(),
                    i + 1
                ),
            }
        }
        events
    }

    /// Under the lock: reads the journal, lets `decide` choose events to append from it, appends
    /// them and syncs them to disk before the lock is released.
    pub fn update<T>(&self, decide: impl FnOnce(&[Event]) -> Result<(T, Vec<Event>)>) -> Result<T> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&self.path)
            .map_err(|e| Error::io("open", &self.path, e))?;
        file.lock().map_err(|e| Error::io("lock", &self.path, e))?;
        let mut text = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut text))
            .map_err(|e| Error::io("read", &self.path, e))?;
        let (value, events) = decide(&self.parse(&text))?;
        if !events.is_empty() {
            let mut out = String::new();
            if !text.is_empty() && !text.ends_with(b"\n") {
                out.push('\n'); // end a line a crash cut short; it stays unreadable, and skipped
            }
            for e in &events {
                out += &serde_json::to_string(e).expect("events serialise");
                out.push('\n');
            }
            file.write_all(out.as_bytes())
                .and_then(|_| file.sync_data())
                .map_err(|e| Error::io("append to", &self.path, e))?;
        }
        // The lock goes with the file handle.
        Ok(value)
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(trial: usize) -> Event {
        Event::Finished {
            trial,
            status: "complete".into(),
            metric: Some(trial as f64),
            at: now(),
        }
    }

    #[test]
    fn concurrent_writers_lose_and_tear_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        // Four writers, each with its own open file (as separate processes have), 200 appends
        // each, every append reading the journal first as workers do.
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let j = Journal::new(&path);
                    for i in 0..200 {
                        j.update(|_| Ok(((), vec![finished(w * 1000 + i)])))
                            .unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let events = Journal::new(&path).read();
        assert_eq!(events.len(), 800);
        let mut trials: Vec<usize> = events.iter().map(Event::trial).collect();
        trials.sort_unstable();
        trials.dedup();
        assert_eq!(trials.len(), 800);
    }

    #[test]
    fn a_line_cut_short_is_skipped_and_the_next_append_starts_clean() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        j.update(|_| Ok(((), vec![finished(1)]))).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&j.path)
            .unwrap();
        f.write_all(br#"{"event":"finished","trial":2,"sta"#)
            .unwrap();
        drop(f);
        let read: Vec<usize> = j.read().iter().map(Event::trial).collect();
        assert_eq!(read, vec![1]);
        let seen = j
            .update(|seen| Ok((seen.len(), vec![finished(3)])))
            .unwrap();
        assert_eq!(seen, 1);
        let trials: Vec<usize> = j.read().iter().map(Event::trial).collect();
        assert_eq!(trials, vec![1, 3]);
    }
}
