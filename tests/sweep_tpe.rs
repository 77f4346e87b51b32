//! `[tpe]` sweeps through the binary: workers pull trials from the journal, the budget is met
//! exactly, a rerun runs nothing, a `kill -9` loses nothing and runs no trial twice, and the same
//! completion order proposes the same trials.

mod common;
use common::runner;

use std::path::Path;
use std::process::Command;

const FILE: &str = "experiments/sweeps/smoke-tpe.toml";

/// The journal's events of the one sweep directory under `runs`.
fn journal(runs: &Path) -> Vec<serde_json::Value> {
    common::journal(&common::sweep_dir(runs, ""))
}

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// Trials that finished more than once.
fn finished_twice(events: &[serde_json::Value]) -> Vec<u64> {
    let mut seen = std::collections::BTreeMap::new();
    for e in events.iter().filter(|e| e["event"] == "finished") {
        *seen.entry(e["trial"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(t, _)| t)
        .collect()
}

#[test]
fn workers_meet_the_budget_and_a_rerun_runs_nothing() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let out = runner(&["sweep", FILE, "-j", "2"], r);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = journal(r);
    assert_eq!(count(&events, "proposed"), 8);
    assert_eq!(count(&events, "finished"), 8);
    assert!(finished_twice(&events).is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("8 of 8 trials: 8 complete"), "{stderr}");

    let again = runner(&["sweep", FILE, "-j", "2"], r);
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("started trial"));
    assert_eq!(journal(r).len(), events.len());

    let status =
        String::from_utf8_lossy(&runner(&["sweep", "status", FILE], r).stdout).into_owned();
    assert!(status.starts_with("8 of 8 trials: 8 complete"), "{status}");
    assert!(status.contains("best: trial"), "{status}");
    assert_eq!(status.lines().count(), 1 + 2 + 8, "{status}");
}

#[test]
fn starting_the_sweep_again_reruns_its_failed_trials_once() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    assert!(runner(&["sweep", FILE, "-j", "2"], r).status.success());
    // Make trial 5 a failure, as a crashed run leaves it: its `finished` line becomes `failed`
    // and its run directory is gone.
    let sweep_dir = common::sweep_dir(r, "");
    let mut events = journal(r);
    let run = events
        .iter()
        .find(|e| e["event"] == "proposed" && e["trial"] == 5)
        .unwrap()["run"]
        .as_str()
        .unwrap()
        .to_string();
    for e in events.iter_mut() {
        if e["event"] == "finished" && e["trial"] == 5 {
            *e = serde_json::json!({"event": "failed", "trial": 5, "exit": 1, "at": e["at"]});
        }
    }
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(sweep_dir.join("journal.jsonl"), text).unwrap();
    std::fs::remove_dir_all(r.join(&run)).unwrap();
    let status =
        String::from_utf8_lossy(&runner(&["sweep", "status", FILE], r).stdout).into_owned();
    assert!(
        status.contains("7 complete") && status.contains("1 failed"),
        "{status}"
    );

    let again = runner(&["sweep", FILE, "-j", "2"], r);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stderr.contains("1 failed trial(s) to run again"),
        "{stderr}"
    );
    assert!(stderr.contains("started trial 5"), "{stderr}");
    assert_eq!(stderr.matches("started trial").count(), 1, "{stderr}");
    let events = journal(r);
    assert_eq!(count(&events, "reopened"), 1);
    assert_eq!(count(&events, "proposed"), 8);
    assert!(r.join(&run).join("summary.json").is_file());
    assert!(stderr.contains("8 of 8 trials: 8 complete"), "{stderr}");
}

#[test]
fn the_same_completion_order_proposes_the_same_trials() {
    let params = |runs: &Path| -> Vec<serde_json::Value> {
        assert!(runner(&["sweep", FILE, "-q"], runs).status.success());
        journal(runs)
            .into_iter()
            .filter(|e| e["event"] == "proposed")
            .map(|e| e["params"].clone())
            .collect()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = params(a.path());
    assert_eq!(first.len(), 8);
    assert_eq!(first, params(b.path()));
}

#[test]
fn kill_9_at_random_points_loses_no_trial_and_runs_none_twice() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    // Kills at different moments of the sweep, then a clean finish.
    for delay_ms in [400u64, 900, 1500] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["sweep", FILE, "-j", "2", "--runs-dir"])
            .arg(r)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        child.wait().unwrap();
    }
    let out = runner(&["sweep", FILE, "-j", "2"], r);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = journal(r);
    assert_eq!(count(&events, "proposed"), 8, "{events:#?}");
    assert_eq!(count(&events, "finished"), 8, "{events:#?}");
    assert!(finished_twice(&events).is_empty(), "{events:#?}");
    let status =
        String::from_utf8_lossy(&runner(&["sweep", "status", FILE], r).stdout).into_owned();
    assert!(status.starts_with("8 of 8 trials: 8 complete"), "{status}");
}

