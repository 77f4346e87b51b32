//! `runner ls / compare / diff / plot` on fixture run directories: golden outputs, robustness,
//! images, and speed over 1000 runs.

mod common;
use common::runner;

use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs")
}

/// Compares stdout with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file instead.
fn golden(name: &str, args: &[&str]) {
    let out = runner(args, &fixtures());
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {}", path.display()));
    assert_eq!(got, want, "{args:?} differs from {}", path.display());
}

#[test]
fn compare_in_every_format() {
    golden("compare.txt", &["compare", "smoke-*"]);
    golden("compare.csv", &["compare", "smoke-*", "--format", "csv"]);
    golden("compare.json", &["compare", "smoke-*", "--format", "json"]);
    golden(
        "compare.md",
        &["compare", "smoke-*", "--format", "markdown"],
    );
    golden("compare-at-30.txt", &["compare", "smoke-*", "--at", "30"]);
}

#[test]
fn ls_and_diff() {
    golden("ls.txt", &["ls"]);
    golden(
        "ls-where-sorted.txt",
        &[
            "ls",
            "--where",
            "optimizer.lr=5e-2",
            "--sort",
            "test_acc",
            "--desc",
        ],
    );
    golden("diff.txt", &["diff", "smoke-932", "smoke-94c"]);
}

#[test]
fn non_runs_are_skipped_with_a_warning_and_bad_specs_are_errors() {
    let out = runner(&["ls"], &fixtures());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipping") && stderr.contains("not-a-run"),
        "{stderr}"
    );
    let out = runner(&["compare", "nothing-like-this"], &fixtures());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches no run"));
    let out = runner(&["ls", "--sort", "nope"], &fixtures());
    assert_eq!(out.status.code(), Some(2));
    let out = runner(&["diff", "smoke-*", "smoke-932"], &fixtures());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("exactly one"));
}

/// The Welch line goes with the table in every format: after it in text and Markdown, as a
/// `welch` object (with the p-value as a number) in JSON, and to stderr for CSV.
#[test]
fn stats_reports_a_welch_p_value_in_every_format() {
    let out = runner(&["compare", "smoke-*", "--stats"], &fixtures());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Welch t-test on test_acc") && stdout.contains("p = 0."),
        "{stdout}"
    );
    let out = runner(
        &["compare", "smoke-*", "--stats", "--format", "markdown"],
        &fixtures(),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Welch t-test on test_acc"));
    let out = runner(
        &["compare", "smoke-*", "--stats", "--format", "json"],
        &fixtures(),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["welch"]["p"]
            .as_f64()
            .is_some_and(|p| p > 0.0 && p < 1.0),
        "{doc}"
    );
    assert_eq!(doc["rows"].as_array().unwrap().len(), 3);
    let out = runner(
        &["compare", "smoke-*", "--stats", "--format", "csv"],
        &fixtures(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Welch t-test"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Welch"));
}

