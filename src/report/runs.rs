//! Reading run directories back: the system of record is the plain files (`config.toml`,
//! `summary.json`, `eval.csv`, `metrics.csv`), read robustly (runs in progress, failed runs,
//! partial last CSV lines, directories that are not runs).

use crate::rundir::annotations::Annotations;
pub use crate::rundir::logs::{EvalRow, StepRow};
use crate::rundir::{self, logs, Status, Summary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One run as read from disk.
#[derive(Debug, Clone)]
pub struct Run {
    pub dir: PathBuf,
    /// Directory name, `<name>-<hash12>`.
    pub id: String,
    pub name: String,
    /// The resolved config flattened to dotted keys, values in TOML spelling, with the defaults
    /// the canonical form leaves out filled in (`config::OMITTED_DEFAULTS`).
    pub config: BTreeMap<String, String>,
    /// `None` when `summary.json` is missing or unreadable and nothing else says the run
    /// started (see `RunDir::read_summary`).
    pub summary: Option<Summary>,
    pub evals: Vec<EvalRow>,
    /// Tags from `annotations.json` (`runner tag`).
    pub tags: BTreeMap<String, String>,
}

impl Run {
    /// Reads a run directory; the error says why it is not one.
    pub fn load(dir: &Path) -> Result<Run, String> {
        let run_dir = rundir::RunDir::new(dir.to_path_buf());
        // A run whose config.toml is gone is still listed (as damaged: its summary cannot be
        // proven), so that it can be seen, retrained or removed; a directory with none of a
        // run's files is not a run.
        let text = match std::fs::read_to_string(dir.join(rundir::CONFIG)) {
            Ok(text) => text,
            Err(_) if run_dir.file(rundir::SUMMARY).exists() || run_dir.holds_run_files() => {
                String::new()
            }
            Err(_) => return Err("no config.toml".to_string()),
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e| format!("config.toml is not valid TOML: {e}"))?;
        let mut config = BTreeMap::new();
        flatten("", &toml::Value::Table(table), &mut config);
        let kind = config.get("model.kind").cloned().unwrap_or_default();
        for (key, value, only_for) in crate::config::OMITTED_DEFAULTS {
            if !text.is_empty() && only_for.is_none_or(|k| kind.trim_matches('"') == k) {
                config
                    .entry(key.to_string())
                    .or_insert_with(|| value.to_string());
            }
        }
        let summary = run_dir.read_summary();
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = config
            .get("name")
            .map(|n| n.trim_matches('"').to_string())
            .or_else(|| summary.as_ref().map(|s| s.name.clone()))
            .unwrap_or_else(|| id.clone());
        let evals = logs::evals(&run_dir);
        let tags = Annotations::read(&run_dir).tags;
        Ok(Run {
            dir: dir.to_path_buf(),
            id,
            name,
            config,
            summary,
            evals,
            tags,
        })
    }

    /// What the run trained on, for ranking runs only against runs on the same data: the
    /// digest of its data files (meta.json), else the dataset's name.
    pub fn dataset(&self) -> String {
        rundir::RunDir::new(self.dir.clone())
            .read_meta()
            .map(|m| m.data_digest)
            .or_else(|| self.config.get("data.dataset").cloned())
            .unwrap_or_default()
    }

    /// The config without `seed`: what seed replicates share, so what groups them.
    pub fn config_without_seed(&self) -> Vec<(String, String)> {
        self.config
            .iter()
            .filter(|(k, _)| k.as_str() != "seed")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The 12-hex hash part of the directory name.
    pub fn hash(&self) -> &str {
        self.id.rsplit_once('-').map_or("", |(_, h)| h)
    }

    pub fn status(&self) -> String {
        self.summary
            .as_ref()
            .map_or("unknown".into(), |s| s.status.to_string())
    }

    /// Steps done: for a run that has not finished (running, killed, failed), the last step its
    /// `metrics.csv` holds, which is ahead of the summary (rewritten only at checkpoints and at
    /// the end); else the summary's count.
    pub fn steps_done(&self) -> u64 {
        let Some(s) = self.summary.as_ref() else {
            return 0;
        };
        if s.status == Status::Complete {
            return s.steps_done;
        }
        let logged = self.steps(Some(1)).last().map_or(0, |row| row.step);
        s.steps_done.max(logged).min(s.steps)
    }

    /// The one JSON object of a run, which every command prints for it (`--json`, `ls --format
    /// json`): its id, place and status, its numbers, its tags, and its config with values in
    /// their TOML types. The field list is in docs/run-directory.md.
    pub fn json(&self) -> serde_json::Value {
        let s = self.summary.as_ref();
        serde_json::json!({
            "run": self.id,
            "dir": self.dir.display().to_string(),
            "name": self.name,
            "hash": self.hash(),
            "status": self.status(),
            "error": s.and_then(|s| s.error.clone()),
            "steps": s.map(|s| s.steps),
            "steps_done": self.steps_done(),
            "test_accuracy": s.and_then(|s| s.final_test_accuracy),
            "test_loss": s.and_then(|s| s.final_test_loss),
            "best_test_accuracy": s.and_then(|s| s.best_test_accuracy),
            "best_test_step": s.and_then(|s| s.best_test_step),
            "val_accuracy": s.and_then(|s| s.final_val_accuracy),
            "val_loss": s.and_then(|s| s.final_val_loss),
            "ms_per_step": s.and_then(|s| s.ms_per_step),
            "wall_time_s": s.map(|s| s.wall_time_s),
            "started_at": s.map(|s| s.started_at.clone()),
            "finished_at": s.and_then(|s| s.finished_at.clone()),
            "tags": self.tags,
            "config": self
                .config
                .iter()
                .map(|(k, v)| (k.clone(), super::table::toml_json(v)))
                .collect::<serde_json::Map<_, _>>(),
        })
    }

    /// Training rows from `metrics.csv`. With `last`, only (at least) the last rows: read from
    /// the end of the file, so that large logs cost little.
    pub fn steps(&self, last: Option<usize>) -> Vec<StepRow> {
        logs::steps(&rundir::RunDir::new(self.dir.clone()), last)
    }
}

fn flatten(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// Every run directory directly under `runs_dir`, sorted by id, plus a warning for each entry
/// that is not a run.
pub fn discover(runs_dir: &Path) -> (Vec<Run>, Vec<String>) {
    let mut runs = Vec::new();
    let mut warnings = Vec::new();
    let Ok(entries) = std::fs::read_dir(runs_dir) else {
        return (
            runs,
            vec![format!(
                "runs directory {} does not exist",
                runs_dir.display()
            )],
        );
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Not runs: sweep directories, and on-demand builds copied for Slurm's nodes.
        if name.starts_with('.') || name == "sweeps" || name == "builds" {
            continue;
        }
        match Run::load(&dir) {
            Ok(run) => runs.push(run),
            Err(why) => warnings.push(format!(
                "skipping {}: not a run directory ({why})",
                dir.display()
            )),
        }
    }
    (runs, warnings)
}

/// `*` and `?` wildcard matching.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether `spec` (not a path) names `run`, the one rule of every command that takes runs: a glob
/// over ids and names (`'mlp-*'`), an exact name (all its runs: `mlp`), an id or an id cut short
/// (`mlp-3e5`: the name, then a prefix of the hash), or a hash prefix (`3e52`). A name is never
/// a prefix of another name: `small-cnn` does not name `small-cnn-reg-...`.
pub fn names(spec: &str, run: &Run) -> bool {
    if spec.contains(['*', '?']) {
        return glob_match(spec, &run.id) || glob_match(spec, &run.name);
    }
    let hash_prefix = |p: &str| {
        !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()) && run.hash().starts_with(p)
    };
    run.name == spec
        || spec
            .strip_prefix(run.name.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(hash_prefix)
        || hash_prefix(spec)
}

/// Runs named by `specs`: directories, or what [`names`] matches under the runs directory.
/// Errors name the spec that matched nothing.
pub fn select(specs: &[String], runs_dir: &Path) -> Result<(Vec<Run>, Vec<String>), String> {
    let (all, warnings) = discover(runs_dir);
    let mut chosen: Vec<Run> = Vec::new();
    let mut warnings = warnings;
    for spec in specs {
        let path = Path::new(spec);
        if path.join(rundir::CONFIG).is_file() || (path.is_dir() && path.components().count() > 1) {
            match Run::load(path) {
                Ok(run) => chosen.push(run),
                Err(why) => warnings.push(format!("skipping {spec}: not a run directory ({why})")),
            }
            continue;
        }
        let matches: Vec<&Run> = all.iter().filter(|r| names(spec, r)).collect();
        if matches.is_empty() {
            return Err(format!(
                "'{spec}' matches no run under {}",
                runs_dir.display()
            ));
        }
        chosen.extend(matches.into_iter().cloned());
    }
    chosen.sort_by(|a, b| a.dir.cmp(&b.dir));
    chosen.dedup_by(|a, b| a.dir == b.dir);
    for run in &chosen {
        if let Some(s) = run.summary.as_ref().filter(|s| s.status == Status::Damaged) {
            warnings.push(format!(
                "{} is damaged ({}); its numbers may be incomplete",
                run.id,
                s.error.as_deref().unwrap_or("")
            ));
        }
    }
    Ok((chosen, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("mlp-*", "mlp-abc"));
        assert!(glob_match("*-ab?", "mlp-abc"));
        assert!(!glob_match("cnn-*", "mlp-abc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", ""));
    }
}
