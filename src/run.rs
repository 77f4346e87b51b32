//! `runner run`: experiment file to trained network and a complete run directory.
//!
//! [`Run`] owns a run's life: [`Run::prepare`] (data, lock), [`Run::start`] (fresh or resumed
//! from its checkpoint), [`Run::train`] and [`Run::finish`], which records the loop's totals into
//! the summary once.

use crate::config::{self, Experiment, Override};
use crate::data::mnist::Source;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::models::{self, Trainable};
use crate::progress::Progress;
use crate::rundir::checkpoint::{self, Checkpoint};
use crate::rundir::meta::{self, Meta};
use crate::rundir::{self, CsvLog, RunDir, RunLock, Status, Summary};
use crate::train::{self, Checkpointing, EarlyStopping, Outcome, Sinks, Start};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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
    /// Early stopping (a sweep's rule against its sibling trials).
    pub early_stop: Option<Arc<dyn EarlyStopping>>,
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
    let mut exp = config::load(experiment, overrides)?;
    let source = Source::for_config(&exp.data);
    let (data, digest) = match source.known_digest() {
        Some(d) => (None, d),
        None => {
            let data = load_data(&source)?;
            let d = data.digest();
            name_dataset(&mut exp, &source.dir, &d);
            (Some(data), d)
        }
    };
    let dir = RunDir::new(runs_dir.join(exp.run_dir_name(&digest)));
    crate::verbose::say(|| {
        let set: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
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

/// Names the data in `dir` after what its checksums show when the file left the name at its
/// default: a Fashion-MNIST directory resolves to `dataset = "fashion-mnist"`, so the config,
/// `resolve` and every report say what the run trained on. Unknown data left called "mnist" is
/// warned about.
fn name_dataset(exp: &mut Experiment, dir: &Path, digest: &str) {
    if exp.data.dataset != config::schema::VENDORED_DATASET {
        return;
    }
    match crate::data::known::recognise(digest) {
        Some(name) if name != exp.data.dataset => {
            crate::errln!(
                "runner: {} holds {name} (recognised by its checksums); \
                 data.dataset = \"{name}\"",
                dir.display()
            );
            exp.data.dataset = name.to_string();
        }
        Some(_) => {}
        None => crate::errln!(
            "runner: warning: {} is not MNIST (its checksums differ) but data.dataset says \
             \"mnist\"; name it (e.g. --set data.dataset=fashion-mnist) so runs show what they \
             trained on",
            dir.display()
        ),
    }
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
fn resumable(
    dir: &RunDir,
    hash: &str,
    exp: &Experiment,
) -> std::result::Result<Resumption, String> {
    let steps = exp.train.steps;
    let summary = dir
        .read_summary()
        .ok_or("its summary.json is missing or unreadable")?;
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
    let step = ckpt.state.totals.steps_done;
    if step >= steps {
        return Err(format!("the checkpoint is at step {step}"));
    }
    let metrics = CsvLog::resume(
        &dir.file(rundir::METRICS),
        &rundir::METRICS_HEADER,
        step,
        true,
    )
    .map_err(|e| e.to_string())?;
    let eval_header = rundir::eval_header(exp.data.validation > 0);
    let evals = CsvLog::resume(&dir.file(rundir::EVAL), eval_header, step, false)
        .map_err(|e| e.to_string())?;
    if let Some(recorded) = &ckpt.state.logs {
        for (name, want) in [
            (rundir::METRICS, &recorded.metrics),
            (rundir::EVAL, &recorded.eval),
        ] {
            let now = rundir::digest::csv_digest(&dir.file(name)).map_err(|e| e.to_string())?;
            if now != *want {
                return Err(format!(
                    "{name} up to step {step} is not what {} records (edited?)",
                    rundir::CHECKPOINT
                ));
            }
        }
    }
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
        kernels: meta::kernels(),
        threads: rayon::current_num_threads(),
        flush_denormals: crate::fpmode::enabled(),
        started_at,
        finished_at: None,
        command: std::env::args().collect(),
        cwd: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
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
    models::check_supported(&resolved.exp.model, &req.experiment)?;
    run_resolved(req, resolved, wall, interrupted)
}

/// `run` once the experiment is resolved; `wall` is when the command started.
fn run_resolved(
    req: &RunRequest,
    resolved: Resolved,
    wall: Instant,
    interrupted: &AtomicBool,
) -> Result<RunResult> {
    match Run::prepare(req, resolved, wall)? {
        Prepared::Complete(done) => Ok(*done),
        Prepared::Ready(run) => run.start()?.train(interrupted)?.finish(),
    }
}

/// What [`Run::prepare`] found.
enum Prepared<'a> {
    /// The run directory was complete already.
    Complete(Box<RunResult>),
    Ready(Box<Run<'a>>),
}

/// One run from its resolved experiment to its finished run directory, holding the directory's
/// lock throughout.
struct Run<'a> {
    req: &'a RunRequest,
    exp: Experiment,
    source: Source,
    data: Dataset,
    digest: String,
    hash: String,
    dir: RunDir,
    /// When the command started, and the wall time of the run's earlier sessions.
    wall: Instant,
    wall_before: f64,
    _lock: RunLock,
    summary: Summary,
    meta: Option<Meta>,
}

/// A run that has started (fresh or resumed): its directory holds its config and summary.
struct Started<'a> {
    run: Box<Run<'a>>,
    model: Box<dyn Trainable>,
    logs: (CsvLog, CsvLog),
    from: Start,
}

/// A run whose training loop has ended (complete, pruned, diverged or interrupted).
struct Trained<'a> {
    run: Box<Run<'a>>,
    model: Box<dyn Trainable>,
    outcome: Outcome,
}

