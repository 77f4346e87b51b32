//! Sweeps on Slurm job arrays. The manifest is the contract: array task `T` of a submission with
//! pack `M` runs the manifest's trials `T*M .. T*M+M-1` (`runner slurm-task`), one after
//! another, each a `runner run` of the base experiment with the trial's overrides. Complete
//! trials are skipped, so submitting again re-runs only what is missing or failed, and an
//! interrupted trial continues from its checkpoint.

use super::Planned;
use crate::error::{Error, Result};
use crate::run::{self, RunRequest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// `sbatch` settings for a submission.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The binary the nodes run (a copy of an on-demand build where they can see it); `None`:
    /// this process's own executable.
    pub executable: Option<PathBuf>,
    pub partition: Option<String>,
    pub time: Option<String>,
    pub cpus_per_task: u16,
    pub mem: Option<String>,
    pub max_parallel: Option<u32>,
    /// Trials run one after another by each array task.
    pub pack: usize,
    pub sbatch_args: Vec<String>,
    /// Seconds before the time limit at which Slurm sends SIGTERM (the run checkpoints).
    pub signal_before_s: u32,
}

/// One submission, a line of `slurm/jobs.jsonl` in the sweep directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub array: Vec<usize>,
    pub pack: usize,
    pub script: String,
    pub submitted_at: String,
    /// Its tasks are pulling workers of the sweep's journal, not fixed shares of the manifest.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub workers: bool,
}

/// What a submission did (or, with `dry_run`, would do).
#[derive(Debug)]
pub struct Submission {
    pub job: Option<Job>,
    pub script: PathBuf,
    pub array: Vec<usize>,
    pub trials: usize,
    /// Trials left out because Slurm already has them queued or running.
    pub in_slurm: usize,
}

/// `0-3,5,7-8`: sorted indices as sbatch's `--array` ranges.
pub fn array_ranges(indices: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        while i + 1 < indices.len() && indices[i + 1] == indices[i] + 1 {
            i += 1;
        }
        out.push(if indices[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", indices[i])
        });
        i += 1;
    }
    out.join(",")
}

/// Single-quotes a word for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The sbatch script. Everything it runs is visible in it; the trials come from the manifest.
pub fn script(
    job_name: &str,
    sweep_dir: &Path,
    work: &Work,
    exe: &Path,
    workdir: &Path,
    array: &[usize],
    opts: &Options,
) -> String {
    let mut s = String::from("#!/bin/bash\n");
    s += &match work {
        Work::Manifest { .. } => {
            let which = match opts.pack {
                1 => "Array task T runs trial T".to_string(),
                p => format!("Array task T runs trials {p}T to {p}T+{}", p - 1),
            };
            format!(
                "# Written by `runner sweep --slurm`. {which} of\n\
                 # manifest.jsonl (complete ones are skipped); an interrupted trial resumes from its\n\
                 # checkpoint when the sweep is submitted again.\n"
            )
        }
        Work::Worker { .. } => {
            "# Written by `runner sweep --slurm --workers`. Each array task is a worker \
             that takes\n# trials from journal.jsonl (a new proposal, or one whose worker died, \
             resumed from its\n# checkpoint), runs them one after another, and ends when the \
             budget is met.\n"
                .to_string()
        }
    };
    let mut directive = |d: String| s += &format!("#SBATCH {d}\n");
    directive(format!("--job-name={job_name}"));
    let limit = opts.max_parallel.map_or(String::new(), |k| format!("%{k}"));
    directive(format!("--array={}{limit}", array_ranges(array)));
    directive(format!(
        "--output={}",
        sweep_dir.join("slurm/task-%A_%a.log").display()
    ));
    directive(format!("--cpus-per-task={}", opts.cpus_per_task));
    directive(format!("--signal=B:TERM@{}", opts.signal_before_s));
    if let Some(p) = &opts.partition {
        directive(format!("--partition={p}"));
    }
    if let Some(t) = &opts.time {
        directive(format!("--time={t}"));
    }
    if let Some(m) = &opts.mem {
        directive(format!("--mem={m}"));
    }
    for a in &opts.sbatch_args {
        directive(a.clone());
    }
    let q = |p: &Path| quote(&p.display().to_string());
    let command = match work {
        Work::Manifest { runs_dir } => format!(
            "slurm-task {} --task \"$SLURM_ARRAY_TASK_ID\" --pack {} --runs-dir {}",
            q(&sweep_dir.join(super::manifest::FILE)),
            opts.pack,
            q(runs_dir),
        ),
        Work::Worker {
            sweep_file,
            runs_dir,
        } => format!(
            "sweep {} --slurm-worker {} --runs-dir {}",
            q(sweep_file),
            quote(&sweep_dir.file_name().unwrap_or_default().to_string_lossy()),
            q(runs_dir),
        ),
    };
    s += &format!(
        "\nexport RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\ncd {}\nexec {} {command}\n",
        q(workdir),
        q(exe),
    );
    s
}

