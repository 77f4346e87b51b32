//! Adaptive (`[tpe]`) sweeps: workers that pull. Each worker loops: ask the journal for a trial
//! (under its lock: take over a trial whose worker died, else propose a new one from the finished
//! trials), run it as `runner run` (hashed run directory, resume, lock), tell the journal how it
//! ended, until the sweep has proposed `trials` and none is left to run. The sweep's whole state
//! is the journal, so any number of workers, here or on other machines sharing the directory,
//! cooperate without a server.

use super::journal::{self, Event, Journal};
use super::manifest::{self, Entry};
use super::spec::{self, Distribution, Sweep, Tpe, Trial};
use super::tpe::{self, Observation, Space};
use crate::config::Override;
use crate::error::{Error, Result};
use crate::rundir::RunDir;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const FILE_NAME: &str = journal::FILE;

/// A `[tpe]` sweep and where it lives.
pub struct Study<'a> {
    pub sweep: &'a Sweep,
    pub tpe: &'a Tpe,
    pub runs_dir: &'a Path,
    /// `<runs-dir>/sweeps/<name>-<hash12>`.
    pub dir: PathBuf,
}

/// A trial a worker took.
pub struct Claim {
    pub trial: usize,
    pub overrides: Trial,
    pub run: RunDir,
}

/// What the journal answers a worker.
pub enum Ask {
    Run(Claim),
    /// Every trial is proposed; some still run elsewhere.
    Wait,
    /// Every trial is proposed and ended.
    Done,
}

/// One trial as the journal tells it.
#[derive(Debug, Clone, Default)]
pub struct TrialRecord {
    pub params: serde_json::Map<String, serde_json::Value>,
    pub set: Vec<String>,
    pub run: String,
    /// `(host, pid)` of the last worker that took it.
    pub worker: Option<(String, u32)>,
    /// `(status, metric)` once it ended.
    pub finished: Option<(String, Option<f64>)>,
    pub failed: Option<Option<i32>>,
    /// Position among the trials that ended (0 first).
    pub finish_order: Option<usize>,
}

/// The trials of a journal, by index, and the finished ones in the order they finished.
pub fn trials(events: &[Event]) -> (BTreeMap<usize, TrialRecord>, Vec<usize>) {
    let mut map: BTreeMap<usize, TrialRecord> = BTreeMap::new();
    let mut order = Vec::new();
    for e in events {
        let t = map.entry(e.trial()).or_default();
        match e {
            Event::Proposed {
                params, set, run, ..
            } => {
                t.params = params.clone();
                t.set = set.clone();
                t.run = run.clone();
            }
            Event::Started { host, pid, .. } => t.worker = Some((host.clone(), *pid)),
            Event::Finished { status, metric, .. } => {
                // A trial ends once (until reopened): a later line for it is not believed.
                if t.finished.is_none() {
                    t.finish_order = Some(order.len());
                    order.push(e.trial());
                    t.finished = Some((status.clone(), *metric));
                }
            }
            Event::Failed { exit, .. } => t.failed = Some(*exit),
            Event::Reopened { .. } => {
                // Run again: failed, or its run directory was removed or damaged after it ended.
                t.failed = None;
                if t.finished.take().is_some() {
                    order.retain(|&o| o != e.trial());
                    t.finish_order = None;
                }
            }
        }
    }
    (map, order)
}

/// The sweep directory: named by a hash of what decides its trials (the base experiment with
/// `[set]`, the search, the metric and the stopping rule), so editing any of them starts a new
/// journal.
pub fn sweep_dir(sweep: &Sweep, tpe: &Tpe, runs_dir: &Path) -> Result<PathBuf> {
    use sha2::{Digest, Sha256};
    let base = crate::config::load(&sweep.base, &set_overrides(sweep))?;
    let mut h = Sha256::new();
    h.update(base.canonical_toml());
    h.update(format!(
        "{tpe:?}\n{:?}\n{}\n{:?}",
        sweep.metric, sweep.maximize, sweep.early_stop
    ));
    let hash = crate::config::hex(&h.finalize());
    Ok(runs_dir
        .join("sweeps")
        .join(format!("{}-{}", sweep.name, &hash[..12])))
}

fn set_overrides(sweep: &Sweep) -> Trial {
    sweep.set.clone()
}