/// The run's result when its directory is complete and `--force` was not given.
fn already_complete(req: &RunRequest, dir: &RunDir) -> Option<RunResult> {
    (!req.force && dir.is_complete()).then(|| {
        let summary = dir.read_summary().expect("complete runs have a summary");
        RunResult::AlreadyComplete(dir.clone(), summary)
    })
}

impl<'a> Run<'a> {
    /// Loads the data, checks what depends on it, and takes the run directory's lock, unless
    /// the run is complete already (checked again once the lock is held).
    fn prepare(req: &'a RunRequest, resolved: Resolved, wall: Instant) -> Result<Prepared<'a>> {
        let Resolved {
            exp,
            source,
            data,
            digest,
            dir,
        } = resolved;
        if let Some(done) = already_complete(req, &dir) {
            return Ok(Prepared::Complete(Box::new(done)));
        }
        let mut data = match data {
            Some(d) => d,
            None => load_data(&source)?,
        };
        check_split_sizes(req, &exp, &data)?;
        if exp.data.validation > 0 {
            data.hold_out(exp.data.validation, exp.seed);
        }
        if exp.train.batch_size > data.train.len() {
            return Err(Error::Input(format!(
                "{}: key 'train.batch_size': {} is larger than the training set ({} examples); use 1..={}",
                req.experiment.display(),
                exp.train.batch_size,
                data.train.len(),
                data.train.len()
            )));
        }
        create_runs_dir(&req.runs_dir)?;
        let lock = dir.lock(req.wait)?;
        if let Some(done) = already_complete(req, &dir) {
            return Ok(Prepared::Complete(Box::new(done)));
        }
        crate::verbose::say(|| {
            format!(
                "{} threads, CPU {}, kernels {}",
                rayon::current_num_threads(),
                meta::cpu_model(),
                meta::kernels()
            )
        });
        let hash = exp.hash(&digest);
        let summary = Summary::started(&exp.name, &hash, exp.train.steps);
        Ok(Prepared::Ready(Box::new(Run {
            req,
            exp,
            source,
            data,
            digest,
            hash,
            dir,
            wall,
            wall_before: 0.0,
            _lock: lock,
            summary,
            meta: None,
        })))
    }

    /// Continues the run from its checkpoint when it can, else starts it over in a cleared
    /// directory; writes the config, summary and metadata and builds the network.
    fn start(mut self: Box<Self>) -> Result<Started<'a>> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.exp.seed);
        let mut data_rng = rng.clone();
        data_rng.set_stream(1);
        let (logs, from) = match self.resumption() {
            Some(r) => self.resume_from(r),
            None => {
                self.dir.clear()?;
                (None, Start::Fresh(data_rng))
            }
        };
        // Config first: a directory with a summary always has its config, so it reads as a run.
        self.dir
            .write_text(rundir::CONFIG, &self.exp.canonical_toml())?;
        self.dir.write_json(rundir::SUMMARY, &self.summary)?;
        let model = models::build(&self.exp, &mut rng).map_err(|e| self.mark_failed(e))?;
        let meta = match self.meta.take() {
            Some(m) => m,
            None => new_meta(
                &self.data,
                &self.source,
                self.digest.clone(),
                model.parameters(),
                self.summary.started_at.clone(),
            ),
        };
        self.dir.write_json(rundir::META, &meta)?;
        self.meta = Some(meta);
        let logs = match logs {
            Some(l) => l,
            None => {
                let create = |name, header: &[&str]| CsvLog::create(&self.dir.file(name), header);
                let logs = (|| {
                    Ok((
                        create(rundir::METRICS, &rundir::METRICS_HEADER)?,
                        create(
                            rundir::EVAL,
                            rundir::eval_header(self.exp.data.validation > 0),
                        )?,
                    ))
                })();
                logs.map_err(|e| self.mark_failed(e))?
            }
        };
        Ok(Started {
            run: self,
            model,
            logs,
            from,
        })
    }

