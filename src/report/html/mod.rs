//! `runner report`: one self-contained HTML file (styles, script and data inline; no network)
//! with a sortable, filterable table of runs, their curves (seed replicates as mean and min-max
//! band) and, when the runs differ in some keys, parallel coordinates and one scatter per key
//! against a metric. The page draws on canvas and SVG with a hand-written script
//! (`report.js`), so a thousand runs stay light: every curve is cut to at most [`MAX_POINTS`].

use super::compare::differing_keys;
use super::metrics::{self, Metric, ReadMetric};
use super::runs::{Run, StepRow};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The most points of one curve the page holds; longer logs are averaged in blocks.
pub const MAX_POINTS: usize = 500;

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("report.js");

/// What the page says about itself and which metric the sweep plots rank by.
pub struct Options {
    /// How the report was made (the command line), shown at the top.
    pub source: String,
    /// When, RFC 3339.
    pub made_at: String,
    /// The metric of the parallel coordinates and scatters, and whether larger is better.
    pub metric: Metric,
    pub maximize: bool,
    /// The keys a sweep varies (its axes); `None`: the keys that differ among the runs.
    pub axes: Option<Vec<String>>,
    /// The sweep's name, when the runs are a sweep's.
    pub sweep: Option<String>,
}

/// The whole HTML page.
pub fn render(runs: &[Run], opts: &Options) -> String {
    let data = data(runs, opts).to_string().replace('<', "\\u003c");
    PAGE.replace("/*STYLE*/", STYLE)
        .replace("/*SCRIPT*/", SCRIPT)
        .replace("/*DATA*/", &data)
}

/// The page's data: runs with their differing config, metrics, tags and cut-down curves;
/// groups of seed replicates; the axes of the sweep plots.
fn data(runs: &[Run], opts: &Options) -> Value {
    let refs: Vec<&Run> = runs.iter().collect();
    let keys: Vec<String> = differing_keys(&refs)
        .into_iter()
        .filter(|k| k != "name")
        .collect();
    let axes = opts.axes.clone().unwrap_or_else(|| plotted_keys(&keys));
    let (group_of, group_runs) = seed_groups(runs);
    let shown: Vec<&String> = keys.iter().chain(axes.iter()).collect();
    let runs_json: Vec<Value> = runs
        .iter()
        .zip(&group_of)
        .map(|(run, &group)| run_json(run, group, &shown))
        .collect();
    let groups: Vec<Value> = group_runs
        .iter()
        .map(|members| {
            json!({
                "label": group_label(runs, members, &keys),
                "runs": members,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "made_at": opts.made_at,
        "source": opts.source,
        "sweep": opts.sweep,
        "keys": keys,
        "axes": axes,
        "metric": {
            "name": opts.metric.name(),
            "label": opts.metric.column(),
            "maximize": opts.maximize,
        },
        "runs": runs_json,
        "groups": groups,
    })
}

/// The keys the sweep plots show: all given, `seed` only when nothing else varies (replicates
/// are grouped, not plotted against).
pub fn plotted_keys(keys: &[String]) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for k in keys {
        if !unique.contains(k) {
            unique.push(k.clone());
        }
    }
    if unique.iter().any(|k| k != "seed") {
        unique.retain(|k| k != "seed");
    }
    unique
}

/// Each run's group index, and each group's runs: configs equal but for `seed`, in the order of
/// their first run (as `compare` and `plot` group them).
fn seed_groups(runs: &[Run]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut index: BTreeMap<Vec<(String, String)>, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let of = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let g = *index.entry(run.config_without_seed()).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
            g
        })
        .collect();
    (of, groups)
}

/// What tells a group from the others: its values of the differing keys other than `seed`.
fn group_label(runs: &[Run], members: &[usize], keys: &[String]) -> String {
    let first = &runs[members[0]];
    let parts: Vec<String> = keys
        .iter()
        .filter(|k| *k != "seed")
        .map(|k| format!("{k}={}", value_text(first.config.get(k))))
        .collect();
    let label = if parts.is_empty() {
        if members.len() > 1 {
            first.name.clone()
        } else {
            first.id.clone()
        }
    } else {
        parts.join(" ")
    };
    if members.len() > 1 {
        format!("{label} (n={})", members.len())
    } else {
        label
    }
}

fn value_text(v: Option<&String>) -> String {
    v.map_or("-".into(), |v| v.trim_matches('"').to_string())
}

fn run_json(run: &Run, group: usize, keys: &[&String]) -> Value {
    let m = metrics::of(run, None);
    let metrics: serde_json::Map<String, Value> = Metric::ALL
        .iter()
        .filter_map(|&metric| Some((metric.name().to_string(), json!(round(metric.read(&m)?)))))
        .collect();
    let config: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), json!(value_text(run.config.get(*k)))))
        .collect();
    let done = run.steps_done();
    let total = run.summary.as_ref().map_or(0, |s| s.steps).max(done);
    json!({
        "id": run.id,
        "group": group,
        "status": run.status(),
        "steps_done": done,
        "steps": total,
        "started_at": run.summary.as_ref().map(|s| s.started_at.clone()),
        "config": config,
        "tags": run.tags,
        "metrics": metrics,
        "curves": curves(run, total),
    })
}