#[test]
fn plots_are_valid_png_and_svg_images() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    let svg = dir.path().join("p.svg");
    for (path, extra) in [(&png, None), (&svg, Some("--log-loss"))] {
        let mut args = vec!["plot", "smoke-*", "-o", path.to_str().unwrap()];
        args.extend(extra);
        let out = runner(&args, &fixtures());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (1400, 900)); // two rows of panels; the legend fits
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    for needle in [
        "Training loss",
        "Test accuracy",
        "optimizer.lr=0.05 (n=3",
        "step",
    ] {
        assert!(text.contains(needle), "SVG lacks {needle:?}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary files left"
    );
    let out = runner(
        &[
            "plot",
            "smoke-*",
            "-o",
            dir.path().join("p.gif").to_str().unwrap(),
        ],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn compare_over_1000_runs_is_fast() {
    let runs = tempfile::tempdir().unwrap();
    let template = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("model.safetensors").exists())
        .unwrap();
    for i in 0..1000 {
        let dir = runs.path().join(format!("smoke-{i:012x}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(
            template.join("model.safetensors"),
            dir.join("model.safetensors"),
        )
        .unwrap();
        for f in [
            "config.toml",
            "summary.json",
            "meta.json",
            "eval.csv",
            "metrics.csv",
        ] {
            let text = std::fs::read_to_string(template.join(f)).unwrap();
            let text = if f == "config.toml" {
                text.replace("seed = 0", &format!("seed = {}", i % 7))
            } else {
                text
            };
            std::fs::write(dir.join(f), text).unwrap();
        }
    }
    let start = std::time::Instant::now();
    let out = runner(&["compare", "smoke-*"], runs.path());
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("compare over 1000 runs: {took:?}");
    assert!(took.as_secs_f64() < 5.0, "took {took:?}");
}

/// `ls`: a pattern or filter that matches nothing exits 1 saying so (as grep does); `--columns`
/// adds config keys and metrics and names what it cannot show; `diff` of a run with itself says
/// identical. (The golden `ls.txt` shows the default order, start time, the keys that differ,
/// and the running fixture's steps read from its metrics.csv: 40/60, not the summary's 0/60.)
#[test]
fn ls_says_when_nothing_matches_and_takes_columns() {
    let out = runner(&["ls", "nothing-here"], &fixtures());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no run matches 'nothing-here'"), "{stderr}");
    let out = runner(&["ls", "--where", "seed=7"], &fixtures());
    assert_eq!(out.status.code(), Some(1));

    let out = runner(
        &["ls", "--columns", "train.batch_size,best_acc"],
        &fixtures(),
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let header = stdout.lines().next().unwrap();
    assert!(
        header.contains("train.batch_size") && header.contains("best_acc"),
        "{header}"
    );
    let out = runner(&["ls", "--columns", "colour"], &fixtures());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--columns colour"));

    let out = runner(&["diff", "smoke-932", "smoke-932"], &fixtures());
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("identical: smoke-932ebdf7348f"));
}

/// Runs on different data are never ranked against each other: a run on a copy of MNIST with
/// one test label changed gets no `*` against a run on MNIST. A dataset other than "mnist"
/// needs data.dir, and data that is not MNIST but called "mnist" draws a warning.
#[test]
fn runs_on_different_data_are_not_ranked_against_each_other() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("other");
    std::fs::create_dir(&data).unwrap();
    let vendored = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    for entry in std::fs::read_dir(&vendored).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "gz") {
            std::fs::copy(&p, data.join(p.file_name().unwrap())).unwrap();
        }
    }
    let labels = data.join("t10k-labels-idx1-ubyte.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&labels).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    raw[8] = (raw[8] + 1) % 10; // the first test label
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&labels).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&raw).unwrap();
    gz.finish().unwrap();

    let runs = tmp.path().join("runs");
    let dir = data.to_str().unwrap();
    let out = runner(&["run", "experiments/smoke.toml", "-q"], &runs);
    assert!(out.status.success());
    let out = runner(
        &[
            "run",
            "experiments/smoke.toml",
            "-q",
            "--set",
            &format!("data.dir={dir}"),
        ],
        &runs,
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is not MNIST") && stderr.contains("data.dataset"),
        "{stderr}"
    );
    let compare = runner(&["compare", "smoke"], &runs);
    let table = String::from_utf8_lossy(&compare.stdout);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(
        !table.contains('*'),
        "rows on different data ranked:\n{table}"
    );

    let out = runner(
        &[
            "resolve",
            "experiments/smoke.toml",
            "--set",
            "data.dataset=fashion-mnist",
        ],
        &runs,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no vendored copy"));
}

