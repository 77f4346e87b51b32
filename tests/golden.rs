//! The same bits on every kernel path and every machine: short runs of the reference CNN, both
//! LeNets, the 3x3 CNN, the smoke networks and the training vocabulary (dropout, GELU, label
//! smoothing, a schedule, clipping, weight decay, a validation split), on every path this CPU
//! can run (`RUNNER_ISA=avx512`, `avx2`), against the digests committed in
//! `tests/golden/digests.txt`. Those were made on an AVX-512 machine; one with AVX2 alone
//! checks its path against them.
//!
//! After a deliberate change to the arithmetic (say so in the commit, with the old and new
//! digests), `RUNNER_GOLDEN_UPDATE=1 cargo test --test golden` rewrites the file, and only when
//! every path gave the same bits.

use std::collections::BTreeMap;

mod common;
use common::{digest_line, the_run};
use std::path::Path;
use std::process::Command;

const DIGESTS: &str = "tests/golden/digests.txt";

/// `(case, experiment file, --set overrides)`. Steps are few: a test, not a training run.
const CASES: &[(&str, &str, &[&str])] = &[
    ("smoke", "experiments/smoke.toml", &[]),
    ("smoke-cnn", "experiments/smoke-cnn.toml", &[]),
    (
        "baseline-40",
        "experiments/baseline.toml",
        &["train.steps=40", "train.eval_every=40"],
    ),
    (
        "lenet5-30",
        "experiments/lenet5.toml",
        &["train.steps=30", "train.eval_every=30"],
    ),
    // The Winograd forward's 3x3 path, and its padded channels (Caffe's LeNet's 20 -> 50).
    (
        "cnn3x3-12",
        "experiments/cnn3x3.toml",
        &["train.steps=12", "train.eval_every=12"],
    ),
    (
        "lenet-caffe-12",
        "experiments/lenet-caffe.toml",
        &["train.steps=12", "train.eval_every=12"],
    ),
    (
        "baseline-vocabulary-12",
        "experiments/baseline-cosine.toml",
        &[
            "train.steps=12",
            "train.eval_every=12",
            "schedule.warmup_steps=4",
            "model.dropout=0.3",
            "train.label_smoothing=0.1",
            "data.validation=2000",
        ],
    ),
    (
        "smoke-vocabulary",
        "experiments/smoke.toml",
        &[
            "model.activation=gelu",
            "model.dropout=0.2",
            "train.label_smoothing=0.1",
            "train.clip_grad_norm=0.5",
            "optimizer.kind=adam",
            "~optimizer.momentum",
            "optimizer.lr=0.003",
            "optimizer.weight_decay=0.01",
            "schedule.kind=cosine",
            "schedule.warmup_steps=10",
            "data.validation=5000",
        ],
    ),
];

