//! `runner run`: experiment file to trained network and a complete run directory.

use crate::config::{self, Experiment, Override};
use crate::data::mnist::Source;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models;
use crate::progress::Progress;
use crate::rundir::checkpoint::{self, Checkpoint};
use crate::rundir::meta::{self, Meta};
use crate::rundir::{self, CsvLog, RunDir, Status, Summary};
use crate::train::{self, Checkpointing, Sinks, Start};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// What `runner run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub experiment: PathBuf,
    pub overrides: Vec<Override>,
    pub runs_dir: PathBuf,
    pub force: bool,
    /// Wait for another process holding the run's lock instead of failing.
    pub wait: bool,
    /// No progress output.
    pub quiet: bool,
    /// Median early stopping against the runs of a sweep manifest (set by `runner sweep`).
    pub prune: Option<crate::sweep::prune::EarlyStop>,
}

/// How a `run` ended without error.
#[derive(Debug)]
pub enum RunResult {
    /// Trained now.
    Trained(RunDir, Summary),
    /// The run directory was already complete; nothing was retrained.
    AlreadyComplete(RunDir, Summary),
}

/// The resolved experiment and where its run lives, without loading data when avoidable.
pub struct Resolved {
    pub exp: Experiment,
    pub source: Source,
    /// Loaded already when the dataset digest needed the files (custom `data.dir`).
    pub data: Option<Dataset>,
    pub digest: String,
    pub dir: RunDir,
}

pub fn resolve(experiment: &Path, overrides: &[Override], runs_dir: &Path) -> Result<Resolved> {
    let exp = config::load(experiment, overrides)?;
    models::check_supported(&exp.model)?;
    let source = Source::for_config(&exp.data);
    let (data, digest) = match source.known_digest() {
        Some(d) => (None, d),
        None => {
            let data = Dataset::load(&source)?;
            let d = data.digest();
            (Some(data), d)
        }
    };
    let dir = RunDir::new(runs_dir.join(exp.run_dir_name(&digest)));
    crate::verbose::say(|| {
        let set: Vec<String> = overrides
            .iter()
            .map(|o| format!("{}={}", o.key, o.value))
            .collect();
        format!(
            "{} (overrides: {}): hash {}, run directory {}; data {} (checksums {})",
            experiment.display(),
            if set.is_empty() {
                "none".into()
            } else {
                set.join(" ")
            },
            exp.hash(&digest),
            dir.path.display(),
            source.dir.display(),
            if source.expected.is_some() {
                "enforced"
            } else {
                "recorded, not enforced"
            }
        )
    });
    Ok(Resolved {
        exp,
        source,
        data,
        digest,
        dir,
    })
}

/// A run directory that can continue from its checkpoint.
struct Resumption {
    ckpt: Checkpoint,
    summary: Summary,
    meta: Option<Meta>,
    metrics: CsvLog,
    evals: CsvLog,
}

/// The checkpoint of an unfinished run, if it can be continued exactly: the run stopped
/// (interrupted, killed or failed), the checkpoint belongs to this config, and the logs hold every
/// step up to it. Logs are trimmed to the checkpoint's step. `Err` says why not.
fn resumable(dir: &RunDir, hash: &str, steps: u64) -> std::result::Result<Resumption, String> {
    let summary = dir.read_summary().ok_or("no readable summary.json")?;
    if !matches!(
        summary.status,
        Status::Running | Status::Interrupted | Status::Failed
    ) {
        return Err(match (summary.status, &summary.error) {
            (Status::Damaged, Some(why)) => format!("it is damaged: {why}"),
            (status, _) => format!("its status is {status}"),
        });
    }
    let path = dir.file(rundir::CHECKPOINT);
    if !path.is_file() {
        return Err("it has no checkpoint".into());
    }
    let ckpt = checkpoint::load(&path).map_err(|e| e.to_string())?;
    if ckpt.state.hash != hash {
        return Err("the checkpoint belongs to another configuration".into());
    }
    if ckpt.state.step >= steps {
        return Err(format!("the checkpoint is at step {}", ckpt.state.step));
    }
    let step = ckpt.state.step;
    let metrics = CsvLog::resume(
        &dir.file(rundir::METRICS),
        &rundir::METRICS_HEADER,
        step,
        true,
    )
    .map_err(|e| e.to_string())?;
    let evals = CsvLog::resume(&dir.file(rundir::EVAL), &rundir::EVAL_HEADER, step, false)
        .map_err(|e| e.to_string())?;
    let meta = std::fs::read_to_string(dir.file(rundir::META))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    Ok(Resumption {
        ckpt,
        summary,
        meta,
        metrics,
        evals,
    })
}

