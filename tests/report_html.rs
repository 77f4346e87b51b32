//! `runner report`: the HTML file is self-contained and holds every run; in a real browser
//! (headless Chromium, when installed: .ci/run installs Debian's) the page renders one table row
//! per run and one curve per seed group, the sweep's parallel-coordinates axes, sorts from its URL
//! fragment, and logs nothing to the console.

mod common;
use common::runner;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs")
}

fn report(args: &[&str], runs: &Path, out: &Path) -> String {
    let mut all = vec!["report", "-o", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let done = runner(&all, runs);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    std::fs::read_to_string(out).unwrap()
}

/// The JSON the page draws from.
fn data(page: &str) -> Value {
    let start = page
        .find(r#"<script type="application/json" id="report-data">"#)
        .expect("data element")
        + r#"<script type="application/json" id="report-data">"#.len();
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end]).unwrap()
}

#[test]
fn the_report_is_one_self_contained_file_with_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let page = report(&["smoke-*"], &fixtures(), &tmp.path().join("r.html"));
    // Nothing to fetch: no external scripts, styles, images or fonts.
    for external in [
        "<script src",
        "<link",
        "@import",
        "url(",
        "src=\"http",
        "href=\"http",
    ] {
        assert!(!page.contains(external), "the page refers out: {external}");
    }
    let d = data(&page);
    let runs = d["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 7);
    // Seed replicates are one group: lr 0.05 (3 seeds), 0.1 (3 seeds), 0.2 (1, still running).
    let sizes: Vec<usize> = d["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["runs"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 7);
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert_eq!(d["keys"], serde_json::json!(["optimizer.lr", "seed"]));
    assert_eq!(d["axes"], serde_json::json!(["optimizer.lr"]));
    for r in runs {
        let x = r["curves"]["x"].as_array().unwrap();
        // 60-step runs are short enough to keep whole, up to the last logged step.
        assert_eq!(
            x.len() as u64,
            r["steps_done"].as_u64().unwrap(),
            "{}",
            r["id"]
        );
        assert_eq!(r["curves"]["loss"].as_array().unwrap().len(), x.len());
    }
    let running: Vec<&Value> = runs.iter().filter(|r| r["status"] == "running").collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0]["steps_done"], 40);
    assert!(d["source"].as_str().unwrap().starts_with("runner report"));
}

#[test]
fn a_sweep_file_or_directory_reports_its_trials_against_its_metric() {
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let sweep = "experiments/sweeps/smoke-asha.toml";
    let out = runner(&["sweep", sweep, "-q"], r);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = report(&[sweep], r, &r.join("sweep.html"));
    let d = data(&page);
    assert_eq!(d["runs"].as_array().unwrap().len(), 6);
    assert_eq!(d["sweep"], "smoke-asha");
    assert_eq!(d["axes"], serde_json::json!(["optimizer.lr"]));
    assert_eq!(d["metric"]["name"], "test_accuracy");
    assert!(d["runs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["status"] == "pruned"));
    // The sweep directory gives the same runs.
    let dir = std::fs::read_dir(r.join("sweeps"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let by_dir = data(&report(&[dir.to_str().unwrap()], r, &r.join("dir.html")));
    assert_eq!(by_dir["runs"], d["runs"]);
    assert_eq!(by_dir["sweep"], "smoke-asha");
    // A metric that is not one is refused, naming the allowed ones.
    let bad = runner(&["report", sweep, "-o", "/dev/null", "--metric", "acc"], r);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("best_test_accuracy"));
}

/// Chromium's binary: `$RUNNER_CHROMIUM`, else the first of the usual names on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RUNNER_CHROMIUM") {
        return Some(p.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// The DOM after the page's script ran, and the browser's log lines that carry console output.
fn render(browser: &Path, page: &Path, fragment: &str) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1400,1000",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}{fragment}", page.display()))
        .output()
        .expect("chromium runs");
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

/// The `data-run` values of the table rows, in the order shown.
fn row_order(dom: &str) -> Vec<String> {
    dom.split("<tr data-run=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

#[test]
fn the_report_renders_sorts_and_stays_quiet_in_a_real_browser() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on PATH (set RUNNER_CHROMIUM); .ci/run installs it");
        return;
    };
    let runs = tempfile::tempdir().unwrap();
    let r = runs.path();
    let sweep = "experiments/sweeps/smoke-asha.toml";
    assert!(runner(&["sweep", sweep, "-q"], r).status.success());
    let file = r.join("sweep.html");
    let d = data(&report(&[sweep], r, &file));
    let n = d["runs"].as_array().unwrap().len();

    let (dom, console) = render(&browser, &file, "");
    assert!(console.is_empty(), "console output: {console:#?}");
    assert!(
        dom.contains(r#"data-ready="1""#),
        "the script did not finish"
    );
    assert_eq!(row_order(&dom).len(), n);
    // One curve per group in each of the four panels: six lrs, one run each.
    let curves: Vec<&str> = dom.split("data-curves=\"").skip(1).collect();
    assert_eq!(curves.len(), 4);
    for c in curves {
        assert!(c.starts_with(&format!("{n}\"")), "{}", &c[..10]);
    }
    // Parallel coordinates: one axis per swept key and one for the metric; a line per run.
    assert_eq!(dom.matches("<g class=\"axis pc-axis\"").count(), 2);
    assert!(dom.contains(r#"data-key="test_accuracy""#));
    assert_eq!(dom.matches("<path d=").count(), n);
    assert!(
        dom.contains("class=\"pruned\""),
        "pruned trials are not marked"
    );

    // Sorting by a column (the fragment a header click writes) reorders the rows.
    let acc = |id: &str| -> f64 {
        let run = d["runs"].as_array().unwrap().iter().find(|r| r["id"] == id);
        run.unwrap()["metrics"]["test_accuracy"].as_f64().unwrap()
    };
    let (sorted, console) = render(&browser, &file, "#sort=test_accuracy&desc=1");
    assert!(console.is_empty(), "console output: {console:#?}");
    let order = row_order(&sorted);
    assert_eq!(order.len(), n);
    assert!(
        order.windows(2).all(|w| acc(&w[0]) >= acc(&w[1])),
        "{order:?}"
    );
    // With no fragment the rows are already best first by the sweep's metric (issue 34: the
    // report's table was in run order).
    assert_eq!(
        row_order(&dom),
        order,
        "the default order is not the sweep metric's"
    );
    let (ascending, _) = render(&browser, &file, "#sort=test_accuracy");
    let up = row_order(&ascending);
    assert!(up.windows(2).all(|w| acc(&w[0]) <= acc(&w[1])), "{up:?}");
    assert_ne!(up, order);
    // A filter in the fragment hides the rows without the text.
    let (filtered, _) = render(&browser, &file, &format!("#filter={}", &order[0]));
    let shown: Vec<&str> = filtered
        .split("<tr data-run")
        .skip(1)
        .filter(|tag| !tag[..tag.find('>').unwrap()].contains("hidden"))
        .collect();
    assert_eq!(shown.len(), 1);
}