    /// The run's checkpoint, if it can continue from it (never with `--force`).
    fn resumption(&self) -> Option<Resumption> {
        if self.req.force {
            return None;
        }
        match resumable(&self.dir, &self.hash, &self.exp) {
            Ok(r) => Some(r),
            Err(why) => {
                // Said whenever there was a run to lose: a summary, or files without one.
                if self.dir.file(rundir::SUMMARY).exists() || self.dir.holds_run_files() {
                    crate::errln!("runner: starting {} over: {why}", self.dir.path.display());
                }
                None
            }
        }
    }

    /// Takes over a resumable run's summary and metadata (recording this session in it).
    fn resume_from(&mut self, r: Resumption) -> (Option<(CsvLog, CsvLog)>, Start) {
        let step = r.ckpt.state.totals.steps_done;
        if !self.req.quiet {
            crate::errln!(
                "runner: resuming {} after step {step}",
                self.dir.path.display()
            );
        }
        self.summary = Summary {
            status: Status::Running,
            error: None,
            finished_at: None,
            ..r.summary
        };
        self.meta = r.meta.map(|mut m| {
            m.resumed.push(meta::Resumed {
                at: meta::now(),
                after_step: step,
                threads: rayon::current_num_threads(),
                kernels: meta::kernels(),
                command: std::env::args().collect(),
            });
            m.finished_at = None;
            m
        });
        self.wall_before = r.ckpt.state.totals.wall_time_s;
        (Some((r.metrics, r.evals)), Start::Resume(r.ckpt))
    }

    /// Records a failure in the summary (best effort: the original error is what matters).
    fn mark_failed(&mut self, e: Error) -> Error {
        self.summary.status = match e {
            Error::Interrupted(_) => Status::Interrupted,
            _ => Status::Failed,
        };
        self.summary.error = Some(e.to_string());
        self.summary.wall_time_s = self.wall.elapsed().as_secs_f64();
        self.summary.finished_at = Some(meta::now());
        let _ = self.dir.write_json(rundir::SUMMARY, &self.summary);
        e
    }
}

impl<'a> Started<'a> {
    /// Runs the training loop and, when it completes, writes the weights.
    fn train(self, interrupted: &AtomicBool) -> Result<Trained<'a>> {
        let Started {
            mut run,
            mut model,
            logs: (mut metrics, mut evals),
            from,
        } = self;
        let outcome = (|| {
            let (exp, dir) = (&run.exp, &run.dir);
            let mut progress = Progress::new(exp.train.steps, &exp.name, run.req.quiet);
            let rule = run
                .req
                .early_stop
                .as_ref()
                .map(|rule| move |step: u64, acc: f64| rule.should_stop(&dir.path, step, acc));
            let ckpt_path = dir.file(rundir::CHECKPOINT);
            let best_path = dir.file(rundir::BEST_WEIGHTS);
            let sinks = Sinks {
                metrics: &mut metrics,
                evals: &mut evals,
                progress: &mut progress,
                interrupted,
                prune: rule.as_ref().map(|f| f as &dyn Fn(u64, f64) -> bool),
                best_weights: exp.train.keep_best.then_some(best_path.as_path()),
                checkpoints: Some(Checkpointing {
                    path: &ckpt_path,
                    hash: &run.hash,
                    wall_before: run.wall_before,
                    wall_start: run.wall,
                }),
            };
            run.summary.startup_s = run.wall.elapsed().as_secs_f64();
            let outcome = train::train(exp, &run.data, model.as_mut(), from, sinks)?;
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
        let outcome = outcome.map_err(|e| run.mark_failed(e))?;
        Ok(Trained {
            run,
            model,
            outcome,
        })
    }
}

impl Trained<'_> {
    /// Records the outcome in the summary and metadata, drops the checkpoint of a finished run,
    /// and says how the run ended.
    fn finish(self) -> Result<RunResult> {
        let Trained {
            mut run,
            model,
            mut outcome,
        } = self;
        let finished = !matches!(outcome.status, Status::Interrupted);
        let summary = &mut run.summary;
        if finished {
            let weights = (outcome.status == Status::Complete).then(|| model.weights());
            summary.digests = Some(rundir::digest::Digests::of_run(
                &run.dir,
                weights.as_deref(),
            )?);
        }
        outcome.totals.wall_time_s = run.wall_before + run.wall.elapsed().as_secs_f64();
        summary.record(&outcome.totals);
        summary.status = outcome.status;
        summary.finished_at = Some(meta::now());
        summary.error = outcome.error.clone();
        let mut meta = run.meta.take().expect("started runs have their metadata");
        meta.finished_at = summary.finished_at.clone();
        run.dir.write_json(rundir::META, &meta)?;
        run.dir.write_json(rundir::SUMMARY, summary)?;
        crate::verbose::say(|| {
            format!(
                "wrote {} in {} ({} checkpoints, {:.2} s writing them; start-up {:.2} s)",
                summary.status,
                run.dir.path.display(),
                summary.checkpoints,
                summary.checkpoint_time_s,
                summary.startup_s
            )
        });
        if finished {
            // The final state is in the weights and logs; the checkpoint would only take space.
            let _ = std::fs::remove_file(run.dir.file(rundir::CHECKPOINT));
        }
        let Run { dir, summary, .. } = *run;
        ended(dir, summary, outcome)
    }
}

