//! Every command that prints to standard output, with its reader gone before it writes (as
//! `runner ls | head -0` or a reader that stops early leaves it): it ends quietly with exit 0,
//! with no panic and no backtrace, as git and ripgrep do.

use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_runner");

/// Runs `runner ARGS --runs-dir RUNS` with a pipe for stdout whose read end is closed at once.
fn with_closed_stdout(args: &[&str], runs: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUNNER_RUNS_DIR", runs)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let runs = tempfile::tempdir().unwrap();
    let made = Command::new(BIN)
        .args(["run", "experiments/smoke.toml", "-q"])
        .env("RUNNER_RUNS_DIR", runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(made.status.success());
    let commands: &[&[&str]] = &[
        &["run", "experiments/smoke.toml", "-q"],
        &["run", "experiments/smoke.toml", "-q", "--json"],
        &["ls"],
        &["ls", "--json"],
        &["compare", "smoke"],
        &["compare", "smoke", "--format", "json"],
        &["diff", "smoke", "smoke"],
        &["resolve", "experiments/smoke.toml"],
        &["resolve", "experiments/smoke.toml", "--dir"],
        &["models"],
        &["models", "--json"],
        &["sweep", "experiments/sweeps/smoke.toml", "--dry-run"],
        &["sweep", "status", "experiments/sweeps/smoke.toml"],
        &["sweep", "status", "experiments/sweeps/smoke.toml", "--json"],
        &["completions", "bash"],
        &["show", "smoke"],
        &["show", "smoke", "--json"],
    ];
    for args in commands {
        let (code, stderr) = with_closed_stdout(args, runs.path());
        assert_eq!(code, Some(0), "runner {}: {stderr}", args.join(" "));
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "runner {}: {stderr}",
            args.join(" ")
        );
    }
}

/// `runner ARGS 2>&1 | head -1`: stdout and stderr into one pipe whose reader goes away after
/// the first line. Returns the exit code.
fn with_reader_gone_after_a_line(args: &[&str], runs: &Path) -> Option<i32> {
    use std::io::BufRead;
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .env("RUNNER_RUNS_DIR", runs)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(reader)
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: every later write to either stream fails with EPIPE.
    child.wait().unwrap().code()
}

/// Finding 1 of issue 34: a closed stderr panicked (exit 101) and stranded the run as "running".
/// Now progress and logs stop, the work goes on to its end, and the files say so.
#[test]
fn a_closed_stderr_stops_the_output_not_the_work() {
    let runs = tempfile::tempdir().unwrap();
    let steps = ["--set", "train.steps=200", "--set", "train.eval_every=100"];
    let run = [&["run", "experiments/smoke.toml"][..], &steps].concat();
    assert_eq!(with_reader_gone_after_a_line(&run, runs.path()), Some(0));
    let ls = Command::new(BIN)
        .args(["ls", "--json"])
        .env("RUNNER_RUNS_DIR", runs.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ls.stdout).into_owned();
    assert!(
        listed.contains("\"status\":\"complete\"") && listed.contains("\"steps\":200"),
        "{listed}"
    );
    let dir = std::fs::read_dir(runs.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").is_file())
        .unwrap();
    let verify = ["verify", dir.to_str().unwrap()];
    assert_eq!(with_reader_gone_after_a_line(&verify, runs.path()), Some(0));
    let sweep = ["sweep", "experiments/sweeps/smoke.toml"];
    assert_eq!(with_reader_gone_after_a_line(&sweep, runs.path()), Some(0));
    let status = Command::new(BIN)
        .args(["sweep", "status", "experiments/sweeps/smoke.toml", "--json"])
        .env("RUNNER_RUNS_DIR", runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let trials = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(trials.lines().count(), 6, "{trials}");
    assert!(
        trials.lines().all(|l| l.contains("\"state\":\"complete\"")),
        "{trials}"
    );
    let page = runs.path().join("report.html");
    let report = [
        "report",
        "experiments/sweeps/smoke.toml",
        "-o",
        page.to_str().unwrap(),
    ];
    assert_eq!(with_reader_gone_after_a_line(&report, runs.path()), Some(0));
    assert!(std::fs::read_to_string(&page)
        .unwrap()
        .contains("report-data"));
}
