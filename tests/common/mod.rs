//! Helpers shared by integration tests (each test crate uses some of them).
#![allow(dead_code)]

/// The built binary in the repository root with `--runs-dir runs` after `args`, ready for more
/// environment or to spawn. It never builds a network on demand (`RUNNER_BUILD=never`):
/// tests/on_demand.rs tests that. Its cache (the decoded MNIST) is the tests' own, in `target/`.
pub fn command(args: &[&str], runs: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_runner"));
    c.args(args)
        .env("RUNNER_BUILD", "never")
        .env(
            "RUNNER_CACHE_DIR",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/runner-cache"),
        )
        .arg("--runs-dir")
        .arg(runs)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// [`command`], run to its end.
pub fn runner(args: &[&str], runs: &std::path::Path) -> std::process::Output {
    command(args, runs).output().expect("runner binary runs")
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

/// One line per case: `case metrics eval weights`, the first 16 hex digits of the summary's
/// digests (the weights' as one SHA-256 over the sorted per-tensor digests).
pub fn digest_line(case: &str, run_dir: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    let d = &summary["digests"];
    let weights: std::collections::BTreeMap<String, String> =
        serde_json::from_value(d["weights"].clone()).unwrap();
    let mut h = Sha256::new();
    for (name, digest) in &weights {
        h.update(format!("{name} {digest}\n"));
    }
    let short = |s: &str| s.chars().take(16).collect::<String>();
    format!(
        "{case} {} {} {}",
        short(d["metrics"].as_str().unwrap()),
        short(d["eval"].as_str().unwrap()),
        short(&format!("{:x}", h.finalize()))
    )
}

/// The run directory under `runs` (tests that use it make one each).
pub fn the_run(runs: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").is_file())
        .unwrap()
}

/// The sweep directory under `runs` whose name starts with `prefix` (`""`: the only one).
pub fn sweep_dir(runs: &std::path::Path, prefix: &str) -> std::path::PathBuf {
    std::fs::read_dir(runs.join("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no sweep directory {prefix}* in {}", runs.display()))
}

/// The events of a sweep directory's journal, as JSON values (a torn line is skipped).
pub fn journal(sweep_dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(sweep_dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The trials of the journal's `kind` events (`proposed`, `started`, `finished`, ...), sorted.
pub fn trials_with(events: &[serde_json::Value], kind: &str) -> Vec<u64> {
    let mut t: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == kind)
        .map(|e| e["trial"].as_u64().unwrap())
        .collect();
    t.sort_unstable();
    t
}