/// What each array task of a submission runs.
pub enum Work<'a> {
    /// Its share of the manifest's trials (`--pack` per task), fixed by the task's index.
    Manifest { runs_dir: &'a Path },
    /// A pulling worker (any strategy): takes trials from the journal until none is left.
    Worker {
        sweep_file: &'a Path,
        runs_dir: &'a Path,
    },
}

/// The name the sweep's jobs carry in Slurm (`squeue --name`).
pub fn job_name(sweep_dir: &Path) -> String {
    format!(
        "runner-{}",
        sweep_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

fn jobs_file(sweep_dir: &Path) -> PathBuf {
    sweep_dir.join("slurm/jobs.jsonl")
}

/// Earlier submissions of this sweep.
pub fn jobs(sweep_dir: &Path) -> Vec<Job> {
    std::fs::read_to_string(jobs_file(sweep_dir))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Slurm's view of a trial: queued or running, and in which array task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InSlurm {
    pub task: String,
    pub state: String,
}

/// Trials of this sweep that Slurm has queued or running (from `squeue`); empty when Slurm's
/// commands are not there.
pub fn active(sweep_dir: &Path) -> BTreeMap<usize, InSlurm> {
    let mut out = BTreeMap::new();
    for (job, t, task) in queued(sweep_dir) {
        if job.workers {
            continue;
        }
        for index in t * job.pack..(t + 1) * job.pack {
            out.insert(index, task.clone());
        }
    }
    out
}

/// The sweep's pulling workers that Slurm has queued or running (from `squeue`).
pub fn active_workers(sweep_dir: &Path) -> Vec<InSlurm> {
    queued(sweep_dir)
        .into_iter()
        .filter(|(job, ..)| job.workers)
        .map(|(.., task)| task)
        .collect()
}

/// The array tasks of this sweep's submissions that `squeue` shows: the submission, the task's
/// index, and its Slurm id and state. Empty when Slurm's commands are not there.
fn queued(sweep_dir: &Path) -> Vec<(Job, usize, InSlurm)> {
    let jobs = jobs(sweep_dir);
    if jobs.is_empty() {
        return Vec::new();
    }
    let Ok(o) = Command::new("squeue")
        .args(["-h", "-r", "-o", "%F %K %T", "--name"])
        .arg(job_name(sweep_dir))
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [job, task, state] = f.as_slice() else {
                return None;
            };
            let submission = jobs.iter().find(|j| j.job_id == *job)?;
            Some((
                submission.clone(),
                task.parse().ok()?,
                InSlurm {
                    task: format!("{job}_{task}"),
                    state: state.to_lowercase(),
                },
            ))
        })
        .collect()
}

