//! How a sweep tells what happened, whatever its strategy: the table of its runs and its exit
//! code when it ends here, or the job a Slurm submission made. Shared by the dispatcher and the
//! pulling workers so that neither imports the other.

use super::args::Output;
use super::stdout::{out, outln};
use crate::error::{Error, Result};
use crate::sweep::slurm;
use std::path::Path;

/// How a sweep run here ended, for its closing output and exit code.
pub struct SweepEnd<'a> {
    pub sort: (crate::report::metrics::Metric, bool),
    pub status: String,
    pub interrupted: bool,
    pub failed: usize,
    pub dir: &'a Path,
}

impl SweepEnd<'_> {
    /// Prints the sweep's runs best first (or one JSON object each) and its status line; the
    /// error says whether it was stopped or trials failed.
    pub fn report(&self, runs: &[crate::report::runs::Run], out: Output) -> Result<()> {
        if out.json {
            super::report::print_runs(runs)?;
        } else if !runs.is_empty() {
            let opts = crate::report::compare::Options {
                sort: self.sort,
                ..Default::default()
            };
            let (table, _) = crate::report::compare::compare(runs, &opts).map_err(Error::Input)?;
            out!("{}", table.render(crate::report::table::Format::Table))?;
        }
        if !out.quiet {
            crate::errln!("{}", self.status);
        }
        if self.interrupted {
            return Err(Error::Interrupted(
                "sweep stopped; run it again to resume".into(),
            ));
        }
        if self.failed > 0 {
            return Err(Error::Failed(format!(
                "{} trial(s) failed; logs in {}",
                self.failed,
                self.dir.display()
            )));
        }
        Ok(())
    }
}

/// Prints what a submission did: the job id on stdout (or one JSON line), the rest on stderr.
pub fn report_submission(
    sub: &slurm::Submission,
    max_parallel: Option<u32>,
    nothing: &str,
    what: &str,
    dir: &Path,
    out: Output,
) -> Result<()> {
    let array = format!(
        "{}{}",
        slurm::array_ranges(&sub.array),
        max_parallel.map_or(String::new(), |k| format!("%{k}"))
    );
    if out.json {
        outln!(
            "{}",
            serde_json::json!({
                "job_id": sub.job.as_ref().map(|j| j.job_id.clone()),
                "array": array,
                "tasks": sub.array.len(),
                "trials": sub.trials,
                "in_slurm": sub.in_slurm,
                "script": (!sub.array.is_empty()).then(|| sub.script.display().to_string()),
            })
        )?;
    }
    let say = |line: String| {
        if !out.quiet {
            crate::errln!("{line}")
        }
    };
    if sub.array.is_empty() {
        say(format!("nothing to submit: {nothing}"));
        return Ok(());
    }
    let what = format!("array {array}: {what}");
    match &sub.job {
        None => say(format!(
            "wrote {} ({what}); not submitted (--dry-run)",
            sub.script.display()
        )),
        Some(job) => {
            if !out.json {
                outln!("{}", job.job_id)?;
            }
            say(format!(
                "submitted Slurm job {} ({what})\nscript: {}\nlogs:   {}/slurm/task-{}_<task>.log\nstatus: runner sweep status <file>",
                job.job_id,
                sub.script.display(),
                dir.display(),
                job.job_id
            ));
        }
    }
    Ok(())
}
