//! `runner sweep` end to end on the smoke sweep: -j 2, idempotence, resume, manifest.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn sweep(args: &[&str], runs: &Path) -> Output {
    common::runner(&[&["sweep"], args].concat(), runs)
}

fn started(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .matches("[sweep] started trial")
        .count()
}

#[test]
fn a_sweep_runs_once_skips_complete_trials_and_resumes() {
    let runs = tempfile::tempdir().unwrap();
    let file = "experiments/sweeps/smoke.toml";
    let out = sweep(&[file, "-j", "2"], runs.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(started(&out), 6);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        2 + 6,
        "compare table of the six trials:\n{stdout}"
    );

    // The manifest lists every trial with its overrides and run directory.
    let manifests: Vec<_> = std::fs::read_dir(runs.path().join("sweeps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(manifests.len(), 1);
    let manifest = std::fs::read_to_string(manifests[0].join("manifest.jsonl")).unwrap();
    let entries: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 6);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["index"], i);
        let dir = Path::new(e["run_dir"].as_str().unwrap());
        assert!(dir.join("model.safetensors").is_file());
        assert!(dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .ends_with(e["hash"].as_str().unwrap()));
        assert!(e["overrides"]["optimizer.lr"].is_f64() && e["overrides"]["train.steps"].is_i64());
    }

    // Again: nothing runs.
    let out = sweep(&[file, "-j", "2"], runs.path());
    assert!(out.status.success());
    assert_eq!(started(&out), 0);

    // Lose two trials (one deleted, one left half-written): only those run again.
    let gone = Path::new(entries[1]["run_dir"].as_str().unwrap());
    std::fs::remove_dir_all(gone).unwrap();
    let half = Path::new(entries[4]["run_dir"].as_str().unwrap());
    std::fs::remove_file(half.join("model.safetensors")).unwrap();
    let status = sweep(&["status", file], runs.path());
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        text.lines().next().unwrap(),
        "6 trials: 4 complete, 0 pruned, 0 running, 0 failed, 0 interrupted, 0 diverged, 2 missing"
    );
    // Then one row per trial: index, state, steps, metric, run, overrides.
    let rows: Vec<&str> = text.lines().skip(3).collect();
    assert_eq!(rows.len(), 6, "{text}");
    assert_eq!(
        rows.iter().filter(|r| r.contains(" missing ")).count(),
        2,
        "{text}"
    );
    assert!(
        rows[0].starts_with("0 ") && rows[0].contains(" complete "),
        "{text}"
    );
    let json = sweep(&["status", file, "--json"], runs.path());
    let objects: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 6);
    assert_eq!(objects[1]["state"], "missing");
    assert_eq!(objects[0]["state"], "complete");
    assert!(
        objects[0]["test_accuracy"].as_f64().is_some(),
        "{}",
        objects[0]
    );
    let out = sweep(&[file], runs.path());
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(started(&out), 2, "{stderr}");
    assert!(
        stderr.contains("started trial 1 ") && stderr.contains("started trial 4 "),
        "{stderr}"
    );
}

#[test]
fn dry_run_lists_trials_and_runs_nothing() {
    let runs = tempfile::tempdir().unwrap();
    let out = sweep(&["experiments/sweeps/smoke.toml", "--dry-run"], runs.path());
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.contains("missing ")).count(),
        6,
        "{stdout}"
    );
    assert!(stdout.contains("6 trials: 0 complete"));
    assert!(stdout.contains("dry run: nothing written"), "{stdout}");
    assert!(!runs.path().join("sweeps").exists());
}

