//! `runner verify`: re-runs a run (or its first N steps) in a temporary directory and checks that
//! every logged number and every weight comes out bit for bit the same.

use crate::config::overrides;
use crate::error::{Error, Result};
use crate::run::{self, RunRequest, RunResult};
use crate::rundir::digest;
use crate::rundir::{self, checkpoint, RunDir, Status, Summary};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// The outcome of comparing one part of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Check {
    Identical {
        detail: String,
    },
    Differs {
        detail: String,
    },
    /// Nothing to compare against (e.g. no weights kept at that step).
    NotCompared {
        detail: String,
    },
}

impl Check {
    fn differs(&self) -> bool {
        matches!(self, Check::Differs { .. })
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Identical { detail } => write!(f, "bit-identical ({detail})"),
            Check::Differs { detail } => write!(f, "DIFFERS: {detail}"),
            Check::NotCompared { detail } => write!(f, "not compared: {detail}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: String,
    pub steps: u64,
    pub run_steps: u64,
    pub rerun_wall_s: f64,
    pub metrics: Check,
    pub eval: Check,
    pub weights: Check,
    /// The digests in summary.json against the run's files.
    pub recorded_digests: Check,
    pub identical: bool,
    /// The kernels' paths the run was made on (with its resumes, `+`-joined when they differ;
    /// empty if its meta.json does not say) and the re-run's.
    pub run_kernels: String,
    pub rerun_kernels: String,
    /// The git commits of the builds that made the run and the re-run (empty if unknown).
    pub run_build: String,
    pub rerun_build: String,
}

/// The kernels' paths of a run's meta.json (the start's, then any other a resume used,
/// `+`-joined) and the commit of the build that made it.
fn facts_of(run: &RunDir) -> (String, String) {
    let Some(meta) = std::fs::read_to_string(run.file(rundir::META))
        .ok()
        .and_then(|t| serde_json::from_str::<rundir::meta::Meta>(&t).ok())
    else {
        return (String::new(), String::new());
    };
    let mut paths: Vec<String> = Vec::new();
    for k in std::iter::once(meta.kernels).chain(meta.resumed.into_iter().map(|r| r.kernels)) {
        if !k.is_empty() && !paths.contains(&k) {
            paths.push(k);
        }
    }
    (paths.join("+"), meta.git_commit)
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "verify {}: re-ran {} of {} steps in {:.1}s",
            self.run, self.steps, self.run_steps, self.rerun_wall_s
        )?;
        writeln!(f, "  metrics.csv       {}", self.metrics)?;
        writeln!(f, "  eval.csv          {}", self.eval)?;
        writeln!(f, "  weights           {}", self.weights)?;
        writeln!(f, "  summary digests   {}", self.recorded_digests)?;
        if self.run_kernels != self.rerun_kernels {
            writeln!(
                f,
                "  kernels           run on {}, re-run on {}",
                if self.run_kernels.is_empty() {
                    "an unrecorded path"
                } else {
                    &self.run_kernels
                },
                self.rerun_kernels
            )?;
        }
        if !self.identical && self.run_build != self.rerun_build {
            writeln!(
                f,
                "  build             run made by runner {}, re-run by {}: a release that changed \
                 the arithmetic (CHANGELOG.md says which) differs in the last bits",
                if self.run_build.is_empty() {
                    "(unrecorded)"
                } else {
                    &self.run_build
                },
                self.rerun_build
            )?;
        }
        write!(
            f,
            "result: {}",
            if self.identical {
                "bit-identical"
            } else {
                "DIFFERENT"
            }
        )
    }
}

/// Re-runs `dir` for `steps` steps (default: as many as it completed) and compares.
pub fn verify(
    dir: &Path,
    steps: Option<u64>,
    quiet: bool,
    interrupted: &AtomicBool,
) -> Result<Report> {
    let run = RunDir::new(dir.to_path_buf());
    let config = run.file(rundir::CONFIG);
    let summary = verifiable_summary(&run)?;
    let done = summary.steps_done;
    let n = steps.unwrap_or(done);
    if n == 0 || n > done {
        return Err(Error::Input(format!(
            "--steps {n}: the run has {done} logged step{}; use 1..={done}",
            if done == 1 { "" } else { "s" }
        )));
    }
    // A re-run of N steps is the run with train.steps = N: a schedule whose rates depend on the
    // number of steps would run differently.
    let exp = crate::config::load(&config, &[])?;
    crate::models::check_supported(&exp.model, &config)?;
    if let Some(schedule) = exp
        .schedule
        .filter(|s| n < summary.steps && s.depends_on_length())
    {
        return Err(Error::Input(format!(
            "--steps {n}: the run's {} schedule spreads over all {} steps, so its first {n} \
             steps cannot be re-run alone; verify the whole run (without --steps)",
            format!("{:?}", schedule.kind).to_lowercase(),
            summary.steps
        )));
    }
    let tmp = tempfile::Builder::new()
        .prefix("runner-verify-")
        .tempdir()
        .map_err(|e| Error::io("create a temporary directory in", &std::env::temp_dir(), e))?;
    let t0 = Instant::now();
    let rerun = rerun(config, n, tmp.path(), quiet, interrupted)?;
    let rerun_wall_s = t0.elapsed().as_secs_f64();

    let metrics = compare_csv(
        &run.file(rundir::METRICS),
        &rerun.file(rundir::METRICS),
        n,
        true,
    )?;
    let eval = compare_csv(&run.file(rundir::EVAL), &rerun.file(rundir::EVAL), n, false)?;
    let weights = compare_weights(&run, &summary, n, &rerun)?;
    let recorded_digests = check_recorded_digests(&run, &summary);
    let identical = ![&metrics, &eval, &weights, &recorded_digests]
        .iter()
        .any(|c| c.differs());
    let (run_facts, rerun_facts) = (facts_of(&run), facts_of(&rerun));
    Ok(Report {
        run: dir.display().to_string(),
        steps: n,
        run_steps: summary.steps,
        rerun_wall_s,
        metrics,
        eval,
        weights,
        recorded_digests,
        identical,
        run_kernels: run_facts.0,
        rerun_kernels: rerun_facts.0,
        run_build: run_facts.1,
        rerun_build: rerun_facts.1,
    })
}