/// The result of a run whose loop ended with `outcome`: an error for every status but
/// complete and pruned.
fn ended(dir: RunDir, summary: Summary, outcome: Outcome) -> Result<RunResult> {
    let at = dir.path.display();
    match outcome.status {
        Status::Complete | Status::Pruned => Ok(RunResult::Trained(dir, summary)),
        Status::Interrupted => Err(Error::Interrupted(format!(
            "run {at} stopped after step {}; it is marked interrupted and `runner run` (or \
             `runner resume`) continues it from there",
            outcome.totals.steps_done
        ))),
        Status::Diverged => Err(Error::Diverged(format!(
            "run {at}: {}",
            outcome.error.unwrap_or_default()
        ))),
        _ => Err(Error::Failed(format!(
            "run {at}: {}",
            outcome.error.unwrap_or_else(|| "failed".into())
        ))),
    }
}

/// What `train.epochs` and `data.validation` assume of a custom `data.dir`: the training images
/// of an MNIST-format dataset, which the steps of an epoch were counted from.
fn check_split_sizes(req: &RunRequest, exp: &Experiment, data: &Dataset) -> Result<()> {
    let expected = crate::config::TRAIN_IMAGES;
    let have = data.train.len();
    let key = if exp.train.epochs.is_some() {
        "train.epochs"
    } else if exp.data.validation > 0 {
        "data.validation"
    } else {
        return Ok(());
    };
    if have == expected {
        return Ok(());
    }
    Err(Error::Input(format!(
        "{}: key '{key}': counts on the {expected} training images of an MNIST-format dataset, \
         but {} holds {have}; use train.steps (and no data.validation) with this data",
        req.experiment.display(),
        data.dir.display()
    )))
}

fn load_data(source: &Source) -> Result<Dataset> {
    let t0 = Instant::now();
    let data = Dataset::load(source)?;
    crate::verbose::say(|| {
        format!(
            "loaded and checked {} training and {} test images in {:.2} s",
            data.train.len(),
            data.test.len(),
            t0.elapsed().as_secs_f64()
        )
    });
    Ok(data)
}

fn create_runs_dir(runs_dir: &Path) -> Result<()> {
    if runs_dir.exists() && !runs_dir.is_dir() {
        return Err(Error::Io {
            context: format!(
                "runs directory {} exists but is not a directory (choose another with --runs-dir \
                 or RUNNER_RUNS_DIR)",
                runs_dir.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
        });
    }
    std::fs::create_dir_all(runs_dir).map_err(|e| Error::io("create runs directory", runs_dir, e))
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
    models::check_supported(&resolved.exp.model, &config)?;
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
        early_stop: None,
    };
    run_resolved(&req, resolved, wall, interrupted)
}

/// The human summary printed at the end of `runner run` (stdout; scripts can grep `dir:`).
/// With a validation split, its line comes first and picks the best step.
pub fn describe(summary: &Summary, dir: &RunDir) -> String {
    let pct = |x: Option<f64>| x.map_or("-".to_string(), |a| format!("{:.2}%", a * 100.0));
    let best_step = summary.best_test_step.map_or("-".into(), |s| s.to_string());
    let accuracy = match summary.final_val_accuracy {
        Some(val) => format!(
            "val accuracy:   {} (best {} at step {best_step})\ntest accuracy:  {} ({} at step \
             {best_step})",
            pct(Some(val)),
            pct(summary.best_val_accuracy),
            pct(summary.final_test_accuracy),
            pct(summary.best_test_accuracy),
        ),
        None => format!(
            "test accuracy:  {} (best {} at step {best_step})",
            pct(summary.final_test_accuracy),
            pct(summary.best_test_accuracy),
        ),
    };
    format!(
        "run:            {}-{}\nstatus:         {}\nsteps:          {}/{}\n{accuracy}\n\
         test loss:      {}\nms per step:    {}\nwall time:      {:.1}s\ndir:            {}",
        summary.name,
        &summary.hash[..12.min(summary.hash.len())],
        summary.status,
        summary.steps_done,
        summary.steps,
        summary
            .final_test_loss
            .map_or("-".into(), |l| format!("{l:.4}")),
        summary
            .ms_per_step
            .map_or("-".into(), |m| format!("{m:.2}")),
        summary.wall_time_s,
        dir.path.display()
    )
}