/// The search space of the estimator, axis by axis.
fn space(tpe: &Tpe) -> Vec<Space> {
    tpe.axes
        .iter()
        .map(|(_, d)| match d {
            Distribution::Uniform(lo, hi) => Space::Float {
                lo: *lo,
                hi: *hi,
                log: false,
            },
            Distribution::LogUniform(lo, hi) => Space::Float {
                lo: *lo,
                hi: *hi,
                log: true,
            },
            Distribution::IntRange(lo, hi) => Space::Int { lo: *lo, hi: *hi },
            Distribution::Choice(c) => Space::Choice(c.len()),
        })
        .collect()
}

/// The estimator's value of an axis as the TOML value a trial sets, and back.
fn to_toml(d: &Distribution, x: f64) -> toml::Value {
    match d {
        Distribution::Uniform(..) | Distribution::LogUniform(..) => toml::Value::Float(x),
        Distribution::IntRange(..) => toml::Value::Integer(x as i64),
        Distribution::Choice(c) => c[x as usize].clone(),
    }
}

fn from_json(d: &Distribution, v: &serde_json::Value) -> Option<f64> {
    match d {
        Distribution::Choice(c) => c
            .iter()
            .position(|item| serde_json::to_value(item).ok().as_ref() == Some(v))
            .map(|i| i as f64),
        _ => v.as_f64(),
    }
}

/// Whether the process that last took a trial still runs it: its run's lock is held, or the
/// worker is a live process on this machine.
pub fn taken(record: &TrialRecord, run: &RunDir) -> bool {
    if run.is_locked() {
        return true;
    }
    match &record.worker {
        Some((host, pid)) if *host == crate::rundir::meta::host_name() => {
            // SAFETY: kill with signal 0 only checks that the process exists.
            unsafe { libc::kill(*pid as libc::pid_t, 0) == 0 }
        }
        _ => false,
    }
}