/// Final states of finished array tasks from `sacct` (needs Slurm accounting); empty otherwise.
pub fn accounting(sweep_dir: &Path) -> BTreeMap<String, String> {
    let ids: Vec<String> = jobs(sweep_dir).into_iter().map(|j| j.job_id).collect();
    if ids.is_empty() {
        return BTreeMap::new();
    }
    let Ok(o) = Command::new("sacct")
        .args(["-n", "-P", "-X", "-o", "JobID,State", "-j", &ids.join(",")])
        .output()
    else {
        return BTreeMap::new();
    };
    if !o.status.success() {
        return BTreeMap::new();
    }
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let (id, state) = l.split_once('|')?;
            Some((id.to_string(), state.to_lowercase()))
        })
        .collect()
}

/// Slurm's view of the sweep's trials that are not done: one line each, and what sacct knows.
pub fn status(planned: &[Planned], sweep_dir: &Path) -> String {
    let jobs = jobs(sweep_dir);
    if jobs.is_empty() {
        return String::new();
    }
    let active = active(sweep_dir);
    let finished = accounting(sweep_dir);
    let ids: Vec<&str> = jobs.iter().map(|j| j.job_id.as_str()).collect();
    let mut out = format!(
        "Slurm jobs {}: {} trial(s) queued or running (squeue)\n",
        ids.join(", "),
        active.len()
    );
    let workers = active_workers(sweep_dir);
    if !workers.is_empty() {
        let each: Vec<String> = workers
            .iter()
            .map(|w| format!("{} {}", w.task, w.state))
            .collect();
        out += &format!("Slurm workers: {}\n", each.join(", "));
    }
    for p in planned {
        let state = p.state();
        if state.is_final() && !active.contains_key(&p.index) {
            continue;
        }
        let slurm_view = match active.get(&p.index) {
            Some(a) => format!("slurm {} {}", a.task, a.state),
            None => {
                let tasks: Vec<String> = jobs
                    .iter()
                    .filter(|j| !j.workers && j.array.contains(&(p.index / j.pack)))
                    .map(|j| {
                        let id = format!("{}_{}", j.job_id, p.index / j.pack);
                        match finished.get(&id) {
                            Some(s) => format!("{id} {s}"),
                            None => id,
                        }
                    })
                    .collect();
                if tasks.is_empty() && jobs.iter().any(|j| j.workers) {
                    "left to the pulling workers".into()
                } else if tasks.is_empty() {
                    "never submitted".into()
                } else {
                    format!("not in squeue; was {}", tasks.join(", "))
                }
            }
        };
        out += &format!(
            "{:>3}  {:<8}  {}  {}\n",
            p.index,
            state.word(),
            p.id(),
            slurm_view
        );
    }
    out
}

/// Writes the script for the trials that are missing or failed (and not already queued or
/// running in Slurm) and, unless `dry_run`, submits it with `sbatch`. Returns at once.
pub fn submit(
    planned: &[Planned],
    sweep_dir: &Path,
    runs_dir: &Path,
    opts: &Options,
    dry_run: bool,
) -> Result<Submission> {
    let in_slurm = active(sweep_dir);
    let todo: BTreeSet<usize> = planned
        .iter()
        .filter(|p| !p.state().is_final())
        .filter(|p| !in_slurm.contains_key(&p.index))
        .map(|p| p.index)
        .collect();
    let array: Vec<usize> = todo
        .iter()
        .map(|i| i / opts.pack)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (script, job) = if array.is_empty() {
        (PathBuf::new(), None)
    } else {
        let runs_dir = &absolute(runs_dir, "the runs directory")?;
        sbatch(
            sweep_dir,
            &Work::Manifest { runs_dir },
            &array,
            opts,
            dry_run,
        )?
    };
    Ok(Submission {
        job,
        script,
        array,
        trials: todo.len(),
        in_slurm: in_slurm.len(),
    })
}

