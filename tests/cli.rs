//! End-to-end tests of the `runner` binary on the real vendored MNIST.

mod common;
use common::runner;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn only_run_dir(runs: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.into_iter().next().unwrap()
}

#[test]
fn smoke_run_writes_a_complete_run_directory_and_is_not_retrained() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(&["run", "experiments/smoke.toml"], runs.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let dir = only_run_dir(runs.path());
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let hash_part = name.strip_prefix("smoke-").expect("dir is <name>-<hash>");
    assert_eq!(hash_part.len(), 12);
    assert!(hash_part.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        stdout.contains(&format!("dir:            {}", dir.display())),
        "{stdout}"
    );

    // config.toml is the canonical config: resolving it again names the same directory.
    let again = runner(
        &[
            "resolve",
            dir.join("config.toml").to_str().unwrap(),
            "--dir",
        ],
        runs.path(),
    );
    assert_eq!(text(&again).0.trim(), dir.display().to_string());

    // metrics.csv: header and one row per step, numbered 1..=60.
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    assert_eq!(
        lines.next(),
        Some("step,epoch,loss,accuracy,lr,examples,elapsed_s")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 60);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string());
        assert_eq!(row[4], "0.1");
        assert_eq!(row[5], ((i + 1) * 32).to_string());
        let loss: f64 = row[2].parse().unwrap();
        assert!(loss.is_finite() && loss > 0.0);
    }
    let first: f64 = rows[0][2].parse().unwrap();
    let last10: f64 = rows[50..]
        .iter()
        .map(|r| r[2].parse::<f64>().unwrap())
        .sum::<f64>()
        / 10.0;
    assert!(
        last10 < first,
        "loss should fall: first {first}, last ten {last10}"
    );

    // eval.csv: steps 30 and 60.
    let evals = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    let steps: Vec<&str> = evals
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(steps, ["30", "60"]);

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "complete");
    assert_eq!(summary["steps_done"], 60);
    let acc = summary["final_test_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.5,
        "60 SGD steps of an MLP should beat chance by far, got {acc}"
    );
    assert!(summary["ms_per_step"].as_f64().unwrap() > 0.0);

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["data_checksums_enforced"], true);
    assert_eq!(meta["dfdx_version"], "0.13.0");
    assert!(meta["finished_at"].is_string());
    assert_eq!(meta["parameter_count"], 784 * 32 + 32 + 32 * 10 + 10);

    // model.safetensors: a header naming the four tensors, then 4 bytes per parameter.
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(weights[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&weights[8..8 + header_len]).unwrap();
    for name in ["0.weight", "0.bias", "2.weight", "2.bias"] {
        assert_eq!(header[name]["dtype"], "F32", "{name} in {header}");
    }
    assert_eq!(header["0.weight"]["shape"], serde_json::json!([32, 784]));
    assert_eq!(
        weights.len() - 8 - header_len,
        4 * (784 * 32 + 32 + 32 * 10 + 10)
    );

    // A second run of the same experiment does not retrain.
    let before = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    let out = runner(&["run", "experiments/smoke.toml"], runs.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("already complete"), "{stderr}");
    assert!(stdout.contains("status:         complete"), "{stdout}");
    let after = std::fs::metadata(dir.join("model.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn overrides_change_the_run_directory() {
    let runs = tempfile::tempdir().unwrap();
    let resolve = |sets: &[&str]| {
        let mut args = vec!["resolve", "experiments/smoke.toml", "--dir"];
        for s in sets {
            args.extend(["--set", s]);
        }
        let out = runner(&args, runs.path());
        assert!(out.status.success(), "{}", text(&out).1);
        text(&out).0.trim().to_string()
    };
    let base = resolve(&[]);
    assert_eq!(base, resolve(&[]));
    assert_ne!(base, resolve(&["optimizer.lr=0.05"]));
    assert_ne!(base, resolve(&["train.steps=61"]));
}

#[test]
fn bad_input_fails_with_exit_code_2_and_a_helpful_message() {
    let runs = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "experiments/nope.toml"], "does not exist"),
        (&["run", "experiments"], "is a directory"),
        (
            &["run", "experiments/smoke.toml", "--set", "train.steps=abc"],
            "expects an integer",
        ),
        (
            &["run", "experiments/smoke.toml", "--set", "optimizer.lrr=1"],
            "did you mean 'optimizer.lr'",
        ),
        (
            &["run", "experiments/smoke.toml", "--set", "train.steps"],
            "KEY=VALUE",
        ),
        (
            &["run", "experiments/smoke.toml", "--set", "optimizer.lr=-1"],
            "> 0",
        ),
        (
            &[
                "run",
                "experiments/smoke.toml",
                "--set",
                "model.hidden=[100]",
            ],
            "not compiled into this binary",
        ),
        (
            &[
                "run",
                "experiments/smoke.toml",
                "--set",
                "train.batch_size=60001",
            ],
            "larger than the training set",
        ),
    ];
    for (args, needle) in cases {
        let out = runner(args, runs.path());
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read_dir(runs.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing written"
    );
}

