//! `runner sweep FILE` by pulling workers, whatever the strategy: here (`-j N` workers) or as a
//! Slurm array of workers (`--slurm --workers K`); and the journal read back (`sweep status` of
//! a `[tpe]` sweep, the closing line of every sweep).

use super::args::{Output, SlurmArgs};
use super::stdout::{out, outln};
use crate::error::{Error, Result};
use crate::report::table::{Cell, Format, Table};
use crate::sweep::study::{Outcome, Study, TrialRecord};
use crate::sweep::{slurm, TrialState};
use std::path::Path;
use std::sync::atomic::Ordering;

/// Runs the sweep here: failed trials (and ended ones whose runs were lost) reopened, trials
/// already decided recorded, then `jobs` workers.
pub fn run(study: &Study, jobs: usize, out: Output) -> Result<()> {
    let reopened = study.reopen_failed()?;
    if reopened > 0 && !out.quiet {
        crate::errln!("[sweep] {reopened} failed trial(s) to run again");
    }
    study.settle()?;
    work(study, jobs, out)
}

/// An array task of `--slurm --workers`: one worker, on the sweep the submission named.
pub fn work_in_slurm(study: &Study, dir_name: &str, file: &Path, out: Output) -> Result<()> {
    if study.dir.file_name().is_none_or(|n| n != dir_name) {
        return Err(Error::Input(format!(
            "{}: this Slurm worker was submitted for sweep {dir_name}, but the file now gives {} \
             (edited since?); the worker stops rather than start another sweep",
            file.display(),
            study.dir.display()
        )));
    }
    work(study, 1, out)
}

/// `--slurm --workers K`: failed trials reopened, then K pulling workers submitted as an array
/// (fewer when some already run or fewer trials are left).
pub fn submit(
    study: &Study,
    file: &Path,
    workers: u32,
    slurm: SlurmArgs,
    dry_run: bool,
    out: Output,
) -> Result<()> {
    if !dry_run {
        study.reopen_failed()?;
        study.settle()?;
    }
    let unfinished = study.unfinished();
    let options = slurm.options(study.runs_dir)?;
    let sub = slurm::submit_workers(
        file,
        &study.dir,
        study.runs_dir,
        workers as usize,
        unfinished,
        &options,
        dry_run,
    )?;
    let records = study.records();
    let nothing = format!(
        "{} ({} worker(s) queued or running in Slurm)",
        summary_line(study, &records),
        sub.in_slurm
    );
    let what = format!(
        "{} worker(s) for {unfinished} unfinished trial(s){}",
        sub.array.len(),
        if sub.in_slurm > 0 {
            format!(", {} already in Slurm", sub.in_slurm)
        } else {
            String::new()
        }
    );
    super::sweep_output::report_submission(
        &sub,
        options.max_parallel,
        &nothing,
        &what,
        &study.dir,
        out,
    )
}

/// Whether a trial's end fails the sweep (exit 1). A grid, zip or random sweep names every
/// trial it wants, so one that diverged failed too; an adaptive search expects some of its
/// proposals to diverge, so only trials that failed to run count.
fn failed(study: &Study, o: &Outcome) -> bool {
    if study.strategy.is_fixed() {
        o.exit != Some(0)
    } else {
        o.word.starts_with("failed")
    }
}

fn work(study: &Study, jobs: usize, out: Output) -> Result<()> {
    let interrupted = super::start_training()?;
    if !out.quiet {
        crate::errln!(
            "[sweep] {} worker(s) pulling from {}",
            jobs.max(1),
            crate::sweep::journal::Journal::new(&study.dir)
                .path
                .display()
        );
    }
    let outcomes = study.work(jobs, &interrupted, out.quiet)?;
    let records = study.records();
    let runs: Vec<crate::report::runs::Run> = records
        .values()
        .filter_map(|r| crate::report::runs::Run::load(&study.runs_dir.join(&r.run)).ok())
        .collect();
    let end = super::sweep_output::SweepEnd {
        sort: (study.sweep.metric, study.sweep.maximize),
        status: summary_line(study, &records),
        interrupted: interrupted.load(Ordering::SeqCst),
        failed: outcomes.iter().filter(|o| failed(study, o)).count(),
        dir: &study.dir,
    };
    end.report(&runs, out)
}

