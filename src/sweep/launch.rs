//! How a trial process starts, for every launcher: the `runner run` command line of a trial,
//! its share of the cores, its log, and its death with the sweep that started it.

use super::manifest;
use super::spec::{self, Sweep};
use crate::error::{Error, Result};
use std::path::Path;
use std::process::{Command, Stdio};

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