/// Submits `workers` array tasks that each pull trials of the sweep from its journal
/// (`runner sweep FILE --slurm-worker`), fewer if Slurm already runs some of this sweep's
/// workers or fewer trials are left. Returns at once.
pub fn submit_workers(
    sweep_file: &Path,
    sweep_dir: &Path,
    runs_dir: &Path,
    workers: usize,
    unfinished: usize,
    opts: &Options,
    dry_run: bool,
) -> Result<Submission> {
    let in_slurm = active_workers(sweep_dir).len();
    let wanted = workers.min(unfinished).saturating_sub(in_slurm);
    let array: Vec<usize> = (0..wanted).collect();
    let (script, job) = if array.is_empty() {
        (PathBuf::new(), None)
    } else {
        let sweep_file = absolute(sweep_file, "the sweep file")?;
        let runs_dir = absolute(runs_dir, "the runs directory")?;
        let work = Work::Worker {
            sweep_file: &sweep_file,
            runs_dir: &runs_dir,
        };
        sbatch(sweep_dir, &work, &array, opts, dry_run)?
    };
    Ok(Submission {
        job,
        script,
        array,
        trials: unfinished,
        in_slurm,
    })
}

fn absolute(p: &Path, what: &str) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(&format!("resolve {what}"), p, e))
}

