//! Issue 35: files are believed only after they prove themselves. Each case tampers with a copy
//! of a complete run the way the attack did and checks that every reader calls it damaged,
//! naming the file, and that `run` trains it again saying why.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

/// `runner ARGS --runs-dir RUNS` with its own proof cache (`RUNNER_CACHE_DIR`).
fn runner(args: &[&str], runs: &Path, cache: &Path) -> Output {
    common::command(args, runs)
        .env("RUNNER_CACHE_DIR", cache)
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

fn edit(path: &Path, f: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let changed = f(text.clone());
    assert_ne!(changed, text, "{} unchanged", path.display());
    std::fs::write(path, changed).unwrap();
}

fn listed(runs: &Path, cache: &Path) -> serde_json::Value {
    let out = runner(&["--json", "ls"], runs, cache);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_complete_run_proves_itself_on_every_read() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let made = tmp.path().join("made");
    let out = runner(&["run", "experiments/smoke.toml", "-q"], &made, &cache);
    assert!(out.status.success());
    let pristine: PathBuf = common::the_run(&made);
    let id = pristine.file_name().unwrap().to_str().unwrap().to_string();
    type Tamper = fn(&Path);
    let cases: [(&str, Tamper, &str); 8] = [
        (
            "an accuracy in eval.csv",
            |d| edit(&d.join("eval.csv"), |t| t.replace(",0.8268,", ",0.9268,")),
            "eval.csv does not match",
        ),
        (
            "a dropped metrics.csv row",
            |d| {
                edit(&d.join("metrics.csv"), |t| {
                    t.lines()
                        .filter(|l| !l.starts_with("30,"))
                        .map(|l| format!("{l}\n"))
                        .collect()
                })
            },
            "metrics.csv does not match",
        ),
        (
            "a loss in metrics.csv",
            |d| {
                edit(&d.join("metrics.csv"), |t| {
                    let mut lines: Vec<String> = t.lines().map(String::from).collect();
                    let mut fields: Vec<String> = lines[10].split(',').map(String::from).collect();
                    fields[2] = "0.125".into();
                    lines[10] = fields.join(",");
                    lines.join("\n") + "\n"
                })
            },
            "metrics.csv does not match",
        ),
        (
            "4 bytes inside model.safetensors",
            |d| {
                let p = d.join("model.safetensors");
                let mut bytes = std::fs::read(&p).unwrap();
                let at = bytes.len() - 100;
                bytes[at..at + 4].copy_from_slice(&[0x00, 0x00, 0x80, 0x3f]);
                std::fs::write(&p, bytes).unwrap();
            },
            "model.safetensors: tensor",
        ),
        (
            "lr in config.toml",
            |d| {
                edit(&d.join("config.toml"), |t| {
                    t.replace("lr = 0.1", "lr = 0.5")
                })
            },
            "config.toml hashes to",
        ),
        (
            "final_test_accuracy in summary.json",
            |d| {
                edit(&d.join("summary.json"), |t| {
                    t.replace(
                        "\"final_test_accuracy\": 0.8268",
                        "\"final_test_accuracy\": 0.9968",
                    )
                })
            },
            "final_test_accuracy is not the one eval.csv holds",
        ),
        // Finding 8: a deleted summary made `run` start over without a word; a deleted config
        // hid the run from every command.
        (
            "summary.json deleted",
            |d| std::fs::remove_file(d.join("summary.json")).unwrap(),
            "summary.json is missing",
        ),
        (
            "config.toml deleted",
            |d| std::fs::remove_file(d.join("config.toml")).unwrap(),
            "config.toml is missing",
        ),
    ];
    for (i, (what, tamper, says)) in cases.into_iter().enumerate() {
        let runs = tmp.path().join(format!("case-{i}"));
        let dir = runs.join(&id);
        copy_dir(&pristine, &dir);
        // Read once while intact: the proof is remembered, and must not outlive the edit.
        assert_eq!(listed(&runs, &cache)["status"], "complete", "{what}");
        tamper(&dir);
        let run = listed(&runs, &cache);
        // Without its summary a run cannot claim anything: it reads as stopped, not complete
        // (a kill while a run starts over leaves the same directory).
        let want = if what == "summary.json deleted" {
            "interrupted"
        } else {
            "damaged"
        };
        assert_eq!(run["status"], want, "{what}: {run}");
        let why = run["error"].as_str().unwrap_or_default();
        assert!(why.contains(says), "{what}: {why}");
        if what.contains("deleted") {
            // Nothing to re-run or compare against: verify fails (exit 1) naming the file.
            let out = runner(&["verify", dir.to_str().unwrap(), "-q"], &runs, &cache);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(stderr.contains(&says[..12]), "{stderr}");
        } else if what.contains("summary.json") {
            // `verify` re-ran it bit-identically and said so, exit 0; the summary lies, so no.
            let out = runner(&["verify", dir.to_str().unwrap(), "-q"], &runs, &cache);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{stdout}");
            assert!(
                stdout.contains("DIFFERS") && stdout.contains(says),
                "{stdout}"
            );
        }
        if what.contains("model.safetensors") {
            // Finding 8: verify listed each differing tensor twice.
            let out = runner(&["verify", dir.to_str().unwrap(), "-q"], &runs, &cache);
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout.lines().find(|l| l.contains("weights")).unwrap_or("");
            assert!(
                line.contains("DIFFERS: tensors 2.weight differ"),
                "{stdout}"
            );
            assert_eq!(line.matches("2.weight").count(), 1, "{line}");
        }
        if i == 0 || what.contains("deleted") {
            // `run` does not skip it: it says why and trains it again, to the original bits.
            let out = runner(&["run", "experiments/smoke.toml"], &runs, &cache);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(
                stderr.contains("starting") && stderr.contains(&says[..20]),
                "{stderr}"
            );
            assert_eq!(listed(&runs, &cache)["status"], "complete");
            assert_eq!(
                common::digest_line("", &dir),
                common::digest_line("", &pristine)
            );
        }
    }
}

/// Finding 4: a `.lock` planted as a symbolic link was followed, and its target overwritten with
/// `pid=... host=...`, by `rm --dry-run` and by `run`. Now the link is never followed (`run`
/// replaces the link itself), and `--dry-run` writes nothing at all.
#[test]
fn a_planted_lock_link_is_never_followed_and_dry_runs_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let runs = tmp.path().join("runs");
    let out = runner(&["run", "experiments/smoke.toml", "-q"], &runs, &cache);
    assert!(out.status.success());
    let dir = common::the_run(&runs);
    std::fs::remove_file(dir.join(".lock")).unwrap();
    let listing = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&dir);
    for args in [
        &["rm", "smoke", "--dry-run"][..],
        &["gc", "--older-than", "1m", "--dry-run"],
    ] {
        let out = runner(args, &runs, &cache);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            listing(&dir),
            before,
            "{args:?} wrote into the run directory"
        );
    }
    let victim = tmp.path().join("precious.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join(".lock")).unwrap();
    let out = runner(&["rm", "smoke", "--dry-run"], &runs, &cache);
    assert!(out.status.success());
    let out = runner(
        &["run", "experiments/smoke.toml", "-q", "--force"],
        &runs,
        &cache,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let lock = std::fs::symlink_metadata(dir.join(".lock")).unwrap();
    assert!(
        lock.file_type().is_file(),
        "the link was replaced by a lock file"
    );
}

/// Finding 8: a note or a copied run's files printed raw could send escape sequences to the
/// terminal and fake output lines; a directory renamed to another run's hash passed itself off
/// as that run. A renamed copy without a hash in its name is still a run.
#[test]
fn printed_text_is_escaped_and_a_directory_name_cannot_lie() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let made = tmp.path().join("made");
    assert!(
        runner(&["run", "experiments/smoke.toml", "-q"], &made, &cache)
            .status
            .success()
    );
    let pristine = common::the_run(&made);

    let note = "fine\nstatus:    complete\x1b[2J\x1b[31mred";
    let out = runner(&["note", "smoke", note], &made, &cache);
    assert!(out.status.success());
    let shown = runner(&["show", "smoke"], &made, &cache).stdout;
    let shown = String::from_utf8_lossy(&shown);
    assert!(!shown.contains('\x1b'), "{shown}");
    let starting = |p: &str| shown.lines().filter(|l| l.starts_with(p)).count();
    assert_eq!((starting("status:"), starting("note:")), (1, 1), "{shown}");
    assert!(
        shown.contains("fine\\nstatus:    complete\\u{1b}[2J"),
        "{shown}"
    );

    let runs = tmp.path().join("copies");
    copy_dir(&pristine, &runs.join("my-best-run"));
    copy_dir(&pristine, &runs.join("smoke-0123456789ab"));
    let out = runner(&["--json", "ls"], &runs, &cache);
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |id: &str| rows.iter().find(|r| r["run"] == id).unwrap().clone();
    assert_eq!(row("my-best-run")["status"], "complete", "{rows:?}");
    let lying = row("smoke-0123456789ab");
    assert_eq!(lying["status"], "damaged", "{lying}");
    assert!(
        lying["error"]
            .as_str()
            .unwrap()
            .contains("named for hash 0123456789ab"),
        "{lying}"
    );
}