#[test]
fn corrupt_data_directory_is_exit_code_3_naming_the_file() {
    let runs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    for f in [
        "train-images-idx3-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(src.join(f), data.path().join(f)).unwrap();
    }
    std::fs::write(data.path().join("train-labels-idx1-ubyte.gz"), b"garbage").unwrap();
    let exp = data.path().join("exp.toml");
    let smoke = std::fs::read_to_string(src.join("../../experiments/smoke.toml")).unwrap();
    std::fs::write(
        &exp,
        format!(
            "{smoke}\n[data]\ndir = {:?}\n",
            data.path().to_str().unwrap()
        ),
    )
    .unwrap();
    let out = runner(&["run", exp.to_str().unwrap()], runs.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("train-labels-idx1-ubyte.gz") && stderr.contains("gzip"),
        "{stderr}"
    );
}

#[test]
fn a_short_cnn_run_learns_far_above_chance() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(&["run", "experiments/smoke-cnn.toml"], runs.path());
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let dir = only_run_dir(runs.path());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let acc = summary["final_test_accuracy"].as_f64().unwrap();
    assert!(
        acc > 0.9,
        "300 Adam steps of a small CNN should pass 90 % test accuracy, got {acc}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
    let names: Vec<&str> = meta["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[0].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "1.0.0.weight",
            "1.0.0.bias",
            "1.1.0.weight",
            "1.1.0.bias",
            "3.0.weight",
            "3.0.bias",
            "3.2.weight",
            "3.2.bias"
        ]
    );
    assert_eq!(meta["parameters"][2][1], serde_json::json!([16, 5, 5, 8]));
    assert_eq!(
        meta["parameters"][4][1],
        serde_json::json!([64, 7 * 7 * 16])
    );
}

/// A CNN no experiment file declares: the error names the file and the network, and gives the
/// command that compiles it in. One whose maps a block cannot reduce names the block.
#[test]
fn a_network_not_compiled_in_names_the_file_and_the_command_that_adds_it() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(
        &[
            "run",
            "experiments/baseline.toml",
            "--set",
            "model.conv=[32,48]",
        ],
        runs.path(),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in [
        "experiments/baseline.toml",
        "conv = [32, 48], kernel = 5, padding = \"same\", hidden = [1024]",
        "not compiled into this binary",
        "RUNNER_EXPERIMENTS=",
        "cargo install --path",
    ] {
        assert!(stderr.contains(want), "{want}: {stderr}");
    }
    let out = runner(
        &[
            "run",
            "experiments/baseline.toml",
            "--set",
            "model.conv=[8,8,8,8]",
            "--set",
            "model.padding=\"valid\"",
        ],
        runs.path(),
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("block 3"), "{stderr}");
}

#[test]
fn sigterm_marks_the_run_interrupted_and_it_never_looks_complete() {
    let runs = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args([
            "run",
            "experiments/smoke.toml",
            "--set",
            "train.steps=1000000",
            "--runs-dir",
        ])
        .arg(runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training has written some steps.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let metrics = loop {
        let found = std::fs::read_dir(runs.path())
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path().join("metrics.csv"))
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.lines().count() > 20));
        if let Some(p) = found {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "training never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let dir = metrics.parent().unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["status"], "interrupted");
    assert!(!dir.join("model.safetensors").exists());
    // Every row is whole and the steps run 1..=steps_done without gaps.
    let steps_done = summary["steps_done"].as_u64().unwrap();
    let text = std::fs::read_to_string(&metrics).unwrap();
    let steps: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(steps, (1..=steps_done).collect::<Vec<_>>());
}

