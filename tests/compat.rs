//! Run directories made by an earlier release (365151d, before networks were generated at build
//! time) are found complete by this one, under the same name. Re-run, they differ in the last
//! bits since the fixed-order kernels changed the arithmetic (CHANGELOG.md), and `runner verify`
//! says so and why, and that the run's own files are intact.

use std::path::Path;
use std::process::Command;

#[test]
fn a_cnn_run_of_the_previous_release_is_complete_and_verify_says_why_it_differs() {
    let runs = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/release-runs/smoke-cnn-c6553e62ad80");
    let copy = runs.path().join("smoke-cnn-c6553e62ad80");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let runner = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(args)
            .env("RUNNER_RUNS_DIR", runs.path())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let out = runner(&["run", "experiments/smoke-cnn.toml", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("already complete"), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dir"], copy.display().to_string());
    assert_eq!(json["status"], "complete");
    let out = runner(&["verify", copy.to_str().unwrap(), "--quiet"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    for line in [
        "summary digests   bit-identical",
        "kernels           run on an unrecorded path, re-run on",
        "build             run made by runner 365151d",
        "result: DIFFERENT",
    ] {
        assert!(report.contains(line), "{line}\n{report}");
    }
}
