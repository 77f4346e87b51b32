//! Managing runs through the binary: tag, note, show, ls by tag, rm (never a locked run).

mod common;

use common::runner;
use std::path::Path;
use std::process::Output;

/// Runs the smoke experiment once per seed into `runs`.
fn smoke_runs(runs: &Path, seeds: &[&str]) {
    for seed in seeds {
        let set = format!("seed={seed}");
        let out = runner(
            &["run", "experiments/smoke.toml", "--set", &set, "-q"],
            runs,
        );
        assert!(out.status.success());
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tag_note_show_and_remove_runs() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    smoke_runs(r, &["0", "1"]);
    // Tags and notes go to annotations.json; the run stays complete and keeps its hash.
    assert!(
        runner(&["tag", "smoke-fe52", "paper=fig3", "status=final"], r)
            .status
            .success()
    );
    assert!(
        runner(&["note", "smoke-fe52", "the reference smoke run"], r)
            .status
            .success()
    );
    let ls = stdout(&runner(&["ls", "--where", "tag.paper=fig3"], r));
    assert_eq!(ls.lines().count(), 3, "{ls}"); // header, rule, one run
    assert!(
        ls.contains("smoke-fe52b4313503") && ls.contains("paper=fig3,status=final"),
        "{ls}"
    );
    let show = stdout(&runner(&["show", "smoke-fe52"], r));
    for want in [
        "status:    complete (60/60 steps)",
        "tags:      paper=fig3, status=final",
        "the reference smoke run",
        "command:   ",
        "model.safetensors",
        "[optimizer]",
    ] {
        assert!(show.contains(want), "show lacks {want:?}:\n{show}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&runner(&["show", "smoke-fe52", "--json"], r))).unwrap();
    assert_eq!(json["tags"]["paper"], "fig3");
    assert_eq!(json["config"]["optimizer.lr"], 0.1);
    assert_eq!(json["status"], "complete");
    assert!(runner(&["tag", "smoke-fe52", "~paper"], r).status.success());
    assert!(!runner(&["tag", "smoke-fe52", "~paper"], r).status.success());
    // Retraining with --force keeps what the user wrote about the run.
    assert!(
        runner(&["run", "experiments/smoke.toml", "-q", "--force"], r)
            .status
            .success()
    );
    let show = stdout(&runner(&["show", "smoke-fe52"], r));
    assert!(
        show.contains("tags:      status=final") && show.contains("the reference smoke run"),
        "{show}"
    );

    // rm: --dry-run removes nothing, --incomplete spares complete runs, a locked run is left
    // alone with exit 6.
    let out = runner(&["rm", "smoke", "--dry-run"], r);
    assert_eq!(
        stdout(&out).matches("would remove").count(),
        2,
        "{}",
        stdout(&out)
    );
    let out = runner(&["rm", "smoke", "--incomplete"], r);
    assert!(out.status.success() && stdout(&out).is_empty());
    let locked = r.join("smoke-932ebdf7348f");
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(locked.join(".lock"))
        .unwrap();
    lock.lock().unwrap();
    // Two runs by one name: a script must say --yes.
    let out = runner(&["rm", "smoke"], r);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("names 2 runs")
            && String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(r.join("smoke-fe52b4313503").exists(), "nothing removed");
    let out = runner(&["rm", "smoke", "--yes"], r);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("smoke-932ebdf7348f"));
    assert!(
        locked.join("summary.json").is_file(),
        "a locked run was touched"
    );
    assert!(!r.join("smoke-fe52b4313503").exists());
    drop(lock);
    assert!(runner(&["rm", "smoke-932"], r).status.success());
    assert!(!locked.exists());
}

/// gc removes unfinished runs older than the age and leaves complete and recent ones.
#[test]
fn gc_removes_old_unfinished_runs_only() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    smoke_runs(r, &["0", "1", "2"]);
    // Make seed 1 a failed run from last year and seed 2 a failed run from now.
    let mark = |id: &str, started: Option<&str>| {
        let path = r.join(id).join("summary.json");
        let mut s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        s["status"] = "failed".into();
        if let Some(t) = started {
            s["started_at"] = t.into();
        }
        std::fs::write(&path, serde_json::to_string(&s).unwrap()).unwrap();
    };
    mark("smoke-932ebdf7348f", Some("2025-11-01T00:00:00+00:00"));
    let recent = std::fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n != "smoke-932ebdf7348f" && n != "smoke-fe52b4313503")
        .unwrap();
    mark(&recent, None);
    let out = runner(&["gc", "--dry-run"], r);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    assert!(stdout(&out).contains("would remove") && stdout(&out).contains("smoke-932ebdf7348f"));
    assert!(r.join("smoke-932ebdf7348f").exists());
    assert!(runner(&["gc"], r).status.success());
    assert!(!r.join("smoke-932ebdf7348f").exists());
    assert!(r.join("smoke-fe52b4313503").exists() && r.join(&recent).exists());
    assert!(runner(&["gc", "--older-than", "0m"], r).status.success());
    assert!(!r.join(&recent).exists() && r.join("smoke-fe52b4313503").exists());
}

/// Finding 2 of issue 34: `rm small-cnn` also removed `small-cnn-reg-...`. A name names its own
/// runs in every command, never those of a longer name that starts the same; `name-<hash
/// prefix>` and a bare hash prefix name one run.
#[test]
fn a_name_selects_its_own_runs_in_every_command() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    for name in ["smoke", "smoke-reg"] {
        let set = format!("name={name}");
        let out = runner(
            &[
                "run",
                "experiments/smoke.toml",
                "--set",
                &set,
                "--set",
                "train.steps=2",
                "-q",
            ],
            r,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ids = |args: &[&str]| -> Vec<String> {
        stdout(&runner(args, r))
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                Some(v["run"].as_str().or(v["dir"].as_str())?.to_string())
            })
            .collect()
    };
    let reg = ids(&["ls", "smoke-reg", "--json"]);
    assert_eq!(reg.len(), 1, "{reg:?}");
    for args in [&["ls", "smoke", "--json"][..], &["show", "smoke", "--json"]] {
        let listed = ids(args);
        assert_eq!(listed.len(), 1, "{args:?}: {listed:?}");
        assert!(!listed[0].contains("smoke-reg"), "{args:?}: {listed:?}");
    }
    assert!(runner(&["tag", "smoke", "k=v"], r).status.success());
    let reg_dir = std::fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("smoke-reg-")
        })
        .unwrap();
    assert!(
        !reg_dir.join("annotations.json").exists(),
        "tagged smoke-reg"
    );
    let hash = reg_dir.file_name().unwrap().to_string_lossy()["smoke-reg-".len()..].to_string();
    assert_eq!(
        ids(&["ls", &format!("smoke-reg-{}", &hash[..4]), "--json"]).len(),
        1
    );
    assert_eq!(ids(&["ls", &hash[..6], "--json"]).len(), 1);
    let out = runner(&["rm", "smoke"], r);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(reg_dir.is_dir(), "rm smoke removed smoke-reg");
    assert_eq!(ids(&["ls", "--json"]).len(), 1);
}
