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