/// Fashion-MNIST is recognised by its checksums: a run on it with the dataset left at its
/// default resolves to `dataset = "fashion-mnist"`, the same run as naming it, and `compare`
/// shows the dataset beside an MNIST run without ranking the two. Needs the real files
/// (`$RUNNER_FASHION_MNIST_DIR`, else Debian's dataset-fashion-mnist, which .ci/run fetches).
#[test]
fn fashion_mnist_is_recognised_by_its_checksums() {
    let dir = std::env::var_os("RUNNER_FASHION_MNIST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/share/datasets/fashion-mnist".into());
    if !dir.join("t10k-labels-idx1-ubyte.gz").is_file() {
        eprintln!(
            "skipped: no Fashion-MNIST at {} (set RUNNER_FASHION_MNIST_DIR)",
            dir.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let set_dir = format!("data.dir={}", dir.display());
    let unnamed = runner(
        &["run", "experiments/smoke.toml", "-q", "--set", &set_dir],
        &runs,
    );
    assert!(unnamed.status.success());
    let stderr = String::from_utf8_lossy(&unnamed.stderr);
    assert!(stderr.contains("holds fashion-mnist"), "{stderr}");
    let run_dir = |extra: &[&str]| {
        let mut args = vec![
            "resolve",
            "--dir",
            "experiments/smoke.toml",
            "--set",
            &set_dir,
        ];
        args.extend_from_slice(extra);
        String::from_utf8_lossy(&runner(&args, &runs).stdout).into_owned()
    };
    let fashion = run_dir(&[]);
    assert_eq!(fashion, run_dir(&["--set", "data.dataset=fashion-mnist"]));
    let config = std::fs::read_to_string(Path::new(fashion.trim()).join("config.toml")).unwrap();
    assert!(config.contains("dataset = \"fashion-mnist\""), "{config}");

    assert!(runner(&["run", "experiments/smoke.toml", "-q"], &runs)
        .status
        .success());
    let compare = runner(&["compare", "smoke"], &runs);
    let table = String::from_utf8_lossy(&compare.stdout);
    assert!(table.contains("fashion-mnist"), "{table}");
    assert!(
        !table.contains('*'),
        "rows on different data ranked:\n{table}"
    );
}

/// The plot's panels are chosen with --panels (default: training loss, test loss, accuracy and
/// lr); seed replicates are one curve labelled with n; legend labels wrap instead of being cut.
#[test]
fn plots_have_panels_groups_and_whole_legends() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("p.svg");
    let out = runner(
        &["plot", "smoke-*", "-o", svg.to_str().unwrap(), "--log-loss"],
        &fixtures(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    for want in [
        "Training loss",
        "Test loss (validation dashed)",
        "Test accuracy",
        "Learning rate",
        "optimizer.lr=0.05 (n=3: mean, min-max",
        "band)",
        "optimizer.lr=0.2",
        "(log scale)",
    ] {
        assert!(text.contains(want), "the SVG lacks {want:?}");
    }
    let out = runner(
        &[
            "plot",
            "smoke-*",
            "-o",
            svg.to_str().unwrap(),
            "--panels",
            "lr",
        ],
        &fixtures(),
    );
    assert!(out.status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("Learning rate") && !text.contains("Training loss"));
    let out = runner(
        &[
            "plot",
            "smoke-*",
            "-o",
            svg.to_str().unwrap(),
            "--panels",
            "loss,colour",
        ],
        &fixtures(),
    );
    assert_eq!(out.status.code(), Some(2));
    // Issue 34, finding 8: legends named every differing key; --label chooses them.
    let plot = ["plot", "smoke-*", "-o", svg.to_str().unwrap()];
    let out = runner(&[&plot[..], &["--label", "seed"]].concat(), &fixtures());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("seed=0") && !text.contains("optimizer.lr="),
        "{text}"
    );
    let out = runner(&[&plot[..], &["--label", "colour"]].concat(), &fixtures());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--label colour"));
}

/// Keys the canonical form leaves out at their default read as that default, not as a blank:
/// `ls --where model.activation=relu` finds the fixtures (none sets it), and their config has it.
#[test]
fn defaults_left_out_of_configs_read_as_their_values() {
    let out = runner(&["ls", "--where", "model.activation=relu"], &fixtures());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2 + 7);
    let out = runner(&["show", "smoke-fe52", "--json"], &fixtures());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["config"]["model.dropout"], 0.0);
    assert_eq!(json["config"]["schedule.kind"], "constant");
}