/// A trial's state in words.
fn state(study: &Study, r: &TrialRecord) -> String {
    study.trial_state(r).word().into()
}

fn summary_line(study: &Study, records: &std::collections::BTreeMap<usize, TrialRecord>) -> String {
    // Once per trial: a state may probe the run's lock.
    let states: Vec<String> = records.values().map(|r| state(study, r)).collect();
    let counts: Vec<String> = TrialState::ALL
        .iter()
        .map(|s| {
            let n = states.iter().filter(|w| *w == s.word()).count();
            format!("{n} {}", s.word())
        })
        .collect();
    // The best among complete trials only: an interrupted or pruned trial's number is not
    // comparable.
    let best = records
        .iter()
        .zip(&states)
        .filter(|(_, state)| *state == TrialState::Complete.word())
        .filter_map(|((t, r), _)| Some((t, r.finished.as_ref()?.1?)))
        .max_by(|a, b| {
            let o = a.1.total_cmp(&b.1);
            if study.sweep.maximize {
                o
            } else {
                o.reverse()
            }
        });
    let (scale, decimals, unit) = study.sweep.metric.format();
    format!(
        "{} of {} trials: {}{}",
        records.len(),
        study.strategy.budget(),
        counts.join(", "),
        best.map_or(String::new(), |(t, m)| format!(
            "; best: trial {t}, {} {:.*}{unit}",
            study.sweep.metric.name(),
            decimals,
            m * scale
        ))
    )
}

/// The best so far, the counts, and the proposal history: one row per trial in the order
/// proposed, with the order it finished in.
pub fn status(study: &Study, out: Output) -> Result<()> {
    let records = study.records();
    let metric = study.sweep.metric;
    if out.json {
        for (t, r) in &records {
            outln!(
                "{}",
                serde_json::json!({
                    "trial": t,
                    "state": state(study, r),
                    "run": r.run,
                    "params": r.params,
                    metric.name(): r.finished.as_ref().and_then(|f| f.1),
                    // The same count as the text table's: 1 for the first to finish.
                    "finished": r.finish_order.map(|o| o + 1),
                })
            )?;
        }
        return Ok(());
    }
    outln!("{}", summary_line(study, &records))?;
    let workers = slurm::active_workers(&study.dir);
    if !workers.is_empty() {
        let each: Vec<String> = workers
            .iter()
            .map(|w| format!("{} {}", w.task, w.state))
            .collect();
        outln!("Slurm workers: {}", each.join(", "))?;
    }
    let keys = study.strategy.axes();
    let mut header = vec!["trial", "state", metric.column(), "finished"];
    header.extend(keys.iter().map(|k| k.as_str()));
    header.push("run");
    let mut table = Table {
        headers: header.iter().map(|h| h.to_string()).collect(),
        ..Default::default()
    };
    let (scale, decimals, unit) = metric.format();
    for (t, r) in &records {
        let mut row = vec![
            Cell::text(t.to_string()),
            Cell::text(state(study, r)),
            r.finished
                .as_ref()
                .and_then(|f| f.1)
                .map_or_else(Cell::empty, |m| {
                    Cell::text(format!("{:.*}{unit}", decimals, m * scale))
                }),
            r.finish_order
                .map_or_else(Cell::empty, |o| Cell::text((o + 1).to_string())),
        ];
        for k in &keys {
            row.push(Cell::text(
                r.params.get(k).map_or(String::new(), |v| v.to_string()),
            ));
        }
        row.push(Cell::text(r.run.clone()));
        table.rows.push(row);
    }
    out!("{}", table.render(Format::Table))?;
    Ok(())
}
