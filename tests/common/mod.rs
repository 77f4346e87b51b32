//! Helpers shared by integration tests (each test crate uses some of them).
#![allow(dead_code)]

/// Runs the built binary in the repository root with `--runs-dir runs` after `args`.
pub fn runner(args: &[&str], runs: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(args)
        .arg("--runs-dir")
        .arg(runs)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runner binary runs")
}

/// The seed for random kill instants: `RUNNER_KILL_SEED` when set (to replay a failure), else
/// the clock. Printed by the caller so that any run can be replayed.
pub fn kill_seed() -> u64 {
    std::env::var("RUNNER_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}