/// The paths this CPU can run (from `runner`'s own check of `RUNNER_ISA`).
fn paths() -> Vec<&'static str> {
    ["avx512", "avx2"]
        .into_iter()
        .filter(|isa| {
            Command::new(env!("CARGO_BIN_EXE_runner"))
                .arg("models")
                .env("RUNNER_ISA", isa)
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect()
}

/// `runner ARGS --runs-dir RUNS` on kernel path `isa`, in the repository root.
fn runner_on(isa: &str, runs: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runner"));
    c.args(args)
        .arg("--runs-dir")
        .arg(runs)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUNNER_ISA", isa);
    c
}

fn run_case(isa: &str, (case, file, sets): &(&str, &str, &[&str])) -> String {
    let runs = tempfile::tempdir().unwrap();
    let mut cmd = runner_on(isa, runs.path(), &["run", file, "-q"]);
    for s in *sets {
        cmd.arg("--set").arg(s);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{case} on {isa}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run_dir = the_run(runs.path());
    let meta = std::fs::read_to_string(run_dir.join("meta.json")).unwrap();
    assert!(
        meta.contains(&format!("\"kernels\": \"{isa}\"")),
        "{case}: meta.json records the path it ran on"
    );
    digest_line(case, &run_dir)
}

#[test]
fn every_path_gives_the_committed_digests() {
    let paths = paths();
    if paths.is_empty() {
        eprintln!("SKIPPED: this CPU has neither AVX-512 nor AVX2 with FMA (the generic path)");
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIGESTS);
    let committed: BTreeMap<String, String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| (l.split(' ').next().unwrap().to_string(), l.to_string()))
        .collect();
    let mut lines = Vec::new();
    let mut wrong = Vec::new();
    for case in CASES {
        let got: Vec<(&str, String)> = paths
            .iter()
            .map(|&isa| (isa, run_case(isa, case)))
            .collect();
        for (isa, line) in &got {
            assert_eq!(
                line, &got[0].1,
                "{} gives other bits on {isa} than on {}",
                case.0, got[0].0
            );
        }
        if committed.get(case.0) != Some(&got[0].1) {
            wrong.push(format!(
                "{}: committed {:?}, got {:?} on {}",
                case.0,
                committed.get(case.0),
                got[0].1,
                paths.join(" and ")
            ));
        }
        lines.push(got[0].1.clone());
    }
    if std::env::var_os("RUNNER_GOLDEN_UPDATE").is_some() {
        let text = format!(
            "# case metrics.csv eval.csv weights: the first 16 hex digits of summary.json's digests\n\
             # (weights: SHA-256 over the sorted per-tensor digests). Written by\n\
             # RUNNER_GOLDEN_UPDATE=1 cargo test --test golden, with {} giving the same bits.\n{}\n",
            paths.join(" and "),
            lines.join("\n")
        );
        std::fs::write(&path, text).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    assert!(
        wrong.is_empty(),
        "digests differ from {DIGESTS}:\n{}",
        wrong.join("\n")
    );
    eprintln!(
        "{} cases on {}: the committed digests",
        CASES.len(),
        paths.join(" and ")
    );
}

/// Whether this CPU runs both paths (else says the test is skipped).
fn both_paths() -> bool {
    let paths = paths();
    if paths.len() < 2 {
        eprintln!("SKIPPED: this CPU runs one path only ({paths:?})");
    }
    paths.len() >= 2
}

#[test]
fn verify_on_the_other_path_is_bit_identical_and_names_both_paths() {
    if !both_paths() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    let runner = |isa: &str, args: &[&str]| runner_on(isa, runs.path(), args).output().unwrap();
    let run = runner("avx2", &["run", "experiments/smoke.toml", "-q"]);
    assert!(run.status.success());
    let dir = the_run(runs.path());
    let out = runner("avx512", &["verify", dir.to_str().unwrap(), "-q"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("kernels           run on avx2, re-run on avx512"),
        "{report}"
    );
    assert!(report.contains("result: bit-identical"), "{report}");
}

/// The mixed-cluster case: a run interrupted on one path and resumed on the other ends with the
/// bits of an uninterrupted run, and `meta.json` records both paths.
#[test]
fn a_run_resumed_on_the_other_path_is_bit_identical_and_says_so() {
    if !both_paths() {
        return;
    }
    let runs = tempfile::tempdir().unwrap();
    let command = |isa: &str, args: &[&str]| runner_on(isa, runs.path(), args);
    let exp = [
        "run",
        "experiments/mlp.toml",
        "-q",
        "--set",
        "train.steps=600",
        "--set",
        "train.eval_every=300",
        "--set",
        "train.checkpoint_every=50",
        "--set",
        "model.hidden=[256]",
    ];
    let mut child = command("avx2", &exp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    let dir = loop {
        let found = std::fs::read_dir(runs.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.join("checkpoint.safetensors").is_file());
        if let Some(d) = found {
            break d;
        }
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // SAFETY: kill only sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    child.wait().unwrap();
    let summary = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    if summary.contains("\"complete\"") {
        eprintln!("SKIPPED: the run finished before the interrupt");
        return;
    }
    let resumed = command("avx512", &["resume", dir.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["kernels"], "avx2", "{meta}");
    assert_eq!(meta["resumed"][0]["kernels"], "avx512", "{meta}");
    let out = command("avx2", &["verify", dir.to_str().unwrap(), "-q"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("run on avx2+avx512, re-run on avx2"),
        "{report}"
    );
    assert!(report.contains("result: bit-identical"), "{report}");
}
