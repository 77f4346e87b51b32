//! A sweep's trials as a journal, and the workers that pull them. Each worker loops: ask the
//! journal for a trial (under its lock: take over a trial whose worker died, else have the
//! strategy propose the next one from the trials that ended), run it as `runner run` (hashed run
//! directory, resume, lock), tell the journal how it ended, until the strategy's budget is
//! proposed and none is left to run. The sweep's whole state is the journal, so any number of
//! workers, here or on other machines sharing the directory, cooperate without a server, and
//! every strategy (grid, zip, random, TPE) runs on every launcher.

use super::journal::{self, Event, Journal};
use super::manifest::{self, Entry};
use super::spec::{self, Sweep, Tpe, Trial};
use super::strategy::{Ended, Params, Strategy};
use super::TrialState;
use crate::error::{Error, Result};
use crate::rundir::RunDir;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FILE_NAME: &str = journal::FILE;

/// A sweep, its strategy, and where it lives.
pub struct Study<'a> {
    pub sweep: &'a Sweep,
    pub strategy: &'a dyn Strategy,
    pub runs_dir: &'a Path,
    /// `<runs-dir>/sweeps/<name>-<hash12>`: [`sweep_dir`] for `[tpe]` sweeps, the hash of the
    /// planned runs (`super::sweep_dir`) for the others.
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
    let base = crate::config::load(&sweep.base, &sweep.set)?;
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

/// How a trial run by [`Study::work`] ended: its exit code and the word the progress line gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub trial: usize,
    pub exit: Option<i32>,
    pub word: String,
}