impl Study<'_> {
    /// Every trial so far: the one replay of the journal, read now.
    pub fn records(&self) -> BTreeMap<usize, TrialRecord> {
        trials(&Journal::new(&self.dir).read()).0
    }

    /// What a trial is now, in the words of every sweep: its run directory's state (the run is
    /// the truth, not the journal: a trial whose run was removed or damaged is missing), or
    /// failed when the journal says its run failed before writing its directory.
    pub fn trial_state(&self, r: &TrialRecord) -> super::TrialState {
        use super::TrialState;
        let run = RunDir::new(self.runs_dir.join(&r.run));
        match TrialState::of(&run) {
            TrialState::Missing if r.failed.is_some() => TrialState::Failed,
            TrialState::Missing if taken(r, &run) => TrialState::Running,
            state => state,
        }
    }

    fn journal(&self) -> Journal {
        Journal::new(&self.dir)
    }

    fn started(&self, trial: usize) -> Event {
        Event::Started {
            trial,
            host: crate::rundir::meta::host_name(),
            pid: std::process::id(),
            at: journal::now(),
        }
    }

    /// Marks every failed trial, and every ended trial whose run directory is gone or damaged,
    /// to be run again: what `runner sweep` does when started (not its Slurm workers, which
    /// would otherwise rerun a trial that always fails in a loop). Returns how many.
    pub fn reopen_failed(&self) -> Result<usize> {
        self.journal().update(|events| {
            let (records, _) = trials(events);
            // The run directories are the truth: a trial the journal calls ended whose run was
            // removed or damaged since is not ended.
            let lost = |r: &TrialRecord| {
                r.finished.is_some()
                    && super::TrialState::of(&RunDir::new(self.runs_dir.join(&r.run)))
                        == super::TrialState::Missing
            };
            let reopened: Vec<Event> = records
                .iter()
                .filter(|(_, r)| (r.finished.is_none() && r.failed.is_some()) || lost(r))
                .map(|(&trial, _)| Event::Reopened {
                    trial,
                    at: journal::now(),
                })
                .collect();
            Ok((reopened.len(), reopened))
        })
    }

    /// Trials of the budget that have not ended yet (not proposed, running, or to be taken).
    pub fn unfinished(&self) -> usize {
        let (records, _) = trials(&self.journal().read());
        let ended = records
            .values()
            .filter(|r| r.finished.is_some() || r.failed.is_some())
            .count();
        self.tpe.trials.saturating_sub(ended)
    }

    /// Takes the next trial: one whose worker died, else a new proposal while fewer than
    /// `trials` exist.
    pub fn ask(&self) -> Result<Ask> {
        self.journal().update(|events| {
            let (records, order) = trials(events);
            let mut waiting = false;
            for (&trial, r) in &records {
                if r.finished.is_some() || r.failed.is_some() {
                    continue;
                }
                let run = RunDir::new(self.runs_dir.join(&r.run));
                if taken(r, &run) {
                    waiting = true;
                    continue;
                }
                let overrides = r
                    .set
                    .iter()
                    .map(|s| crate::config::overrides::parse(s))
                    .collect::<std::result::Result<Trial, _>>()
                    .map_err(|e| Error::Input(format!("{FILE_NAME}: trial {trial}: {e}")))?;
                let claim = Claim {
                    trial,
                    overrides,
                    run,
                };
                return Ok((Ask::Run(claim), vec![self.started(trial)]));
            }
            let next = records.keys().next_back().map_or(0, |t| t + 1);
            if next >= self.tpe.trials {
                return Ok((if waiting { Ask::Wait } else { Ask::Done }, Vec::new()));
            }
            let params = self.propose(next, &records, &order);
            let overrides = self.overrides(&params);
            let resolved = crate::run::resolve(&self.sweep.base, &overrides, self.runs_dir)?;
            let run = resolved.dir;
            let name = run
                .path
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            self.add_to_manifest(next, &overrides, &run)?;
            let proposed = Event::Proposed {
                trial: next,
                params,
                set: spec::set_args(&overrides),
                run: name,
                at: journal::now(),
            };
            let claim = Claim {
                trial: next,
                overrides,
                run,
            };
            Ok((Ask::Run(claim), vec![proposed, self.started(next)]))
        })
    }

    /// The parameters of trial `trial`: from the finished trials in the order they finished,
    /// with the random stream of that trial, so replaying the journal proposes the same.
    fn propose(
        &self,
        trial: usize,
        records: &BTreeMap<usize, TrialRecord>,
        order: &[usize],
    ) -> serde_json::Map<String, serde_json::Value> {
        let sign = if self.sweep.maximize { -1.0 } else { 1.0 };
        let observed: Vec<Observation> = order
            .iter()
            .filter_map(|t| {
                let r = &records[t];
                let metric = r.finished.as_ref()?.1?;
                let params = self
                    .tpe
                    .axes
                    .iter()
                    .map(|(k, d)| from_json(d, r.params.get(k)?))
                    .collect::<Option<Vec<f64>>>()?;
                Some(Observation {
                    params,
                    loss: sign * metric,
                })
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.tpe.seed);
        rng.set_stream(trial as u64);
        let x = tpe::propose(&space(self.tpe), &observed, self.tpe.startup, &mut rng);
        self.tpe
            .axes
            .iter()
            .zip(x)
            .map(|((k, d), x)| {
                let v = serde_json::to_value(to_toml(d, x)).unwrap_or(serde_json::Value::Null);
                (k.clone(), v)
            })
            .collect()
    }

    fn overrides(&self, params: &serde_json::Map<String, serde_json::Value>) -> Trial {
        let mut t = set_overrides(self.sweep);
        for (k, d) in &self.tpe.axes {
            if let Some(x) = params.get(k).and_then(|v| from_json(d, v)) {
                t.push(Override::set(k, to_toml(d, x)));
            }
        }
        t
    }

    /// Early stopping finds a trial's siblings in `manifest.jsonl`: each proposal adds its line.
    fn add_to_manifest(&self, trial: usize, overrides: &Trial, run: &RunDir) -> Result<()> {
        let path = self.dir.join(manifest::FILE);
        let mut entries = if path.is_file() {
            manifest::read(&path)?
        } else {
            Vec::new()
        };
        let id = run
            .path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        entries.push(Entry {
            index: trial,
            overrides: overrides
                .iter()
                .filter_map(|o| {
                    Some((o.key.clone(), serde_json::to_value(o.value.as_ref()?).ok()?))
                })
                .collect(),
            hash: id.rsplit_once('-').map_or("", |(_, h)| h).to_string(),
            run_dir: run.path.clone(),
            base: std::path::absolute(&self.sweep.base).unwrap_or_else(|_| self.sweep.base.clone()),
            set: spec::set_args(overrides),
            early_stop: self.sweep.early_stop.map(|r| r.to_arg()),
        });
        crate::rundir::atomic::write(&path, manifest::render(&entries).as_bytes())
    }

    /// Records how a trial's run ended: finished (complete, pruned, diverged) with its metric, or
    /// failed. An interrupted run (exit 130) is left to be taken again.
    fn tell(&self, claim: &Claim, exit: Option<i32>) -> Result<String> {
        use crate::report::metrics::ReadMetric;
        let summary = claim.run.read_summary();
        let status = summary.as_ref().map(|s| s.status.to_string());
        // Only a decided run ends the trial; anything else (a run stopped by a signal) is left
        // for a worker to take again.
        let decided = status.filter(|s| ["complete", "pruned", "diverged"].contains(&s.as_str()));
        let event = match (exit, decided) {
            (Some(0), Some(status)) | (Some(5), Some(status)) => {
                let metric = crate::report::runs::Run::load(&claim.run.path)
                    .ok()
                    .and_then(|r| {
                        self.sweep
                            .metric
                            .read(&crate::report::metrics::of(&r, None))
                    });
                Event::Finished {
                    trial: claim.trial,
                    status,
                    metric,
                    at: journal::now(),
                }
            }
            (Some(0) | Some(5) | Some(130) | None, _) => {
                return Ok(super::TrialState::Interrupted.word().into())
            }
            _ => Event::Failed {
                trial: claim.trial,
                exit,
                at: journal::now(),
            },
        };
        let word = match &event {
            Event::Finished { status, .. } => status.clone(),
            _ => super::verdict(exit, &claim.run, &format!("trial-{}.log", claim.trial)),
        };
        self.journal().update(|_| Ok(((), vec![event])))?;
        Ok(word)
    }

    /// The `runner run` of a claimed trial, with its output appended to `trial-<index>.log`.
    fn run_trial(&self, exe: &Path, claim: &Claim, threads: usize) -> Result<Option<i32>> {
        let mut cmd = super::launch::trial_command(
            exe,
            self.sweep,
            &claim.overrides,
            self.runs_dir,
            &self.dir,
            threads,
        );
        super::launch::die_with_parent(&mut cmd);
        super::launch::log_to(&mut cmd, &self.dir, claim.trial)?;
        let status = cmd
            .status()
            .map_err(|e| Error::Failed(format!("cannot start trial {}: {e}", claim.trial)))?;
        Ok(status.code())
    }

    /// `jobs` workers here, each pulling trials until none is left (or Ctrl-C). Returns the
    /// number of trials that failed in this process.
    pub fn work(&self, jobs: usize, interrupted: &AtomicBool, quiet: bool) -> Result<usize> {
        let exe = super::launch::runner_exe()?;
        let threads = super::launch::threads_per_trial(jobs);
        let failed = std::sync::atomic::AtomicUsize::new(0);
        let say = |line: String| {
            if !quiet {
                crate::errln!("{line}");
            }
        };
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..jobs.max(1))
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        while !interrupted.load(Ordering::SeqCst) {
                            let claim = match self.ask()? {
                                Ask::Run(c) => c,
                                Ask::Wait => {
                                    std::thread::sleep(Duration::from_millis(500));
                                    continue;
                                }
                                Ask::Done => break,
                            };
                            let started = Instant::now();
                            say(format!(
                                "[sweep] started trial {} ({}): {}",
                                claim.trial,
                                claim.run.path.display(),
                                spec::set_args(&claim.overrides).join(" ")
                            ));
                            let exit = self.run_trial(&exe, &claim, threads)?;
                            let word = self.tell(&claim, exit)?;
                            if word.starts_with("failed") {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                            say(format!(
                                "[sweep] trial {} {word} in {:.1}s",
                                claim.trial,
                                started.elapsed().as_secs_f64()
                            ));
                        }
                        Ok(())
                    })
                })
                .collect();
            for w in workers {
                w.join().expect("workers do not panic")?;
            }
            Ok(())
        })?;
        Ok(failed.into_inner())
    }
}