/// The run's curves, each at most [`MAX_POINTS`] long: training loss as block means and lr at
/// each block's last step (one shared step axis `x`), and the evaluations.
fn curves(run: &Run, total: u64) -> Value {
    let rows: Vec<StepRow> = run.steps(None);
    let stride = block_size(total.max(rows.len() as u64) as usize);
    let blocks = downsample(&rows, stride);
    let evals = &run.evals;
    let eval_stride = block_size(evals.len());
    let picked: Vec<_> = evals
        .iter()
        .enumerate()
        .filter(|(i, _)| (i + 1) % eval_stride == 0 || i + 1 == evals.len())
        .map(|(_, e)| e)
        .collect();
    let has_val = picked.iter().any(|e| e.val.is_some());
    let val = |f: fn((f64, f64)) -> f64| -> Value {
        if has_val {
            json!(picked
                .iter()
                .map(|e| e.val.map(|v| round(f(v))))
                .collect::<Vec<_>>())
        } else {
            Value::Null
        }
    };
    json!({
        "x": blocks.iter().map(|b| b.0).collect::<Vec<_>>(),
        "loss": blocks.iter().map(|b| round(b.1)).collect::<Vec<_>>(),
        "lr": blocks.iter().map(|b| round(b.2)).collect::<Vec<_>>(),
        "ex": picked.iter().map(|e| e.step).collect::<Vec<_>>(),
        "test_loss": picked.iter().map(|e| round(e.test_loss)).collect::<Vec<_>>(),
        "test_accuracy": picked.iter().map(|e| round(e.test_accuracy)).collect::<Vec<_>>(),
        "val_loss": val(|v| v.0),
        "val_accuracy": val(|v| v.1),
    })
}

/// Rows per block so that `n` rows make at most [`MAX_POINTS`] blocks. It depends on the run's
/// planned length, not on how far it got, so seed replicates in progress share their steps.
fn block_size(n: usize) -> usize {
    n.div_ceil(MAX_POINTS).max(1)
}

/// `(last step, mean loss, last lr)` of each block of `stride` rows; the last block may be
/// shorter, so the last logged step is always kept.
fn downsample(rows: &[StepRow], stride: usize) -> Vec<(u64, f64, f64)> {
    rows.chunks(stride)
        .map(|block| {
            let last = block[block.len() - 1];
            let mean = block.iter().map(|r| r.loss).sum::<f64>() / block.len() as f64;
            (last.step, mean, last.lr)
        })
        .collect()
}

/// Five significant digits: what a plot can show, and a third of the bytes of a full `f64`.
/// Non-finite values (a diverged run's loss) become `null`.
fn round(x: f64) -> Option<f64> {
    x.is_finite()
        .then(|| format!("{x:.4e}").parse().expect("formatted floats parse"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u64) -> Vec<StepRow> {
        (1..=n)
            .map(|step| StepRow {
                step,
                loss: step as f64,
                accuracy: 0.0,
                lr: 1.0 / step as f64,
                elapsed_s: None,
            })
            .collect()
    }

    #[test]
    fn downsampling_averages_blocks_and_keeps_the_last_step() {
        let r = rows(3001);
        let stride = block_size(3001);
        assert_eq!(stride, 7);
        let blocks = downsample(&r, stride);
        assert!(blocks.len() <= MAX_POINTS);
        assert_eq!(blocks[0], (7, 4.0, 1.0 / 7.0)); // mean of 1..=7
        let last = blocks[blocks.len() - 1];
        assert_eq!(last.0, 3001);
        assert_eq!(last.1, (2997.0 + 2998.0 + 2999.0 + 3000.0 + 3001.0) / 5.0);
        // Short logs are kept whole.
        assert_eq!(downsample(&rows(40), block_size(40)).len(), 40);
    }

    #[test]
    fn runs_in_progress_cut_at_the_same_steps_as_finished_replicates() {
        // A replicate halfway through (1500 of 3000 rows) uses the planned length's blocks.
        let stride = block_size(3000);
        let done = downsample(&rows(3000), stride);
        let half = downsample(&rows(1500), stride);
        assert_eq!(done[..half.len()], half[..]);
    }

    #[test]
    fn rounding_keeps_five_digits_and_drops_non_finite_values() {
        assert_eq!(round(0.123456789), Some(0.12346));
        assert_eq!(round(98.83), Some(98.83));
        assert_eq!(round(f64::NAN), None);
        assert_eq!(round(f64::INFINITY), None);
    }

    #[test]
    fn the_data_cannot_close_its_script_element() {
        let escaped = json!({"a": "</script>"})
            .to_string()
            .replace('<', "\\u003c");
        assert!(!escaped.contains("</script>"));
        let v: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(v["a"], "</script>");
    }
}
