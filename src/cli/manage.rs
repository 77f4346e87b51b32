//! Managing runs: `runner show`, `runner tag`, `runner note`, `runner rm`. Runs are named as
//! every other command names them: a directory, or a name, id or hash prefix, or glob.

use super::args::{Output, RunsDirArg};
use super::report::select;
use super::stdout::outln;
use crate::error::{Error, Result};
use crate::report::runs::{self, Run};
use crate::rundir::annotations::Annotations;
use crate::rundir::{self, RunDir, Status};
use clap::Args;
use runner_spec::text::one_line;

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The runs: directories, names, ids or hash prefixes, or globs.
    #[arg(required = true)]
    pub runs: Vec<String>,
    #[command(flatten)]
    pub store: RunsDirArg,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The runs: a directory, name, id or hash prefix, or glob (every run it matches).
    pub runs: String,
    /// KEY=VALUE sets a tag, ~KEY removes one.
    #[arg(required = true, value_name = "KEY=VALUE|~KEY")]
    pub tags: Vec<String>,
    #[command(flatten)]
    pub store: RunsDirArg,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    /// The runs: a directory, name, id or hash prefix, or glob (every run it matches).
    pub runs: String,
    /// The note (quote it).
    pub text: String,
    #[command(flatten)]
    pub store: RunsDirArg,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// The runs: directories, names, ids or hash prefixes, or globs.
    #[arg(required = true)]
    pub runs: Vec<String>,
    /// Only those that are not complete (failed, interrupted, diverged, pruned, damaged, or
    /// started and never finished).
    #[arg(long)]
    pub incomplete: bool,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove several runs without asking (without it, rm lists them and asks on a terminal,
    /// and refuses elsewhere).
    #[arg(long, short)]
    pub yes: bool,
    #[command(flatten)]
    pub store: RunsDirArg,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only runs that started longer ago than this: 30m, 12h, 7d (a bare number is days).
    #[arg(long, value_name = "AGE", default_value = "7d", value_parser = parse_age)]
    pub older_than: chrono::Duration,
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove cached on-demand builds instead of runs: those a newer build of the same source
    /// supersedes (it has all their networks) and those of other source versions older than
    /// --older-than.
    #[arg(long)]
    pub builds: bool,
    #[command(flatten)]
    pub store: RunsDirArg,
}

/// `30m`, `12h`, `7d`, or a number of days.
fn parse_age(s: &str) -> std::result::Result<chrono::Duration, String> {
    let (number, unit) = match s.trim().char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s.trim(), 'd'),
    };
    let n: i64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: expected an age such as 30m, 12h or 7d"))?;
    match unit {
        'm' => Ok(chrono::Duration::minutes(n)),
        'h' => Ok(chrono::Duration::hours(n)),
        'd' => Ok(chrono::Duration::days(n)),
        _ => Err(format!("{s:?}: the unit is m, h or d")),
    }
}

/// Everything about a run in one place: status, numbers, tags, notes, the command that made it,
/// its files and its config.
pub fn show(args: ShowArgs, out: Output) -> Result<()> {
    for (i, run) in select(&args.runs, &args.store)?.iter().enumerate() {
        let dir = RunDir::new(run.dir.clone());
        let notes = Annotations::read(&dir);
        let command = meta_command(&dir);
        let files = files(&dir);
        if out.json {
            let mut obj = run.json();
            obj["notes"] = serde_json::to_value(&notes.notes).unwrap_or_default();
            obj["command"] = command.clone().into();
            obj["files"] = files
                .iter()
                .map(|(n, size)| (n.clone(), serde_json::Value::from(*size)))
                .collect::<serde_json::Map<_, _>>()
                .into();
            outln!("{obj}")?;
            continue;
        }
        if i > 0 {
            outln!("")?;
        }
        describe(run, &notes, &command, &files)?;
    }
    Ok(())
}