fn new_meta(
    data: &Dataset,
    source: &Source,
    digest: String,
    parameters: Vec<(String, Vec<usize>)>,
    started_at: String,
) -> Meta {
    let (runner_version, git_commit, dfdx_version, rustc_version) = meta::build_facts();
    Meta {
        runner_version,
        git_commit,
        dfdx_version,
        rustc_version,
        host: meta::host_name(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpu_model: meta::cpu_model(),
        threads: rayon::current_num_threads(),
        flush_denormals: crate::fpmode::enabled(),
        started_at,
        finished_at: None,
        command: std::env::args().collect(),
        data_dir: data.dir.display().to_string(),
        data_checksums_enforced: source.expected.is_some(),
        data_checksums: data.checksums.iter().cloned().collect(),
        data_digest: digest,
        parameter_count: parameters
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum(),
        parameters,
        resumed: Vec::new(),
    }
}

pub fn run(req: &RunRequest, interrupted: &AtomicBool) -> Result<RunResult> {
    let wall = Instant::now();
    let resolved = resolve(&req.experiment, &req.overrides, &req.runs_dir)?;
    run_resolved(req, resolved, wall, interrupted)
}

/// `run` once the experiment is resolved; `wall` is when the command started.
fn run_resolved(
    req: &RunRequest,
    resolved: Resolved,
    wall: Instant,
    interrupted: &AtomicBool,
) -> Result<RunResult> {
    let Resolved {
        exp,
        source,
        data,
        digest,
        dir,
    } = resolved;
    let already = |dir: &RunDir| {
        (!req.force && dir.is_complete()).then(|| {
            let summary = dir.read_summary().expect("complete runs have a summary");
            RunResult::AlreadyComplete(dir.clone(), summary)
        })
    };
    if let Some(done) = already(&dir) {
        return Ok(done);
    }
    let data = match data {
        Some(d) => d,
        None => {
            let t0 = Instant::now();
            let data = Dataset::load(&source)?;
            crate::verbose::say(|| {
                format!(
                    "loaded and checked {} training and {} test images in {:.2} s",
                    data.train.len(),
                    data.test.len(),
                    t0.elapsed().as_secs_f64()
                )
            });
            data
        }
    };
    if exp.train.batch_size > data.train.len() {
        return Err(Error::Input(format!(
            "{}: key 'train.batch_size': {} is larger than the training set ({} examples); use 1..={}",
            req.experiment.display(),
            exp.train.batch_size,
            data.train.len(),
            data.train.len()
        )));
    }
    if req.runs_dir.exists() && !req.runs_dir.is_dir() {
        return Err(Error::Io {
            context: format!(
                "runs directory {} exists but is not a directory (choose another with --runs-dir \
                 or RUNNER_RUNS_DIR)",
                req.runs_dir.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        });
    }
    std::fs::create_dir_all(&req.runs_dir)
        .map_err(|e| Error::io("create runs directory", &req.runs_dir, e))?;
    let _lock = dir.lock(req.wait)?;
    if let Some(done) = already(&dir) {
        return Ok(done);
    }

    let hash = exp.hash(&digest);
    crate::verbose::say(|| {
        format!(
            "{} threads, CPU {}",
            rayon::current_num_threads(),
            meta::cpu_model()
        )
    });
    let mut rng = ChaCha8Rng::seed_from_u64(exp.seed);
    let mut data_rng = rng.clone();
    data_rng.set_stream(1);
    let resumption = match req.force {
        true => None,
        false => match resumable(&dir, &hash, exp.train.steps) {
            Ok(r) => Some(r),
            Err(why) => {
                if dir.file(rundir::SUMMARY).exists() {
                    eprintln!("runner: starting {} over: {why}", dir.path.display());
                }
                None
            }
        },
    };
    let (mut summary, mut meta_resumed, logs, start) = match resumption {
        Some(r) => {
            let step = r.ckpt.state.step;
            if !req.quiet {
                eprintln!("runner: resuming {} after step {step}", dir.path.display());
            }
            let mut summary = r.summary;
            summary.status = Status::Running;
            summary.error = None;
            summary.finished_at = None;
            (
                summary,
                r.meta.map(|m| (m, step)),
                Some((r.metrics, r.evals)),
                Start::Resume(r.ckpt),
            )
        }
        None => {
            dir.clear()?;
            let summary = Summary {
                status: Status::Running,
                name: exp.name.clone(),
                hash: hash.clone(),
                steps: exp.train.steps,
                steps_done: 0,
                final_test_accuracy: None,
                final_test_loss: None,
                best_test_accuracy: None,
                best_test_step: None,
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
            };
            (summary, None, None, Start::Fresh(data_rng))
        }
    };
    let wall_before = match &start {
        Start::Resume(c) => c.state.wall_time_s,
        Start::Fresh(_) => 0.0,
    };
    // Config first: a directory with a summary always has its config, so it reads as a run.
    dir.write_text(rundir::CONFIG, &exp.canonical_toml())?;
    dir.write_json(rundir::SUMMARY, &summary)?;

    let mut model = match models::build(&exp, &mut rng) {
        Ok(m) => m,
        Err(e) => return Err(mark_failed(&dir, &mut summary, wall, e)),
    };
    let mut meta = match meta_resumed.take() {
        Some((mut m, step)) => {
            m.resumed.push(meta::Resumed {
                at: meta::now(),
                after_step: step,
                threads: rayon::current_num_threads(),
                command: std::env::args().collect(),
            });
            m.finished_at = None;
            m
        }
        None => new_meta(
            &data,
            &source,
            digest,
            model.parameters(),
            summary.started_at.clone(),
        ),
    };
    dir.write_json(rundir::META, &meta)?;

    let mut startup_s = 0.0;
    let outcome = (|| {
        let (mut metrics, mut evals) = match logs {
            Some(l) => l,
            None => (
                CsvLog::create(&dir.file(rundir::METRICS), &rundir::METRICS_HEADER)?,
                CsvLog::create(&dir.file(rundir::EVAL), &rundir::EVAL_HEADER)?,
            ),
        };
        let mut progress = Progress::new(exp.train.steps, &exp.name, req.quiet);
        let rule = req.prune.as_ref().map(|r| {
            let own = dir.path.clone();
            move |step: u64, acc: f64| r.should_prune(&own, step, acc)
        });
        let ckpt_path = dir.file(rundir::CHECKPOINT);
        let sinks = Sinks {
            metrics: &mut metrics,
            evals: &mut evals,
            progress: &mut progress,
            interrupted,
            prune: rule.as_ref().map(|f| f as &dyn Fn(u64, f64) -> bool),
            checkpoints: Some(Checkpointing {
                path: &ckpt_path,
                hash: &hash,
                wall_before,
                wall_start: wall,
            }),
        };
        startup_s = wall.elapsed().as_secs_f64();
        let outcome = train::train(&exp, &data, model.as_mut(), start, sinks)?;
        progress.finish();
        if outcome.status == Status::Complete {
            rundir::atomic::write_with(&dir.file(rundir::WEIGHTS), |tmp| {
                model
                    .save(tmp)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })?;
        }
        Ok(outcome)
    })();
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Err(mark_failed(&dir, &mut summary, wall, e)),
    };

    let finished = !matches!(outcome.status, Status::Interrupted);
    if finished {
        summary.digests = Some(rundir::digest::Digests::of_run(
            &dir,
            (outcome.status == Status::Complete)
                .then(|| model.weights())
                .as_deref(),
        )?);
    }
    summary.status = outcome.status;
    summary.steps_done = outcome.steps_done;
    summary.final_test_loss = outcome.final_eval.map(|(l, _)| l);
    summary.final_test_accuracy = outcome.final_eval.map(|(_, a)| a);
    summary.best_test_step = outcome.best_eval.map(|(s, _)| s);
    summary.best_test_accuracy = outcome.best_eval.map(|(_, a)| a);
    summary.train_time_s = outcome.train_time.as_secs_f64();
    summary.ms_per_step =
        (outcome.steps_done > 0).then(|| 1000.0 * summary.train_time_s / outcome.steps_done as f64);
    summary.startup_s = startup_s;
    summary.checkpoints = outcome.checkpoints;
    summary.checkpoint_time_s = outcome.checkpoint_time.as_secs_f64();
    summary.wall_time_s = wall_before + wall.elapsed().as_secs_f64();
    summary.finished_at = Some(meta::now());
    summary.error = outcome.error.clone();
    meta.finished_at = summary.finished_at.clone();
    dir.write_json(rundir::META, &meta)?;
    dir.write_json(rundir::SUMMARY, &summary)?;
    crate::verbose::say(|| {
        format!(
            "wrote {} in {} ({} checkpoints, {:.2} s writing them; start-up {:.2} s)",
            summary.status,
            dir.path.display(),
            summary.checkpoints,
            summary.checkpoint_time_s,
            summary.startup_s
        )
    });
    if finished {
        // The final state is in the weights and logs; the checkpoint would only take space.
        let _ = std::fs::remove_file(dir.file(rundir::CHECKPOINT));
    }
    match outcome.status {
        Status::Complete | Status::Pruned => Ok(RunResult::Trained(dir, summary)),
        Status::Interrupted => Err(Error::Interrupted(format!(
            "run {} stopped after step {}; it is marked interrupted and `runner run` (or \
             `runner resume`) continues it from there",
            dir.path.display(),
            outcome.steps_done
        ))),
        Status::Diverged => Err(Error::Diverged(format!(
            "run {}: {}",
            dir.path.display(),
            outcome.error.unwrap_or_default()
        ))),
        _ => Err(Error::Failed(format!(
            "run {}: {}",
            dir.path.display(),
            outcome.error.unwrap_or_else(|| "failed".into())
        ))),
    }
}

/// `runner resume RUN`: runs the directory's own config into the directory's parent, which
/// continues it from its checkpoint.
pub fn resume(dir: &Path, wait: bool, quiet: bool, interrupted: &AtomicBool) -> Result<RunResult> {
    let wall = Instant::now();
    let config = dir.join(rundir::CONFIG);
    if !config.is_file() {
        return Err(Error::Input(format!(
            "{}: not a run directory (no config.toml)",
            dir.display()
        )));
    }
    let runs_dir = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let resolved = resolve(&config, &[], &runs_dir)?;
    if resolved.dir.path.file_name() != dir.file_name() {
        return Err(Error::Input(format!(
            "{}: its config.toml belongs to run {}; was the directory renamed or the config edited?",
            dir.display(),
            resolved.dir.path.display()
        )));
    }
    let req = RunRequest {
        experiment: config,
        overrides: Vec::new(),
        runs_dir,
        force: false,
        wait,
        quiet,
        prune: None,
    };
    run_resolved(&req, resolved, wall, interrupted)
}

/// Records a failure in the summary (best effort: the original error is what matters).
fn mark_failed(dir: &RunDir, summary: &mut Summary, wall: Instant, e: Error) -> Error {
    summary.status = match e {
        Error::Interrupted(_) => Status::Interrupted,
        _ => Status::Failed,
    };
    summary.error = Some(e.to_string());
    summary.wall_time_s = wall.elapsed().as_secs_f64();
    summary.finished_at = Some(meta::now());
    let _ = dir.write_json(rundir::SUMMARY, summary);
    e
}

/// The human summary printed at the end of `runner run` (stdout; scripts can grep `dir:`).
pub fn describe(summary: &Summary, dir: &RunDir) -> String {
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |a| format!("{:.2}%", a * 100.0));
    format!(
        "run:            {}-{}\nstatus:         {}\nsteps:          {}/{}\ntest accuracy:  {} (best {} at step {})\n\
         test loss:      {}\nms per step:    {}\nwall time:      {:.1}s\ndir:            {}",
        summary.name,
        &summary.hash[..12.min(summary.hash.len())],
        summary.status,
        summary.steps_done,
        summary.steps,
        pct(summary.final_test_accuracy),
        pct(summary.best_test_accuracy),
        summary.best_test_step.map_or("-".into(), |s| s.to_string()),
        summary.final_test_loss.map_or("-".into(), |l| format!("{l:.4}")),
        summary.ms_per_step.map_or("-".into(), |m| format!("{m:.2}")),
        summary.wall_time_s,
        dir.path.display()
    )
}