/// Writes the sbatch script of `array` (the paths in `work` absolute) and, unless `dry_run`, submits it and records the job
/// in `slurm/jobs.jsonl`.
fn sbatch(
    sweep_dir: &Path,
    work: &Work,
    array: &[usize],
    opts: &Options,
    dry_run: bool,
) -> Result<(PathBuf, Option<Job>)> {
    let slurm_dir = sweep_dir.join("slurm");
    std::fs::create_dir_all(&slurm_dir).map_err(|e| Error::io("create", &slurm_dir, e))?;
    let script_path = slurm_dir.join(format!(
        "submit-{}.sh",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    ));
    let exe = match &opts.executable {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::Failed(format!("cannot find the runner executable: {e}")))?,
    };
    let workdir = std::env::current_dir()
        .map_err(|e| Error::io("read the current directory", Path::new("."), e))?;
    let text = script(
        &job_name(sweep_dir),
        &absolute(sweep_dir, "the sweep directory")?,
        work,
        &exe,
        &workdir,
        array,
        opts,
    );
    crate::rundir::atomic::write(&script_path, text.as_bytes())?;
    if dry_run {
        return Ok((script_path, None));
    }
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(&script_path)
        .output()
        .map_err(|e| {
            Error::Failed(format!(
                "cannot run sbatch ({e}); is Slurm installed here? --dry-run writes the script \
                 ({}) without submitting",
                script_path.display()
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Failed(format!(
            "sbatch {} failed: {}",
            script_path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // `--parsable` prints `jobid` or `jobid;cluster`.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let job_id = stdout.trim().split(';').next().unwrap_or("").to_string();
    let job = Job {
        job_id,
        array: array.to_vec(),
        pack: opts.pack,
        script: script_path.display().to_string(),
        submitted_at: crate::rundir::meta::now(),
        workers: matches!(work, Work::Worker { .. }),
    };
    let mut lines = std::fs::read_to_string(jobs_file(sweep_dir)).unwrap_or_default();
    lines += &(serde_json::to_string(&job).expect("job serialises") + "\n");
    crate::rundir::atomic::write(&jobs_file(sweep_dir), lines.as_bytes())?;
    Ok((script_path, Some(job)))
}

/// `runner slurm-task`: runs array task `task`'s trials of the manifest, one after another.
/// SIGTERM (Slurm's warning before the time limit, preemption, scancel) checkpoints the
/// current trial, marks it interrupted and ends the task.
pub fn run_task(
    manifest: &Path,
    task: usize,
    pack: usize,
    runs_dir: &Path,
    interrupted: &AtomicBool,
    quiet: bool,
) -> Result<()> {
    let trials: Vec<super::manifest::Entry> = super::manifest::read(manifest)?
        .into_iter()
        .filter(|t| (task * pack..(task + 1) * pack).contains(&t.index))
        .collect();
    if trials.is_empty() {
        return Err(Error::Input(format!(
            "{}: no trials for task {task} with pack {pack}",
            manifest.display()
        )));
    }
    let mut failed = Vec::new();
    for t in trials {
        if interrupted.load(Ordering::SeqCst) {
            break;
        }
        crate::errln!("[slurm-task] trial {}: {}", t.index, t.set.join(" "));
        let overrides = t
            .set
            .iter()
            .map(|s| crate::config::overrides::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let early_stop = match &t.early_stop {
            Some(rule) => Some(
                super::prune::EarlyStop {
                    manifest: manifest.to_path_buf(),
                    rule: super::prune::Rule::from_arg(rule).map_err(Error::Input)?,
                }
                .shared(),
            ),
            None => None,
        };
        let req = RunRequest {
            experiment: t.base.clone(),
            overrides,
            runs_dir: runs_dir.to_path_buf(),
            force: false,
            wait: false,
            quiet,
            early_stop,
        };
        match run::run(&req, interrupted) {
            Ok(_) => crate::errln!("[slurm-task] trial {} done", t.index),
            Err(e @ Error::Interrupted(_)) => return Err(e),
            // Another task (an older submission) is on it: not this task's failure.
            Err(Error::Busy(m)) => crate::errln!("[slurm-task] trial {} skipped: {m}", t.index),
            Err(e) => {
                crate::errln!("[slurm-task] trial {} failed: {e}", t.index);
                failed.push(t.index);
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!("trial(s) {failed:?} failed")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_compress_runs() {
        assert_eq!(array_ranges(&[0, 1, 2, 3, 5, 7, 8]), "0-3,5,7-8");
        assert_eq!(array_ranges(&[4]), "4");
        assert_eq!(array_ranges(&[]), "");
    }

    #[test]
    fn the_script_names_every_setting_and_quotes_paths() {
        let opts = Options {
            executable: None,
            partition: Some("gpu".into()),
            time: Some("01:00:00".into()),
            cpus_per_task: 4,
            mem: Some("8G".into()),
            max_parallel: Some(3),
            pack: 2,
            sbatch_args: vec!["--account=ml".into()],
            signal_before_s: 120,
        };
        let s = script(
            "runner-lr-0123",
            Path::new("/r/sweeps/lr-0123"),
            &Work::Manifest {
                runs_dir: Path::new("/r"),
            },
            Path::new("/opt/it's/runner"),
            Path::new("/home/a"),
            &[0, 1, 2, 4],
            &opts,
        );
        for line in [
            "#SBATCH --array=0-2,4%3",
            "#SBATCH --partition=gpu",
            "#SBATCH --time=01:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=8G",
            "#SBATCH --account=ml",
            "#SBATCH --signal=B:TERM@120",
            "#SBATCH --output=/r/sweeps/lr-0123/slurm/task-%A_%a.log",
            "exec '/opt/it'\\''s/runner' slurm-task '/r/sweeps/lr-0123/manifest.jsonl' --task \"$SLURM_ARRAY_TASK_ID\" --pack 2 --runs-dir '/r'",
        ] {
            assert!(s.lines().any(|l| l == line), "{line}\n{s}");
        }
    }

    #[test]
    fn a_worker_script_runs_one_pulling_worker_of_the_named_sweep() {
        let opts = Options {
            executable: None,
            cpus_per_task: 2,
            pack: 1,
            ..Options::default()
        };
        let work = Work::Worker {
            sweep_file: Path::new("/h/sweeps/tpe.toml"),
            runs_dir: Path::new("/r"),
        };
        let s = script(
            "runner-tpe-0123",
            Path::new("/r/sweeps/tpe-0123"),
            &work,
            Path::new("/bin/runner"),
            Path::new("/h"),
            &[0, 1, 2],
            &opts,
        );
        for line in [
            "#SBATCH --array=0-2",
            "exec '/bin/runner' sweep '/h/sweeps/tpe.toml' --slurm-worker 'tpe-0123' --runs-dir '/r'",
        ] {
            assert!(s.lines().any(|l| l == line), "{line}\n{s}");
        }
    }
}