#[test]
fn two_sweep_processes_share_one_budget() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["sweep", FILE, "-q", "--runs-dir"])
            .arg(r)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let events = journal(r);
    assert_eq!(count(&events, "proposed"), 8);
    assert_eq!(count(&events, "finished"), 8);
    assert!(finished_twice(&events).is_empty());
}

#[test]
fn asha_stops_tpe_trials_and_the_budget_still_holds() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let file = "experiments/sweeps/smoke-tpe-asha.toml";
    let out = runner(&["sweep", file, "-j", "2"], r);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events = journal(r);
    assert_eq!(count(&events, "proposed"), 9);
    assert_eq!(count(&events, "finished"), 9);
    assert!(finished_twice(&events).is_empty());
    let pruned: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "finished" && e["status"] == "pruned")
        .collect();
    // Which trials stop depends on their accuracy and the order they reach a rung; of nine
    // spread over two orders of magnitude of lr, some do.
    assert!(!pruned.is_empty(), "{stderr}");
    assert!(pruned.iter().all(|e| e["metric"].is_number()), "{pruned:?}");
    let status =
        String::from_utf8_lossy(&runner(&["sweep", "status", file], r).stdout).into_owned();
    assert!(status.starts_with("9 of 9 trials: "), "{status}");
    assert!(!status.contains(" 0 pruned"), "{status}");
}

/// Issue 35, finding 6: the journal was trusted over the run directories. A finished trial whose
/// run was removed stayed "complete" and a rerun trained nothing; a forged `finished` line made a
/// trial without a run the best; a non-UTF-8 line made `sweep status` count 0 trials. Now the
/// run directories decide, and a bad line is skipped with its line number.
#[test]
fn the_run_directories_decide_over_the_journal() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    assert!(runner(&["sweep", FILE, "-q"], r).status.success());
    let journal_path = common::sweep_dir(r, "").join("journal.jsonl");
    // Remove one finished trial's run.
    let first_run = journal(r)[0]["run"].as_str().unwrap().to_string();
    assert!(runner(&["rm", &first_run], r).status.success());
    // Forge a best trial with no run, and append bytes that are not UTF-8.
    let mut text = std::fs::read(&journal_path).unwrap();
    text.extend_from_slice(
        b"{\"event\":\"finished\",\"trial\":3,\"status\":\"complete\",\"metric\":0.99,\
          \"at\":\"2026-12-04T00:00:00Z\"}\n\xff\xfe not json\n",
    );
    std::fs::write(&journal_path, &text).unwrap();
    let lines = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();

    let out = runner(&["sweep", "status", FILE], r);
    let status = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(status.starts_with("8 of 8 trials: 7 complete"), "{status}");
    assert!(status.contains("1 missing"), "{status}");
    assert!(
        !status.contains("99.00%"),
        "the forged line is not a result: {status}"
    );
    assert!(
        stderr.contains(&format!("line {lines}: not a journal event")),
        "{stderr}"
    );

    // Running the sweep again trains the missing trial, and only it.
    let out = runner(&["sweep", FILE], r);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("started trial").count(), 1, "{stderr}");
    let status =
        String::from_utf8_lossy(&runner(&["sweep", "status", FILE], r).stdout).into_owned();
    assert!(status.starts_with("8 of 8 trials: 8 complete"), "{status}");
}

/// A journal written by the previous release (tests/fixtures/release-sweep, made with its
/// binary; trial 2's lines then cut from the journal and its run removed) is continued: its sweep
/// directory is found, its two trials stand, trial 2 is proposed from them, runs, and the budget
/// is met. Trial 2's expected parameters are this estimator's: the previous release proposed
/// lr 0.06787860797234292 (run smoke-a3a734da6027); the default estimator became Optuna 5's
/// (multivariate, constant liar, its bandwidths), which proposes 0.030408845144853876 from the
/// same two trials (CHANGELOG).
#[test]
fn a_journal_of_the_previous_release_is_continued() {
    let work = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-sweep");
    assert!(Command::new("cp")
        .arg("-r")
        .arg(&fixture)
        .arg(work.path().join("s"))
        .status()
        .unwrap()
        .success());
    let dir = work.path().join("s");
    let runs = dir.join("runs");
    let file = dir.join("tpe.toml");
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected-tpe-trial-2.json")).unwrap(),
    )
    .unwrap();
    let out = runner(&["sweep", file.to_str().unwrap()], &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr.matches("started trial").count(), 1, "{stderr}");
    assert!(stderr.contains("3 of 3 trials: 3 complete"), "{stderr}");
    let events = common::journal(&common::sweep_dir(&runs, "old-tpe-"));
    let proposed = events
        .iter()
        .find(|e| e["event"] == "proposed" && e["trial"] == 2)
        .unwrap();
    assert_eq!(proposed["params"], expected["params"], "{proposed}");
    assert_eq!(proposed["run"], expected["run"], "{proposed}");
    assert_eq!(count(&events, "finished"), 3);
}