/// The summary of a run that can be verified. A run whose summary or config is gone has nothing
/// to re-run or compare against: it fails verification (exit 1, as a run that does not
/// reproduce), naming what is missing.
fn verifiable_summary(run: &RunDir) -> Result<rundir::Summary> {
    let dir = &run.path;
    let summary = run.read_summary().ok_or_else(|| {
        Error::Input(format!(
            "{}: not a run directory (needs a readable summary.json and config.toml)",
            dir.display()
        ))
    })?;
    let summary_reads = std::fs::read_to_string(run.file(rundir::SUMMARY))
        .is_ok_and(|t| serde_json::from_str::<rundir::Summary>(&t).is_ok());
    let missing = if !summary_reads {
        Some(rundir::SUMMARY)
    } else if !run.file(rundir::CONFIG).is_file() {
        Some(rundir::CONFIG)
    } else {
        None
    };
    if let Some(file) = missing {
        return Err(Error::Failed(format!(
            "{} is damaged and cannot be verified: its {file} is missing or unreadable",
            dir.display()
        )));
    }
    Ok(summary)
}

/// The run's first `n` steps again, from its own config, into `runs_dir`. A re-run that
/// diverges (as the run did, if it did) is compared all the same.
fn rerun(
    config: std::path::PathBuf,
    n: u64,
    runs_dir: &Path,
    quiet: bool,
    interrupted: &AtomicBool,
) -> Result<RunDir> {
    let req = RunRequest {
        experiment: config,
        overrides: vec![overrides::parse(&format!("train.steps={n}"))?],
        runs_dir: runs_dir.to_path_buf(),
        force: false,
        wait: false,
        quiet,
        early_stop: None,
    };
    match run::run(&req, interrupted) {
        Ok(RunResult::Trained(d, _)) | Ok(RunResult::AlreadyComplete(d, _)) => Ok(d),
        Err(Error::Diverged(_)) => match std::fs::read_dir(runs_dir)
            .ok()
            .and_then(|mut it| it.next())
            .and_then(|e| e.ok())
        {
            Some(e) => Ok(RunDir::new(e.path())),
            None => Err(Error::Failed("the re-run left no directory".into())),
        },
        Err(e) => Err(e),
    }
}

/// Whether the run's files still match the digests its summary recorded when it finished.
fn check_recorded_digests(run: &RunDir, summary: &Summary) -> Check {
    let Some(recorded) = &summary.digests else {
        return Check::NotCompared {
            detail: "summary.json records none (unfinished run, or made before digests)".into(),
        };
    };
    let weights_now = checkpoint::read_weights(&run.file(rundir::WEIGHTS)).unwrap_or_default();
    let weights_now = if recorded.weights.is_empty() {
        BTreeMap::new()
    } else {
        digest::weight_digests(&weights_now)
    };
    let best_now = match recorded.best_weights.is_empty() {
        true => BTreeMap::new(),
        false => digest::weight_digests(
            &checkpoint::read_weights(&run.file(rundir::BEST_WEIGHTS)).unwrap_or_default(),
        ),
    };
    let csv_now = |name| digest::csv_digest(&run.file(name)).ok();
    let changed: Vec<&str> = [
        (
            csv_now(rundir::METRICS).as_ref() != Some(&recorded.metrics),
            "metrics.csv",
        ),
        (
            csv_now(rundir::EVAL).as_ref() != Some(&recorded.eval),
            "eval.csv",
        ),
        (recorded.weights != weights_now, "model.safetensors"),
        (recorded.best_weights != best_now, rundir::BEST_WEIGHTS),
    ]
    .into_iter()
    .filter_map(|(c, name)| c.then_some(name))
    .collect();
    if changed.is_empty() {
        // The digests hold; the config and the summary's numbers must agree with the files too.
        match rundir::proof::check(run, summary, rundir::proof::Depth::Full) {
            Ok(()) => Check::Identical {
                detail: "the files match the digests recorded when the run finished".into(),
            },
            Err(why) => Check::Differs { detail: why },
        }
    } else {
        Check::Differs {
            detail: format!("changed since the run finished: {}", changed.join(", ")),
        }
    }
}