/// Every text from the run's files goes through [`one_line`]: a note or a copied run's
/// summary cannot fake an output line or send escape sequences to the terminal.
fn describe(
    run: &Run,
    notes: &Annotations,
    command: &[String],
    files: &[(String, u64)],
) -> Result<()> {
    outln!("run:       {}", one_line(&run.id))?;
    outln!("dir:       {}", one_line(&run.dir.display().to_string()))?;
    match &run.summary {
        Some(s) => {
            outln!(
                "status:    {} ({}/{} steps)",
                s.status,
                run.steps_done(),
                s.steps
            )?;
            let pct = |x: Option<f64>| x.map_or("-".into(), |a| format!("{:.2}%", a * 100.0));
            outln!(
                "test acc:  {} (best {} at step {})",
                pct(s.final_test_accuracy),
                pct(s.best_test_accuracy),
                s.best_test_step.map_or("-".into(), |x| x.to_string())
            )?;
            if s.final_val_accuracy.is_some() {
                outln!("val acc:   {}", pct(s.final_val_accuracy))?;
            }
            outln!(
                "started:   {}  finished: {}",
                one_line(&s.started_at),
                one_line(s.finished_at.as_deref().unwrap_or("-"))
            )?;
            if let Some(e) = &s.error {
                outln!("error:     {}", one_line(e))?;
            }
        }
        None => outln!("status:    unknown (no readable summary.json)")?,
    }
    if !command.is_empty() {
        outln!("command:   {}", one_line(&command.join(" ")))?;
    }
    if !notes.tags.is_empty() {
        outln!("tags:      {}", one_line(&notes.tag_list()))?;
    }
    for n in &notes.notes {
        outln!("note:      {}  {}", one_line(&n.at), one_line(&n.text))?;
    }
    outln!("files:")?;
    for (name, size) in files {
        outln!("  {:<24} {size:>12} B", one_line(name))?;
    }
    let config = std::fs::read_to_string(run.dir.join(rundir::CONFIG)).unwrap_or_default();
    outln!("config:")?;
    for line in config.lines() {
        outln!("  {}", one_line(line))?;
    }
    Ok(())
}

/// The command line meta.json records (empty without one).
fn meta_command(dir: &RunDir) -> Vec<String> {
    dir.read_meta().map(|m| m.command).unwrap_or_default()
}

/// The run directory's files and their sizes, by name.
fn files(dir: &RunDir) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(&dir.path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let size = e.metadata().map_or(0, |m| m.len());
            (e.file_name().to_string_lossy().into_owned(), size)
        })
        .filter(|(n, _)| n != rundir::LOCK)
        .collect();
    files.sort();
    files
}

/// Sets or removes tags on every run the spec matches.
pub fn tag(args: TagArgs) -> Result<()> {
    for run in select(std::slice::from_ref(&args.runs), &args.store)? {
        let dir = RunDir::new(run.dir.clone());
        let mut a = Annotations::read(&dir);
        for edit in &args.tags {
            a.edit_tag(edit)
                .map_err(|e| Error::Input(format!("{}: {e}", run.id)))?;
        }
        a.write(&dir)?;
        crate::errln!("{}: {}", run.id, a.tag_list());
    }
    Ok(())
}

/// Appends a note to every run the spec matches.
pub fn note(args: NoteArgs) -> Result<()> {
    if args.text.trim().is_empty() {
        return Err(Error::Input("the note is empty".into()));
    }
    for run in select(std::slice::from_ref(&args.runs), &args.store)? {
        let dir = RunDir::new(run.dir.clone());
        let mut a = Annotations::read(&dir);
        a.add_note(&args.text);
        a.write(&dir)?;
        crate::errln!("{}: {} note(s)", run.id, a.notes.len());
    }
    Ok(())
}