#[test]
fn a_bad_sweep_file_is_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "name = \"b\"\nbase = \"nope.toml\"\n[grid]\n\"optimizer.lr\" = [0.1]\n",
    )
    .unwrap();
    let out = sweep(&[f.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn median_early_stopping_prunes_trials_below_the_median() {
    early_stopping_prunes("experiments/sweeps/smoke-median.toml");
}

#[test]
fn asha_prunes_trials_outside_the_top_third_at_a_rung() {
    early_stopping_prunes("experiments/sweeps/smoke-asha.toml");
}

fn early_stopping_prunes(file: &str) {
    let runs = tempfile::tempdir().unwrap();
    let out = sweep(&[file], runs.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().last().unwrap();
    // The first two trials always finish; which later ones are pruned depends on their accuracy.
    assert!(
        line.starts_with("6 of 6 trials: ") && !line.contains(" 0 pruned"),
        "{stderr}"
    );
    let pruned: Vec<serde_json::Value> = std::fs::read_dir(runs.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").is_file())
        .map(|p| {
            serde_json::from_str(&std::fs::read_to_string(p.join("summary.json")).unwrap()).unwrap()
        })
        .filter(|s: &serde_json::Value| s["status"] == "pruned")
        .collect();
    assert!(!pruned.is_empty());
    // The log says so as each pruned trial ends.
    let logged = stderr
        .lines()
        .filter(|l| l.contains("] trial") && l.contains(" pruned in "))
        .count();
    assert_eq!(logged, pruned.len(), "{stderr}");
    for s in &pruned {
        assert!(s["steps_done"].as_u64().unwrap() < 90, "{s}");
    }
    // Pruned trials are decided: running the sweep again runs nothing.
    let out = sweep(&[file], runs.path());
    assert_eq!(started(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_diverging_trial_is_recorded_and_the_others_go_on() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("diverge.toml");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"diverge\"\nbase = {:?}\n[grid]\n\"optimizer.lr\" = [0.1, 1e30, 0.05]\n",
            base.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = sweep(&[file.to_str().unwrap(), "--json"], runs.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(started(&out), 3);
    assert!(stderr.contains("1 trial(s) failed"), "{stderr}");
    let statuses: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, ["complete", "diverged", "complete"]);
    let status = sweep(&["status", file.to_str().unwrap()], runs.path());
    assert!(String::from_utf8_lossy(&status.stdout)
        .contains("2 complete, 0 pruned, 0 running, 0 failed, 0 interrupted, 1 diverged"));
}

#[test]
fn a_sweep_killed_midway_resumes_with_only_the_missing_trials() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("long.toml");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"long\"\nbase = {:?}\n[set]\n\"train.steps\" = 300\n[grid]\n\"optimizer.lr\" = [0.01, 0.02, 0.03, 0.04, 0.05]\n",
            base.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["sweep", file.to_str().unwrap(), "--runs-dir"])
        .arg(runs.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let complete = || {
        std::fs::read_dir(runs.path())
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("summary.json")).ok())
            .filter(|s| s.contains("\"complete\""))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while complete() < 1 {
        assert!(std::time::Instant::now() < deadline, "no trial finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: the sweep process dies at once
    child.wait().unwrap();
    // The trial it had started may still finish on its own; wait until nothing is running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let status = String::from_utf8_lossy(
            &sweep(&["status", file.to_str().unwrap()], runs.path()).stdout,
        )
        .into_owned();
        if status.contains(" 0 running") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let done_before = complete();
    assert!(done_before < 5, "the sweep was killed before the end");
    let out = sweep(&[file.to_str().unwrap()], runs.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(started(&out), 5 - done_before);
    assert_eq!(complete(), 5);
}

/// `kill -9` of a sweep takes its running trials with it (they get SIGTERM, checkpoint and stop)
/// instead of leaving them as orphans that hold their runs.
#[test]
fn trials_die_with_a_killed_sweep() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("endless.toml");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"endless\"\nbase = {:?}\n[set]\n\"train.steps\" = 1000000\n\"train.eval_every\" = 1000000\n[grid]\n\"optimizer.lr\" = [0.01, 0.02]\n",
            base.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["sweep", file.to_str().unwrap(), "-j", "2", "--runs-dir"])
        .arg(runs.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = || {
        String::from_utf8_lossy(&sweep(&["status", file.to_str().unwrap()], runs.path()).stdout)
            .into_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !status().contains(" 2 running") {
        assert!(std::time::Instant::now() < deadline, "{}", status());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // A million steps would take minutes; the trials stop within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = status();
        if now.contains(" 0 running") {
            assert!(now.contains(" 2 interrupted"), "{now}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orphans still running:\n{now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The one sweep directory under `runs` and the text of its one sbatch script.
fn the_slurm_script(runs: &Path) -> (std::path::PathBuf, String) {
    let sweep_dir = std::fs::read_dir(runs.join("sweeps"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let script = std::fs::read_dir(sweep_dir.join("slurm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sh"))
        .expect("script written");
    let text = std::fs::read_to_string(&script).unwrap();
    (sweep_dir, text)
}

/// What a Slurm array task does, without Slurm: the script written by `--slurm --dry-run`
/// calls `runner slurm-task MANIFEST --task T --pack M`, which runs trials T*M..T*M+M-1.
#[test]
fn a_slurm_script_is_written_and_its_task_runs_its_pack_of_trials() {
    let runs = tempfile::tempdir().unwrap();
    let file = "experiments/sweeps/smoke.toml";
    let out = sweep(
        &[
            file,
            "--slurm",
            "--dry-run",
            "--pack",
            "4",
            "--max-parallel",
            "2",
            "--time",
            "00:10:00",
            "--sbatch-arg=--account=ml",
        ],
        runs.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("array 0-1%2: 2 task(s) for 6 trial(s)"),
        "{err}"
    );
    assert!(err.contains("not submitted (--dry-run)"), "{err}");
    let (sweep_dir, text) = the_slurm_script(runs.path());
    for line in [
        "#SBATCH --array=0-1%2",
        "#SBATCH --time=00:10:00",
        "#SBATCH --account=ml",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    assert!(
        text.contains("slurm-task") && text.contains("--pack 4"),
        "{text}"
    );
    assert!(
        text.contains("Array task T runs trials 4T to 4T+3 of"),
        "{text}"
    );

    // Task 1 with pack 4 is trials 4 and 5 (the sweep has 6).
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("slurm-task")
        .arg(sweep_dir.join("manifest.jsonl"))
        .args(["--task", "1", "--pack", "4", "-q", "--runs-dir"])
        .arg(runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dry = sweep(&[file, "--dry-run"], runs.path());
    let states: Vec<String> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .take(6)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(
        states,
        ["missing", "missing", "missing", "missing", "complete", "complete"]
    );
    // No trials for task 2.
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("slurm-task")
        .arg(sweep_dir.join("manifest.jsonl"))
        .args(["--task", "2", "--pack", "4", "--runs-dir"])
        .arg(runs.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trials for task 2"));
}

/// An on-demand build (a binary started with RUNNER_BUILT) submitting to Slurm copies itself to
/// --build-dir, a place the nodes see, and its script runs that copy; `ls` skips that directory.
#[test]
fn a_slurm_script_of_an_on_demand_build_runs_its_copy_in_the_build_dir() {
    let runs = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args([
            "sweep",
            "experiments/sweeps/smoke.toml",
            "--slurm",
            "--dry-run",
        ])
        .arg("--runs-dir")
        .arg(runs.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUNNER_BUILT", "test-build")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let copy = runs.path().join("builds/test-build/runner");
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_runner")).unwrap()
    );
    let (_, text) = the_slurm_script(runs.path());
    assert!(text.contains(&copy.display().to_string()), "{text}");
    let ls = common::runner(&["ls"], runs.path());
    assert!(
        !String::from_utf8_lossy(&ls.stderr).contains("builds"),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
}

/// Finding 5 of issue 34: a sweep could not delete a key of its base (`[set]` rejected
/// `"~optimizer.momentum"`, so an SGD base could not become Adam). Now `"~KEY" = true` removes
/// it, as `--set ~KEY` does; anything but `true`, or an unknown key, is an error naming it.
#[test]
fn a_sweep_set_removes_a_key_of_its_base() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let write = |text: &str| {
        let file = dir.path().join("adam.toml");
        std::fs::write(
            &file,
            format!("name = \"adam\"\nbase = {base:?}\nseeds = [0]\n{text}"),
        )
        .unwrap();
        file
    };
    let file = write(
        "[set]\n\"optimizer.kind\" = \"adam\"\n\"~optimizer.momentum\" = true\n\
         \"optimizer.lr\" = 0.003\n\"train.steps\" = 2\n\"train.eval_every\" = 2\n",
    );
    let runs = dir.path().join("runs");
    let out = sweep(&[file.to_str().unwrap()], &runs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = common::the_run(&runs);
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        config.contains("kind = \"adam\"") && !config.contains("momentum"),
        "{config}"
    );
    for (text, says) in [
        (
            "[set]\n\"~optimizer.momentum\" = false\n",
            "write \"~optimizer.momentum\" = true",
        ),
        (
            "[set]\n\"~optimizer.momentun\" = true\n",
            "unknown key 'optimizer.momentun'",
        ),
    ] {
        let out = sweep(&[write(text).to_str().unwrap(), "--dry-run"], &runs);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
    }
}

/// Finding 5 of issue 34, in axes: `"~KEY"` in a `[zip]` (or `[grid]`) list removes the key in
/// the trials where it is `true` and keeps it where `false`, so one sweep compares SGD with
/// momentum against Adam.
#[test]
fn a_sweep_axis_removes_a_key_where_true() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let file = dir.path().join("optimizers.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"optimizers\"\nbase = {base:?}\n[set]\n\"train.steps\" = 2\n\
             \"train.eval_every\" = 2\n[zip]\n\"optimizer.kind\" = [\"sgd\", \"adam\"]\n\
             \"optimizer.lr\" = [0.1, 0.003]\n\"~optimizer.momentum\" = [false, true]\n"
        ),
    )
    .unwrap();
    let runs = dir.path().join("runs");
    let out = sweep(&[file.to_str().unwrap()], &runs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::runner(&["ls", "--json"], &runs);
    let configs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["config"].clone())
        .collect();
    assert_eq!(configs.len(), 2);
    let by_kind = |kind: &str| {
        configs
            .iter()
            .find(|c| c["optimizer.kind"] == kind)
            .unwrap()
    };
    assert_eq!(by_kind("sgd")["optimizer.momentum"], 0.9);
    assert!(by_kind("adam").get("optimizer.momentum").is_none());
    // Only booleans: anything else names the key and what to write.
    std::fs::write(
        &file,
        format!("name = \"bad\"\nbase = {base:?}\n[grid]\n\"~optimizer.momentum\" = [1, 0]\n"),
    )
    .unwrap();
    let out = sweep(&[file.to_str().unwrap(), "--dry-run"], &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("[grid] key '~optimizer.momentum'") && stderr.contains("[true, false]"),
        "{stderr}"
    );
}

/// Finding 6 of issue 34: after an interruption the final table ranked two interrupted trials
/// first and marked one best, with no status column, and the same trial was "running",
/// "waiting" or "interrupted" depending on the command. Now the table has a status column,
/// complete trials come first and only they are marked best; every command says
/// "interrupted".
#[test]
fn an_interrupted_trial_is_never_ranked_against_complete_ones() {
    let dir = tempfile::tempdir().unwrap();
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let file = dir.path().join("two.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"two\"\nbase = {base:?}\n[set]\n\"train.eval_every\" = 30\n\
             \"train.checkpoint_every\" = 30\n[zip]\n\"optimizer.lr\" = [0.0005, 0.1]\n\
             \"train.steps\" = [60, 1000000]\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let runs = dir.path().join("runs");
    // The weak trial, complete.
    let set = [
        "--set",
        "train.eval_every=30",
        "--set",
        "train.checkpoint_every=30",
    ];
    let weak = [
        &["run", "experiments/smoke.toml", "-q"][..],
        &set,
        &["--set", "optimizer.lr=0.0005", "--set", "train.steps=60"],
    ]
    .concat();
    assert!(common::runner(&weak, &runs).status.success());
    // The strong trial, interrupted (SIGINT) after three evaluations.
    let mut strong = Command::new(env!("CARGO_BIN_EXE_runner"));
    strong
        .args(["run", "experiments/smoke.toml", "-q", "--runs-dir"])
        .arg(&runs)
        .args(set)
        .args(["--set", "optimizer.lr=0.1", "--set", "train.steps=1000000"])
        .env("RUNNER_BUILD", "never")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let mut child = strong.spawn().unwrap();
    let evals = || -> usize {
        std::fs::read_dir(&runs)
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("eval.csv")).ok())
            .map(|t| t.lines().count().saturating_sub(1))
            .max()
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while evals() < 4 && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(130));

    let out = common::runner(&["compare", file], &runs);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("status"), "{table}");
    assert!(
        lines[2].contains("complete"),
        "the complete trial is first:\n{table}"
    );
    assert!(
        lines[3].contains("interrupted") && !lines[3].contains('*'),
        "the interrupted trial is after it, unranked:\n{table}"
    );
    // Its accuracy is the higher one: ranking by it alone would have put it first.
    let out = common::runner(&["compare", file, "--format", "json"], &runs);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = |i: usize| rows[i]["test_accuracy"].as_f64().unwrap();
    assert!(acc(1) > acc(0), "{rows}");
    assert_eq!(rows[1]["status"], "interrupted");
    // One word in every command.
    let status = String::from_utf8_lossy(&sweep(&["status", file], &runs).stdout).into_owned();
    assert!(
        status.contains("1 complete") && status.contains("1 interrupted"),
        "{status}"
    );
    let ls = String::from_utf8_lossy(&common::runner(&["ls", file], &runs).stdout).into_owned();
    assert_eq!(ls.matches("interrupted").count(), 1, "{ls}");
    assert_eq!(
        ls.lines().count(),
        4,
        "ls of a sweep file lists its trials:\n{ls}"
    );
    // A trial that failed (as a full disk leaves it: status `failed`, its evaluations kept) is
    // not ranked either, though its accuracy is the higher one.
    let strong = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p.join("summary.json"))
                .is_ok_and(|t| t.contains("\"interrupted\""))
        })
        .expect("the interrupted trial");
    let summary = std::fs::read_to_string(strong.join("summary.json")).unwrap();
    std::fs::write(
        strong.join("summary.json"),
        summary.replace("\"interrupted\"", "\"failed\""),
    )
    .unwrap();
    let out = common::runner(&["compare", file], &runs);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[2].contains("complete"), "{table}");
    assert!(
        lines[3].contains("failed") && !lines[3].contains('*'),
        "the failed trial is after the complete one, unranked:\n{table}"
    );
}

/// Grid and random sweeps run on the same pulling workers as `[tpe]` ones: two `runner sweep`
/// processes on one random sweep share its trials through the journal, each trial run once.
#[test]
fn a_random_sweep_is_shared_by_two_sweep_processes_through_the_journal() {
    let runs = tempfile::tempdir().unwrap();
    let file = runs.path().join("random.toml");
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"rand\"\nbase = {:?}\n[random]\ntrials = 6\nseed = 3\n\
             \"optimizer.lr\" = {{ log_uniform = [0.01, 0.2] }}\n",
            base.to_str().unwrap()
        ),
    )
    .unwrap();
    let spawn = || {
        common::command(&["sweep", file.to_str().unwrap()], runs.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(
        a.status.success() && b.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(started(&a) + started(&b), 6, "each trial started once");
    let events = common::journal(&common::sweep_dir(runs.path(), ""));
    let all: Vec<u64> = (0..6).collect();
    assert_eq!(common::trials_with(&events, "proposed"), all, "{events:?}");
    assert_eq!(common::trials_with(&events, "finished"), all, "{events:?}");
    // The journal records what each trial set, as `sweep status` shows it.
    let proposed = events.iter().find(|e| e["event"] == "proposed").unwrap();
    assert!(proposed["params"]["optimizer.lr"].is_f64(), "{proposed}");

    // Run again: nothing runs, and the closing line counts the six.
    let out = sweep(&[file.to_str().unwrap()], runs.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(started(&out), 0, "{stderr}");
    assert!(stderr.contains("6 of 6 trials: 6 complete"), "{stderr}");
}

/// A grid sweep directory written by the previous release (a manifest, no journal; trial 1's
/// run never finished) is resumed: the finished trials are recorded without running, trial 1
/// runs, and its neighbours' files are untouched.
#[test]
fn a_sweep_of_the_previous_release_is_resumed() {
    let work = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-sweep");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(&fixture)
        .arg(work.path().join("s"))
        .status()
        .unwrap();
    assert!(copy.success());
    let dir = work.path().join("s");
    let runs = dir.join("runs");
    let file = dir.join("sweep.toml");
    let summary = |name: &str| std::fs::read(runs.join(name).join("summary.json")).unwrap();
    let sweep_dir = common::sweep_dir(&runs, "old-grid-");
    assert!(!sweep_dir.join("journal.jsonl").exists());
    let manifest = std::fs::read_to_string(sweep_dir.join("manifest.jsonl")).unwrap();
    let names: Vec<String> = manifest
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            let dir = e["run_dir"].as_str().unwrap();
            dir.rsplit('/').next().unwrap().to_string()
        })
        .collect();
    let before = [summary(&names[0]), summary(&names[2])];

    let status = sweep(&["status", file.to_str().unwrap()], &runs);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.starts_with("3 trials: 2 complete"), "{text}");

    let out = sweep(&[file.to_str().unwrap()], &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(started(&out), 1, "{stderr}");
    assert!(stderr.contains("started trial 1 "), "{stderr}");
    assert!(stderr.contains("3 of 3 trials: 3 complete"), "{stderr}");
    assert_eq!([summary(&names[0]), summary(&names[2])], before);
    // The same sweep directory, now with a journal of the three.
    let events = common::journal(&sweep_dir);
    assert_eq!(
        common::trials_with(&events, "finished"),
        vec![0, 1, 2],
        "{events:?}"
    );
    let verify = common::runner(&["verify", &names[1], "-q"], &runs);
    assert!(verify.status.success());
}