impl Study<'_> {
    fn journal(&self) -> Journal {
        Journal::new(&self.dir)
    }

    fn run_dir(&self, name: &str) -> RunDir {
        RunDir::new(self.runs_dir.join(name))
    }

    /// Every trial so far: the one replay of the journal, read now.
    pub fn records(&self) -> BTreeMap<usize, TrialRecord> {
        trials(&self.journal().read()).0
    }

    /// What a trial is now, in the words of every sweep: its run directory's state (the run is
    /// the truth, not the journal: a trial whose run was removed or damaged is missing), or
    /// failed when the journal says its run failed before writing its directory.
    pub fn trial_state(&self, r: &TrialRecord) -> TrialState {
        let run = self.run_dir(&r.run);
        match TrialState::of(&run) {
            TrialState::Missing if r.failed.is_some() => TrialState::Failed,
            TrialState::Missing if taken(r, &run) => TrialState::Running,
            state => state,
        }
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
                r.finished.is_some() && TrialState::of(&self.run_dir(&r.run)) == TrialState::Missing
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

    /// Records, without running them, the trials of a fixed strategy whose runs are already
    /// decided (an earlier sweep, or one without a journal, ran them), so that what is left to
    /// run is known before any worker starts. Nothing for adaptive strategies, whose trials
    /// are proposed one at a time.
    pub fn settle(&self) -> Result<()> {
        if !self.strategy.is_fixed() {
            return Ok(());
        }
        self.journal().update(|events| {
            let (records, order) = trials(events);
            let mut new = Vec::new();
            for trial in 0..self.strategy.budget() {
                if !records.contains_key(&trial) {
                    let (events, claim) = self.proposal(trial, &records, &order)?;
                    if claim.is_none() {
                        new.extend(events);
                    }
                }
            }
            Ok(((), new))
        })
    }

    /// Trials that have ended (finished or failed).
    fn ended(&self) -> usize {
        self.records()
            .values()
            .filter(|r| r.finished.is_some() || r.failed.is_some())
            .count()
    }

    /// Trials of the budget that have not ended yet (not proposed, running, or to be taken).
    pub fn unfinished(&self) -> usize {
        self.strategy.budget().saturating_sub(self.ended())
    }

    /// Takes the next trial: one whose worker died, else a new proposal while fewer than the
    /// budget exist. Trials in `skip` (given up by this process) are left alone.
    pub fn ask(&self, skip: &BTreeSet<usize>) -> Result<Ask> {
        self.journal().update(|events| {
            let (records, order) = trials(events);
            let mut waiting = false;
            // Trials whose run ended after their worker died, recorded without running.
            let mut new = Vec::new();
            for (&trial, r) in &records {
                if r.finished.is_some() || r.failed.is_some() || skip.contains(&trial) {
                    continue;
                }
                let run = self.run_dir(&r.run);
                if taken(r, &run) {
                    waiting = true;
                    continue;
                }
                if let Some(finished) = self.decided(trial, &run) {
                    new.push(finished);
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
                new.push(self.started(trial));
                return Ok((Ask::Run(claim), new));
            }
            // New proposals; those whose run is already decided are recorded, not run.
            let unproposed = (0..self.strategy.budget()).filter(|t| !records.contains_key(t));
            for trial in unproposed {
                let (events, claim) = self.proposal(trial, &records, &order)?;
                new.extend(events);
                if let Some(claim) = claim {
                    return Ok((Ask::Run(claim), new));
                }
            }
            Ok((if waiting { Ask::Wait } else { Ask::Done }, new))
        })
    }

    /// The strategy's proposal for `trial` as journal events: proposed and started, with the
    /// claim to run it; or proposed and finished, without a claim, when its run is decided.
    fn proposal(
        &self,
        trial: usize,
        records: &BTreeMap<usize, TrialRecord>,
        order: &[usize],
    ) -> Result<(Vec<Event>, Option<Claim>)> {
        let ended: Vec<Ended> = order
            .iter()
            .filter_map(|t| {
                let r = &records[t];
                Some(Ended {
                    params: &r.params,
                    metric: r.finished.as_ref()?.1,
                })
            })
            .collect();
        // Proposed, not ended: running here or on another worker, or waiting to be taken again.
        let running: Vec<&Params> = records
            .iter()
            .filter(|(&t, r)| t != trial && r.finished.is_none() && r.failed.is_none())
            .map(|(_, r)| &r.params)
            .collect();
        let proposal = self.strategy.propose(trial, &ended, &running);
        let run = crate::run::resolve(&self.sweep.base, &proposal.overrides, self.runs_dir)?.dir;
        let name = run
            .path
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned());
        self.add_to_manifest(trial, &proposal.overrides, &run)?;
        let proposed = Event::Proposed {
            trial,
            params: proposal.params,
            set: spec::set_args(&proposal.overrides),
            run: name,
            at: journal::now(),
        };
        if let Some(finished) = self.decided(trial, &run) {
            return Ok((vec![proposed, finished], None));
        }
        let claim = Claim {
            trial,
            overrides: proposal.overrides,
            run,
        };
        Ok((vec![proposed, self.started(trial)], Some(claim)))
    }

    /// The finished event of a trial whose run is already decided (complete or pruned).
    fn decided(&self, trial: usize, run: &RunDir) -> Option<Event> {
        TrialState::of(run).is_final().then(|| Event::Finished {
            trial,
            status: run
                .read_summary()
                .map_or("complete".into(), |s| s.status.to_string()),
            metric: self.metric(run),
            at: journal::now(),
        })
    }

    /// Early stopping finds a trial's siblings in `manifest.jsonl`: each proposal adds its line
    /// (fixed strategies write the whole manifest before the first trial: then nothing to add).
    fn add_to_manifest(&self, trial: usize, overrides: &Trial, run: &RunDir) -> Result<()> {
        let path = self.dir.join(manifest::FILE);
        let mut entries = if path.is_file() {
            manifest::read(&path)?
        } else {
            Vec::new()
        };
        if entries.iter().any(|e| e.index == trial) {
            return Ok(());
        }
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

    /// The sweep's metric as the run recorded it.
    fn metric(&self, run: &RunDir) -> Option<f64> {
        use crate::report::metrics::ReadMetric;
        let r = crate::report::runs::Run::load(&run.path).ok()?;
        self.sweep
            .metric
            .read(&crate::report::metrics::of(&r, None))
    }

    /// Records how a trial's run ended: finished (complete, pruned, diverged) with its metric, or
    /// failed. An interrupted run (exit 130) is left to be taken again.
    fn tell(&self, claim: &Claim, exit: Option<i32>) -> Result<String> {
        let summary = claim.run.read_summary();
        let status = summary.as_ref().map(|s| s.status.to_string());
        // Only a decided run ends the trial; anything else (a run stopped by a signal) is left
        // for a worker to take again.
        let decided = status.filter(|s| ["complete", "pruned", "diverged"].contains(&s.as_str()));
        let event = match (exit, decided) {
            (Some(0) | Some(5), Some(status)) => Event::Finished {
                trial: claim.trial,
                status,
                metric: self.metric(&claim.run),
                at: journal::now(),
            },
            (Some(0) | Some(5) | Some(130) | None, _) => {
                return Ok(TrialState::Interrupted.word().into())
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

    /// `jobs` workers here, each pulling trials until none is left (or Ctrl-C). Returns how
    /// each trial this process ran ended.
    pub fn work(&self, jobs: usize, interrupted: &AtomicBool, quiet: bool) -> Result<Vec<Outcome>> {
        let exe = super::launch::runner_exe()?;
        let threads = super::launch::threads_per_trial(jobs);
        let outcomes = Mutex::new(Vec::new());
        // Trials whose run stopped without the sweep being stopped: not taken again here.
        let given_up = Mutex::new(BTreeSet::new());
        let say = |line: String| {
            if !quiet {
                crate::errln!("{line}");
            }
        };
        let worker = || -> Result<()> {
            while !interrupted.load(Ordering::SeqCst) {
                let skip = given_up.lock().expect("no worker panics").clone();
                let claim = match self.ask(&skip)? {
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
                if word == TrialState::Interrupted.word() {
                    given_up
                        .lock()
                        .expect("no worker panics")
                        .insert(claim.trial);
                }
                say(format!(
                    "[sweep] trial {} {word} in {:.1}s ({} of {} ended)",
                    claim.trial,
                    started.elapsed().as_secs_f64(),
                    self.ended(),
                    self.strategy.budget()
                ));
                outcomes.lock().expect("no worker panics").push(Outcome {
                    trial: claim.trial,
                    exit,
                    word,
                });
            }
            Ok(())
        };
        std::thread::scope(|scope| -> Result<()> {
            let workers: Vec<_> = (0..jobs.max(1)).map(|_| scope.spawn(worker)).collect();
            for w in workers {
                w.join().expect("workers do not panic")?;
            }
            Ok(())
        })?;
        Ok(outcomes.into_inner().expect("no worker panics"))
    }
}
