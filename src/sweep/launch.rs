//! Where a sweep's trials run. The sweep decides what to run (its plan and its pending
//! trials); a [`Launcher`] decides where: here as child processes ([`Local`]) or on Slurm as a
//! job array ([`SlurmArray`]). Both go through the manifest, which every trial process reads.

use super::spec::{self, Sweep};
use super::{manifest, pending, slurm, Planned};
use crate::error::{Error, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Runs (or submits) a planned sweep's pending trials.
pub trait Launcher {
    /// What the launch reports back.
    type Report;
    /// Writes the manifest in `sweep_dir`, then runs or submits the trials not yet decided.
    fn launch(&self, sweep: &Sweep, planned: &[Planned], sweep_dir: &Path) -> Result<Self::Report>;
}

/// Trials as `runner run` child processes on this machine, `jobs` at a time, each with its
/// share of the cores. A failing trial does not stop the others.
pub struct Local<'a> {
    pub runs_dir: &'a Path,
    pub jobs: usize,
    pub interrupted: &'a AtomicBool,
    pub quiet: bool,
}

/// Outcome of one `runner run` child.
#[derive(Debug, Clone)]
pub struct TrialResult {
    pub index: usize,
    pub exit_code: Option<i32>,
}

/// A trial process in flight.
struct Running {
    index: usize,
    child: Child,
    started: Instant,
    dir: crate::rundir::RunDir,
}

impl Launcher for Local<'_> {
    type Report = Vec<TrialResult>;

    fn launch(&self, sweep: &Sweep, planned: &[Planned], sweep_dir: &Path) -> Result<Self::Report> {
        manifest::write(sweep_dir, sweep, planned)?;
        let jobs = self.jobs.max(1);
        let threads = threads_per_trial(jobs);
        let exe = runner_exe()?;
        let todo = pending(planned);
        let total = todo.len();
        let mut queue = todo.into_iter();
        let mut running: Vec<Running> = Vec::new();
        let mut results = Vec::new();
        loop {
            while running.len() < jobs && !self.interrupted.load(Ordering::SeqCst) {
                let Some(p) = queue.next() else { break };
                let cmd = self.command(&exe, sweep, p, sweep_dir, threads);
                running.push(self.spawn(cmd, p, sweep_dir)?);
            }
            if running.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            running = self.reap(running, &mut results, total)?;
        }
        Ok(results)
    }
}

impl Local<'_> {
    fn say(&self, line: String) {
        if !self.quiet {
            crate::errln!("{line}");
        }
    }

    /// The `runner run` command line of a trial.
    fn command(
        &self,
        exe: &Path,
        sweep: &Sweep,
        p: &Planned,
        sweep_dir: &Path,
        threads: usize,
    ) -> Command {
        trial_command(exe, sweep, &p.overrides, self.runs_dir, sweep_dir, threads)
    }

    /// Starts a trial with its output in `trial-<index>.log`.
    fn spawn(&self, mut cmd: Command, p: &Planned, sweep_dir: &Path) -> Result<Running> {
        log_to(&mut cmd, sweep_dir, p.index)?;
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .map_err(|e| Error::Failed(format!("cannot start trial {}: {e}", p.index)))?;
        self.say(format!(
            "[sweep] started trial {} ({}): {}",
            p.index,
            p.id(),
            spec::set_args(&p.overrides).join(" ")
        ));
        Ok(Running {
            index: p.index,
            child,
            started: Instant::now(),
            dir: p.dir.clone(),
        })
    }

    /// Records the trials that have ended; returns those still running.
    fn reap(
        &self,
        running: Vec<Running>,
        results: &mut Vec<TrialResult>,
        total: usize,
    ) -> Result<Vec<Running>> {
        let mut still = Vec::new();
        for mut r in running {
            let index = r.index;
            match r.child.try_wait() {
                Ok(Some(status)) => {
                    results.push(TrialResult {
                        index,
                        exit_code: status.code(),
                    });
                    let verdict =
                        super::verdict(status.code(), &r.dir, &format!("trial-{index}.log"));
                    self.say(format!(
                        "[sweep] trial {index} {verdict} in {:.1}s ({}/{total})",
                        r.started.elapsed().as_secs_f64(),
                        results.len()
                    ));
                }
                Ok(None) => still.push(r),
                Err(e) => return Err(Error::Failed(format!("lost track of trial {index}: {e}"))),
            }
        }
        Ok(still)
    }
}

/// Trials as one Slurm job array, submitted with `sbatch` (see [`slurm`]); returns at once.
pub struct SlurmArray<'a> {
    pub runs_dir: &'a Path,
    pub options: slurm::Options,
    /// Write the script without submitting it.
    pub dry_run: bool,
}

impl Launcher for SlurmArray<'_> {
    type Report = slurm::Submission;

    fn launch(&self, sweep: &Sweep, planned: &[Planned], sweep_dir: &Path) -> Result<Self::Report> {
        manifest::write(sweep_dir, sweep, planned)?;
        slurm::submit(
            planned,
            sweep_dir,
            self.runs_dir,
            &self.options,
            self.dry_run,
        )
    }
}

/// This runner's executable, which every trial runs.
pub fn runner_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find the runner executable: {e}")))
}

/// Threads for each of `jobs` trials running at once: the cores (a Slurm worker's
/// `RAYON_NUM_THREADS`, from `--cpus-per-task`, else the machine's) shared out, at least one.
pub fn threads_per_trial(jobs: usize) -> usize {
    let cores = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    (cores / jobs.max(1)).max(1)
}

/// Sends a trial's stdout and stderr to `trial-<index>.log` in `sweep_dir` (appended to: a
/// trial run again keeps its earlier attempts' output).
pub fn log_to(cmd: &mut Command, sweep_dir: &Path, index: usize) -> Result<()> {
    let log_path = sweep_dir.join(format!("trial-{index}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io("open", &log_path, e))?;
    let err = log
        .try_clone()
        .map_err(|e| Error::io("open", &log_path, e))?;
    cmd.stdin(Stdio::null()).stdout(log).stderr(err);
    Ok(())
}

/// The `runner run` of a trial: the base with the trial's overrides, `--wait` (a trial whose
/// run another runner holds, e.g. a trial of an earlier, killed sweep still stopping, waits for
/// it and then takes its result instead of failing as busy), the sweep's early stopping against
/// its manifest, and its share of the cores.
pub fn trial_command(
    exe: &Path,
    sweep: &Sweep,
    overrides: &spec::Trial,
    runs_dir: &Path,
    sweep_dir: &Path,
    threads: usize,
) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg(&sweep.base)
        .arg("--runs-dir")
        .arg(runs_dir)
        .arg("--wait");
    for s in spec::set_args(overrides) {
        cmd.arg("--set").arg(s);
    }
    if let Some(rule) = sweep.early_stop {
        cmd.arg("--early-stop-manifest")
            .arg(sweep_dir.join(manifest::FILE));
        cmd.arg("--early-stop").arg(rule.to_arg());
    }
    cmd.env("RAYON_NUM_THREADS", threads.to_string());
    cmd
}

/// Makes the child get SIGTERM when this process dies, however it dies (`kill -9` included), so
/// trials never outlive their sweep as orphans: SIGTERM makes a trial checkpoint and stop, and
/// the next run of the sweep continues it.
#[cfg(target_os = "linux")]
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (prctl, getppid, _exit); it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would signal.
            if libc::getppid() != parent {
                libc::_exit(130);
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
pub fn die_with_parent(_cmd: &mut Command) {}