/// Issue 34, finding 7: `--where` took equality only; `optimizer.lr<0.01` was rejected. Now `=`,
/// `!=`, `<`, `<=`, `>`, `>=` (orderings on numbers; a non-number is an error naming it).
#[test]
fn where_compares_numbers() {
    let count = |filter: &str| {
        let out = runner(&["ls", "--json", "--where", filter], &fixtures());
        assert!(
            out.status.success(),
            "{filter}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let all = count("optimizer.lr>0");
    assert_eq!(all, 7);
    assert_eq!(count("optimizer.lr<0.1"), 3);
    assert_eq!(count("optimizer.lr<=0.1"), 6);
    assert_eq!(count("optimizer.lr>=1e-1"), 4);
    assert_eq!(count("optimizer.lr!=0.05"), 4);
    assert_eq!(count("optimizer.lr=5e-2"), 3);
    let out = runner(&["ls", "--where", "optimizer.lr<fast"], &fixtures());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("compares numbers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 34, finding 3: JSON forms disagreed (`--json ls` had `dir` and `steps` and no config,
/// `ls --format json` had `run` and `tags` and no `steps`; `show --json` printed `[32]` as
/// `{"32": {}}`; lists were strings). Now one object per run everywhere, config values typed.
#[test]
fn one_json_object_for_a_run_everywhere() {
    const FIELDS: [&str; 20] = [
        "run",
        "dir",
        "name",
        "hash",
        "status",
        "error",
        "steps",
        "steps_done",
        "test_accuracy",
        "test_loss",
        "best_test_accuracy",
        "best_test_step",
        "val_accuracy",
        "val_loss",
        "ms_per_step",
        "wall_time_s",
        "started_at",
        "finished_at",
        "tags",
        "config",
    ];
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let lines = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = runner(args, r);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let trained = lines(&[
        "--json",
        "run",
        "experiments/smoke.toml",
        "-q",
        "--set",
        "train.steps=2",
        "--set",
        "train.eval_every=2",
        "--set",
        "model.hidden=[300, 100]",
    ]);
    assert_eq!(trained.len(), 1);
    let run = &trained[0];
    let keys: Vec<&str> = run
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = FIELDS.to_vec();
    expected.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, expected, "the documented fields");
    assert_eq!(run["config"]["model.hidden"], serde_json::json!([300, 100]));
    assert_eq!(run["config"]["optimizer.lr"], serde_json::json!(0.1));
    assert_eq!(run["steps_done"], 2);
    let id = run["run"].as_str().unwrap();
    assert_eq!(lines(&["--json", "ls"])[0], *run);
    assert_eq!(lines(&["ls", "--format", "json"])[0], *run);
    assert_eq!(lines(&["--json", "compare", id])[0], *run);
    let shown = &lines(&["--json", "show", id])[0];
    for field in FIELDS {
        assert_eq!(shown[field], run[field], "show --json: {field}");
    }
    // The docs list the same fields.
    let docs = std::fs::read_to_string("docs/run-directory.md").unwrap();
    for field in FIELDS {
        assert!(
            docs.contains(&format!("`{field}`")),
            "docs/run-directory.md lacks `{field}`"
        );
    }
}

/// Issue 34, finding 7: `compare` and `ls` did not take a sweep (file or directory), tables
/// could not lose columns, and `compare` ranked by test accuracy whatever the sweep's metric.
#[test]
fn compare_and_ls_take_sweeps_and_columns() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loss.toml");
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/smoke.toml");
    // Ranked by test loss (smallest first): the order differs from test accuracy's.
    std::fs::write(
        &file,
        format!(
            "name = \"loss\"\nbase = {base:?}\nmetric = \"test_loss\"\n[set]\n\
             \"train.steps\" = 30\n\"train.eval_every\" = 30\n[grid]\n\
             \"optimizer.lr\" = [0.02, 0.1, 0.4]\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    assert!(runner(&["sweep", file, "-q"], r).status.success());
    let json = |args: &[&str]| -> serde_json::Value {
        let out = runner(args, r);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let rows = json(&["compare", file, "--format", "json"]);
    let losses: Vec<f64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["test_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len(), 3);
    assert!(
        losses.windows(2).all(|w| w[0] <= w[1]),
        "sorted by test_loss: {losses:?}"
    );
    // The sweep directory names the same runs.
    let sweep_dir = std::fs::read_dir(r.join("sweeps"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let by_dir = json(&["compare", sweep_dir.to_str().unwrap(), "--format", "json"]);
    assert_eq!(by_dir.as_array().unwrap().len(), 3);
    // ls of the sweep, with columns removed and added.
    let out = runner(&["ls", file, "--columns=-hash,-started,-name,seed"], r);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = text.lines().next().unwrap();
    assert!(
        !header.contains("hash") && !header.contains("started"),
        "{header}"
    );
    assert!(
        header.contains("seed") && header.contains("optimizer.lr"),
        "{header}"
    );
    assert_eq!(text.lines().count(), 2 + 3);
    let out = runner(&["compare", file, "--columns=-wall_s,-train_loss"], r);
    let header = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(
        !header.contains("wall_s") && header.contains("test_loss"),
        "{header}"
    );
    let out = runner(&["compare", file, "--columns=-colour"], r);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--columns -colour: no such column"));
}