/// `dir/<file>.toml`: a `[tpe]` sweep named `name` over the smoke MLP's learning rate, its
/// `[set]` and `[tpe]` tables holding `set` and `tpe` besides.
fn lr_search(dir: &Path, file: &str, name: &str, set: &str, tpe: &str) -> std::path::PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    let path = dir.join(format!("{file}.toml"));
    let text = format!(
        "name = \"{name}\"\nbase = \"{}\"\nmetric = \"test_accuracy\"\n[set]\n{set}\n\
         [tpe]\n{tpe}\n\"optimizer.lr\" = {{ log_uniform = [0.01, 0.2] }}\n",
        base.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `[tpe]`'s estimator options: a bad value names the file and the key; a value equal to the
/// default keeps the sweep directory (and so the journal) of the file without it; another value
/// is another sweep, which runs its own trials.
#[test]
fn tpe_options_are_checked_and_change_the_sweep_only_when_they_differ() {
    let work = tempfile::tempdir().unwrap();
    let runs = work.path().join("runs");
    let write = |file: &str, options: &str| {
        let tpe = format!("trials = 3\nstartup = 1\n{options}");
        lr_search(work.path(), file, "opts", "\"train.steps\" = 20", &tpe)
    };
    let bad = write("bad", "multivariate = \"yes\"");
    let out = runner(&["sweep", bad.to_str().unwrap()], &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml")
            && stderr.contains("[tpe] key 'multivariate': expected true or false"),
        "{stderr}"
    );
    assert!(!runs.join("sweeps").exists());

    let plain = write("plain", "");
    let out = runner(&["sweep", plain.to_str().unwrap()], &runs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let defaults = write(
        "defaults",
        "multivariate = true\nconstant_liar = true\ncandidates = 24",
    );
    let out = runner(&["sweep", defaults.to_str().unwrap()], &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("started trial"), "{stderr}");
    assert_eq!(std::fs::read_dir(runs.join("sweeps")).unwrap().count(), 1);

    let univariate = write("univariate", "multivariate = false\ncandidates = 8");
    let out = runner(&["sweep", univariate.to_str().unwrap()], &runs);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3 of 3 trials: 3 complete"), "{stderr}");
    assert_eq!(std::fs::read_dir(runs.join("sweeps")).unwrap().count(), 2);
}

/// `seed_per_trial = true`: trial `i` trains at the base's seed (after `[set]`) plus `i`, so
/// trial 0 is the very run the sweep without the key makes.
#[test]
fn seed_per_trial_trains_trial_i_at_the_base_seed_plus_i() {
    let work = tempfile::tempdir().unwrap();
    let runs = work.path().join("runs");
    let write = |name: &str, options: &str| {
        let set = "\"train.steps\" = 10\n\"seed\" = 7";
        let tpe = format!("trials = 3\nstartup = 3\n{options}");
        lr_search(work.path(), name, name, set, &tpe)
    };
    // The run directory and trained seed of each trial, in trial order.
    let trials = |file: &Path| -> Vec<(String, i64)> {
        let out = runner(&["sweep", file.to_str().unwrap(), "-q"], &runs);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let name = file.file_stem().unwrap().to_str().unwrap();
        let mut proposed: Vec<(u64, String)> = common::journal(&common::sweep_dir(&runs, name))
            .into_iter()
            .filter(|e| e["event"] == "proposed")
            .map(|e| {
                (
                    e["trial"].as_u64().unwrap(),
                    e["run"].as_str().unwrap().into(),
                )
            })
            .collect();
        proposed.sort();
        proposed
            .into_iter()
            .map(|(_, run)| {
                let config = std::fs::read_to_string(runs.join(&run).join("config.toml")).unwrap();
                let config: toml::Table = config.parse().unwrap();
                (run, config["seed"].as_integer().unwrap())
            })
            .collect()
    };
    let each = trials(&write("each", "seed_per_trial = true"));
    let seeds: Vec<i64> = each.iter().map(|t| t.1).collect();
    assert_eq!(seeds, [7, 8, 9]);
    let same = trials(&write("same", ""));
    assert!(same.iter().all(|t| t.1 == 7), "{same:?}");
    assert_eq!(each[0].0, same[0].0, "trial 0 is the same run either way");
    assert_ne!(each[1].0, same[1].0);
}