/// Removes run directories (with `--incomplete`, only unfinished ones). A run whose lock a live
/// process holds is never touched: it is reported and the command exits 6.
pub fn rm(args: RmArgs) -> Result<()> {
    let mut busy = Vec::new();
    let chosen: Vec<_> = select(&args.runs, &args.store)?
        .into_iter()
        .filter(|run| !(args.incomplete && RunDir::new(run.dir.clone()).is_complete()))
        .collect();
    if chosen.len() > 1 && !args.yes && !args.dry_run {
        confirm_removal(&chosen, &args.runs.join(" "))?;
    }
    for run in chosen {
        let dir = RunDir::new(run.dir.clone());
        if args.dry_run {
            // A probe, not the lock: --dry-run writes nothing, not even a lock file.
            if dir.is_locked() {
                busy.push(run.id.clone());
            } else {
                outln!("would remove {} ({})", run.dir.display(), run.status())?;
            }
            continue;
        }
        let lock = match dir.lock(false) {
            Ok(lock) => lock,
            Err(Error::Busy(_)) => {
                busy.push(run.id.clone());
                continue;
            }
            Err(e) => return Err(e),
        };
        let status = run.summary.as_ref().map_or("unknown".into(), |s| {
            if s.status == Status::Complete && !dir.is_complete() {
                "damaged".to_string()
            } else {
                s.status.to_string()
            }
        });
        std::fs::remove_dir_all(&run.dir).map_err(|e| Error::io("remove", &run.dir, e))?;
        drop(lock);
        outln!("removed {} ({status})", run.dir.display())?;
    }
    if busy.is_empty() {
        Ok(())
    } else {
        Err(Error::Busy(format!(
            "left alone, a runner is working on them: {}",
            busy.join(", ")
        )))
    }
}

/// Lists the runs `rm` would remove and asks on a terminal; elsewhere (a script) refuses, since
/// a name can match more runs than its author thought.
fn confirm_removal(runs: &[Run], spec: &str) -> Result<()> {
    use std::io::IsTerminal;
    let ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    if !std::io::stdin().is_terminal() {
        return Err(Error::Input(format!(
            "'{spec}' names {} runs: {}; pass --yes to remove them all (--dry-run lists them)",
            runs.len(),
            ids.join(", ")
        )));
    }
    crate::errln!(
        "'{spec}' names {} runs:\n  {}",
        runs.len(),
        ids.join("\n  ")
    );
    {
        use std::io::Write as _;
        let mut err = std::io::stderr();
        let _ = write!(err, "remove them all? [y/N] ");
        let _ = err.flush();
    }
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Error::Input("nothing removed".into()))
    }
}

/// Removes the runs that did not finish (failed, interrupted, diverged, damaged, or running
/// with no live process) and started longer ago than `--older-than`. Complete and pruned runs
/// are results and stay; a run a live process holds is never touched.
pub fn gc(args: GcArgs) -> Result<()> {
    if args.builds {
        let removed = crate::compile::gc(chrono::Utc::now() - args.older_than, args.dry_run)?;
        let verb = if args.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for (path, why) in &removed {
            outln!("{verb} {path} ({why})")?;
        }
        crate::errln!("{} cached build(s) {verb}", removed.len());
        return Ok(());
    }
    let (all, _) = runs::discover(&args.store.runs_dir);
    let cutoff = chrono::Utc::now() - args.older_than;
    let mut removed = 0;
    for run in all {
        let dir = RunDir::new(run.dir.clone());
        let started = run.summary.as_ref().and_then(|s| {
            chrono::DateTime::parse_from_rfc3339(&s.started_at)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
        });
        let settled = run
            .summary
            .as_ref()
            .is_some_and(|s| s.status == Status::Pruned)
            || dir.is_complete();
        if settled || started.is_some_and(|t| t > cutoff) {
            continue;
        }
        let what = format!("{} ({})", run.dir.display(), run.status());
        if args.dry_run {
            // A probe, not the lock: --dry-run writes nothing.
            if !dir.is_locked() {
                outln!("would remove {what}")?;
                removed += 1;
            }
            continue;
        }
        let lock = match dir.lock(false) {
            Ok(lock) => lock,
            Err(Error::Busy(_)) => continue, // a live process holds it: leave it
            // Not removable here (a read-only file system, say): say so, do not claim 0.
            Err(e) => return Err(e),
        };
        std::fs::remove_dir_all(&run.dir).map_err(|e| Error::io("remove", &run.dir, e))?;
        drop(lock);
        outln!("removed {what}")?;
        removed += 1;
    }
    crate::errln!(
        "{removed} unfinished run(s) {}",
        if args.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::parse_age("7d"), Ok(chrono::Duration::days(7)));
        assert_eq!(super::parse_age("12h"), Ok(chrono::Duration::hours(12)));
        assert_eq!(super::parse_age("30m"), Ok(chrono::Duration::minutes(30)));
        assert_eq!(super::parse_age("2"), Ok(chrono::Duration::days(2)));
        assert!(super::parse_age("7w").is_err());
        assert!(super::parse_age("soon").is_err());
    }
}