/// Compares the untimed rows of two logs up to step `n`. `all_steps`: both must have every row
/// (metrics); otherwise only steps the original has are compared (evaluations, where the re-run
/// adds one at its last step).
fn compare_csv(original: &Path, rerun: &Path, n: u64, all_steps: bool) -> Result<Check> {
    let (header, a) = match digest::untimed_rows(original) {
        Ok(rows) => rows,
        Err(e) => {
            return Ok(Check::Differs {
                detail: format!("the run's log cannot be read: {e}"),
            })
        }
    };
    let (header_b, b) = digest::untimed_rows(rerun)?;
    let name = original
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if header != header_b {
        return Ok(Check::Differs {
            detail: format!(
                "columns differ: {} vs {}",
                header.join(","),
                header_b.join(",")
            ),
        });
    }
    let step_of = |row: &Vec<String>| row.first().and_then(|s| s.parse::<u64>().ok());
    let a: Vec<_> = a
        .into_iter()
        .filter(|r| step_of(r).is_some_and(|s| s <= n))
        .collect();
    let b: BTreeMap<u64, Vec<String>> = b
        .into_iter()
        .filter_map(|r| step_of(&r).map(|s| (s, r)))
        .collect();
    if all_steps && a.len() as u64 != n {
        return Ok(Check::Differs {
            detail: format!("{name} of the run has {} rows up to step {n}", a.len()),
        });
    }
    for row in &a {
        let step = step_of(row).expect("filtered");
        let Some(other) = b.get(&step) else {
            return Ok(Check::Differs {
                detail: format!("step {step} is missing from the re-run"),
            });
        };
        if let Some(i) = (0..row.len()).find(|&i| row.get(i) != other.get(i)) {
            return Ok(Check::Differs {
                detail: format!(
                    "first difference at step {step}, column {}: {} (run) vs {} (re-run)",
                    header[i],
                    row[i],
                    other.get(i).map_or("-", |s| s.as_str())
                ),
            });
        }
    }
    if a.is_empty() {
        return Ok(Check::NotCompared {
            detail: format!("the run logged no rows up to step {n}"),
        });
    }
    Ok(Check::Identical {
        detail: format!(
            "{} row{}, {} columns; timings not compared",
            a.len(),
            if a.len() == 1 { "" } else { "s" },
            header.len()
        ),
    })
}

/// F32 tensors of a safetensors file, by name.
/// The run's weights at step `n`: the final weights when `n` is its last step, else its
/// checkpoint when that is at `n`.
fn compare_weights(
    run: &RunDir,
    summary: &rundir::Summary,
    n: u64,
    rerun: &RunDir,
) -> Result<Check> {
    let finished = matches!(summary.status, Status::Complete | Status::Damaged);
    let original = if n == summary.steps && finished {
        match checkpoint::read_weights(&run.file(rundir::WEIGHTS)) {
            Ok(w) => Some(("final weights", w)),
            Err(e) => {
                return Ok(Check::Differs {
                    detail: format!("the run's final weights cannot be read: {e}"),
                })
            }
        }
    } else {
        checkpoint::load(&run.file(rundir::CHECKPOINT))
            .ok()
            .filter(|c| c.state.totals.steps_done == n)
            .map(|c| {
                let prefix = crate::models::network::MODEL_PREFIX;
                let tensors = c
                    .tensors
                    .into_iter()
                    .filter_map(|t| {
                        let name = t.name.strip_prefix(prefix)?.to_string();
                        Some(crate::ops::params::NamedTensor { name, ..t })
                    })
                    .collect();
                ("checkpoint", tensors)
            })
    };
    let Some((what, original)) = original else {
        return Ok(Check::NotCompared {
            detail: format!(
                "the run keeps no weights at step {n} (only its final step, or its checkpoint's)"
            ),
        });
    };
    let rerun_path = if rerun.file(rundir::WEIGHTS).is_file() {
        rerun.file(rundir::WEIGHTS)
    } else {
        return Ok(Check::Differs {
            detail: "the re-run wrote no weights".into(),
        });
    };
    let (a, b) = (
        digest::weight_digests(&original),
        digest::weight_digests(&checkpoint::read_weights(&rerun_path)?),
    );
    if a.is_empty() {
        return Ok(Check::Differs {
            detail: format!("the run's {what} hold no tensors"),
        });
    }
    // Both maps are sorted by name, so their union is too: each differing tensor once.
    let differing: std::collections::BTreeSet<&String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    let differing: Vec<&String> = differing.into_iter().collect();
    Ok(if differing.is_empty() {
        Check::Identical {
            detail: format!("{} tensors against the run's {what}, by SHA-256", a.len()),
        }
    } else {
        Check::Differs {
            detail: format!(
                "tensors {} differ from the run's {what}",
                differing
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    })
}