#[test]
fn the_same_config_reproduces_metrics_and_weights_exactly() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for runs in [&a, &b] {
        let out = runner(&["run", "experiments/smoke.toml"], runs.path());
        assert!(out.status.success(), "{}", text(&out).1);
    }
    let (da, db) = (only_run_dir(a.path()), only_run_dir(b.path()));
    let without_time = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect()
    };
    assert_eq!(without_time(&da), without_time(&db));
    assert_eq!(
        std::fs::read(da.join("model.safetensors")).unwrap(),
        std::fs::read(db.join("model.safetensors")).unwrap()
    );
}

#[test]
fn json_output_and_the_diverged_exit_code() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(
        &["run", "experiments/smoke.toml", "--json", "--quiet"],
        runs.path(),
    );
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "--quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "complete");
    assert_eq!(v["steps_done"], 60);
    assert!(v["test_accuracy"].as_f64().unwrap() > 0.5);
    assert!(Path::new(v["dir"].as_str().unwrap())
        .join("summary.json")
        .is_file());

    let out = runner(
        &[
            "run",
            "experiments/smoke.toml",
            "--set",
            "optimizer.lr=1e30",
            "--quiet",
        ],
        runs.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("diverged") && stderr.contains("optimizer.lr"),
        "{stderr}"
    );
}

#[test]
fn verbose_says_what_was_resolved_and_what_an_exit_code_means() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(
        &[
            "run",
            "experiments/smoke.toml",
            "-q",
            "--verbose",
            "--set",
            "train.checkpoint_every=20",
        ],
        runs.path(),
    );
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    let dir = only_run_dir(runs.path());
    for says in [
        "experiments/smoke.toml (overrides: train.checkpoint_every=20)",
        &format!("run directory {}", dir.display()),
        "checksums enforced",
        "training and 10000 test images",
        "threads, CPU",
        "checkpoint at step 20",
        "checkpoint at step 40",
        "wrote complete",
    ] {
        assert!(err.contains(says), "lacks {says:?}:\n{err}");
    }
    let quiet = runner(&["run", "experiments/smoke.toml", "-q"], runs.path());
    assert!(!text(&quiet).1.contains("runner:"), "{}", text(&quiet).1);

    let out = runner(&["-v", "run", "experiments/nope.toml"], runs.path());
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("exit code 2 (bad input: experiment, --set or arguments)"),
        "{err}"
    );
}

/// `train.epochs` with a validation split: 1000 training images left at batch 32 make 31 full
/// batches, so one epoch is 31 steps, all in epoch 0, and the 59,000 held-out images are
/// evaluated beside the test set.
#[test]
fn epochs_count_the_images_left_after_the_hold_out() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(
        &[
            "run",
            "experiments/smoke.toml",
            "--set",
            "train.epochs=1",
            "--set",
            "data.validation=59000",
            "--set",
            "train.eval_every=31",
        ],
        runs.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("val accuracy:"), "{stdout}");
    let dir = only_run_dir(runs.path());
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let last: Vec<&str> = metrics.lines().last().unwrap().split(',').collect();
    assert_eq!((last[0], last[1]), ("31", "0"), "{metrics}");
    let evals = std::fs::read_to_string(dir.join("eval.csv")).unwrap();
    assert_eq!(evals.lines().count(), 2, "{evals}");
    assert!(evals.starts_with("step,test_loss,test_accuracy,val_loss,val_accuracy,elapsed_s"));
}

/// `verify` and `resume` take what `ls` takes: a name, an id or hash prefix under --runs-dir.
/// A name that matches several runs lists them; one that matches none says what to give.
#[test]
fn verify_and_resume_take_run_names_and_hash_prefixes() {
    let runs = tempfile::tempdir().unwrap();
    assert!(
        runner(&["run", "experiments/smoke.toml", "-q"], runs.path())
            .status
            .success()
    );
    let id = only_run_dir(runs.path())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let hash_prefix = &id.rsplit_once('-').unwrap().1[..6];
    for spec in ["smoke", hash_prefix, id.as_str()] {
        let out = runner(&["verify", spec, "-q"], runs.path());
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "verify {spec}: {stderr}");
        assert!(stdout.contains("result: bit-identical"), "{stdout}");
    }
    let out = runner(&["resume", hash_prefix, "-q"], runs.path());
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(runner(
        &["run", "experiments/smoke.toml", "--set", "seed=1", "-q"],
        runs.path()
    )
    .status
    .success());
    let out = runner(&["verify", "smoke"], runs.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("matches 2 runs"), "{}", text(&out).1);
    let out = runner(&["resume", "nothing-here"], runs.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("'nothing-here' matches no run"),
        "{}",
        text(&out).1
    );
}

/// `--set ~KEY` removes a key the file sets: switching the smoke file's SGD to Adam needs its
/// momentum gone, and the error without it says how.
#[test]
fn a_tilde_override_removes_a_key() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(
        &[
            "resolve",
            "experiments/smoke.toml",
            "--set",
            "optimizer.kind=adam",
        ],
        runs.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("`--set ~optimizer.momentum` removes it"),
        "{}",
        text(&out).1
    );
    let out = runner(
        &[
            "resolve",
            "experiments/smoke.toml",
            "--set",
            "optimizer.kind=adam",
            "--set",
            "~optimizer.momentum",
        ],
        runs.path(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("kind = \"adam\"") && !stdout.contains("momentum"),
        "{stdout}"
    );
}

/// Completion scripts for the common shells name the subcommands; bash loads its script.
#[test]
fn completion_scripts_cover_the_subcommands() {
    let completions = |shell: &str| {
        Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["completions", shell])
            .output()
            .unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let out = completions(shell);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{shell}: {stderr}");
        for sub in ["run", "verify", "sweep", "compare", "completions"] {
            assert!(stdout.contains(sub), "{shell} script lacks {sub}");
        }
    }
    let script = text(&completions("bash")).0;
    let loaded = std::process::Command::new("bash")
        .args(["-c", "source /dev/stdin && complete -p runner"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        });
    if let Ok(out) = loaded {
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("-F _runner runner"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Experiment files compose through the binary: `base` (found through `${VAR}`), an exact float
/// spelling of an integer, and the same run as the base with --set; a file with two mistakes
/// reports both; a sweep file with an unquoted dotted key says to quote it.
#[test]
fn experiment_files_compose_and_report_every_mistake() {
    let runs = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let experiments = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let child = dir.path().join("lr.toml");
    std::fs::write(
        &child,
        "base = \"${RUNNER_TEST_EXPERIMENTS}/mlp.toml\"\n[optimizer]\nlr = 3e-4\n[train]\nsteps = 2e3\n",
    )
    .unwrap();
    let resolve = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(args)
            .arg("--runs-dir")
            .arg(runs.path())
            .env("RUNNER_TEST_EXPERIMENTS", &experiments)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    let composed = resolve(&["resolve", child.to_str().unwrap(), "--dir"]);
    assert!(composed.status.success(), "{}", text(&composed).1);
    let direct = resolve(&[
        "resolve",
        "experiments/mlp.toml",
        "--set",
        "optimizer.lr=3e-4",
        "--set",
        "train.steps=2000",
        "--dir",
    ]);
    assert_eq!(
        text(&composed).0,
        text(&direct).0,
        "the same config, the same run"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "base = \"lr.toml\"\n[optimizer]\nlr = -1\nbeta3 = 0.5\n",
    )
    .unwrap();
    let out = resolve(&["resolve", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out).1;
    assert!(
        stderr.contains("2 problems")
            && stderr.contains("optimizer.lr")
            && stderr.contains("beta3"),
        "{stderr}"
    );

    let sweep = dir.path().join("sweep.toml");
    std::fs::write(
        &sweep,
        format!(
            "name = \"s\"\nbase = \"{}\"\n[grid]\noptimizer.lr = [1e-3, 1e-4]\n",
            experiments.join("smoke.toml").display()
        ),
    )
    .unwrap();
    let out = resolve(&["sweep", sweep.to_str().unwrap(), "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("quote it: \"optimizer.lr\" = [0.001, 0.0001]"),
        "{}",
        text(&out).1
    );
}

/// Issue 34, small truths: meta.json's command is relative to a directory it did not record; it
/// now records `cwd`, so the command can be replayed.
#[test]
fn meta_json_records_the_directory_the_command_ran_in() {
    let runs = tempfile::tempdir().unwrap();
    let out = runner(
        &[
            "run",
            "experiments/smoke.toml",
            "-q",
            "--set",
            "train.steps=1",
        ],
        runs.path(),
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(only_run_dir(runs.path()).join("meta.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["cwd"], env!("CARGO_MANIFEST_DIR"), "{meta}");
    assert_eq!(meta["command"][2], "experiments/smoke.toml", "{meta}");
}
