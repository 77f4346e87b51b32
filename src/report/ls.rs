//! `runner ls`: one line per run, filtered and sorted.

use super::metrics::{self, Metric, ReadMetric};
use super::runs::{glob_match, Run};
use super::table::{Cell, Table};

/// A `--where KEY=VALUE` filter on a config key.
#[derive(Debug, Clone)]
pub struct Filter {
    pub key: String,
    pub value: String,
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--where {s:?}: expected KEY=VALUE, e.g. optimizer.lr=1e-4"))?;
        Ok(Filter {
            key: k.trim().to_string(),
            value: v.trim().to_string(),
        })
    }
}

/// Values are equal as numbers when both parse as numbers (`1e-4` = `0.0001`), else as text.
pub fn values_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_matches('"'), b.trim_matches('"'));
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

/// What `--sort` accepts besides config keys: metrics (read from the summary), steps done and
/// the start time.
pub const SORT_METRICS: &[&str] = &[
    "test_acc",
    "best_acc",
    "test_loss",
    "ms_per_step",
    "steps",
    "started",
];

pub fn list(
    runs: &[Run],
    globs: &[String],
    filters: &[Filter],
    sort: Option<&str>,
    desc: bool,
) -> Result<Table, String> {
    for f in filters {
        if !runs.iter().any(|r| r.config.contains_key(&f.key)) && !runs.is_empty() {
            return Err(format!(
                "--where {}: no run has config key '{}'",
                f.key, f.key
            ));
        }
    }
    let mut chosen: Vec<&Run> = runs
        .iter()
        .filter(|r| {
            globs.is_empty()
                || globs
                    .iter()
                    .any(|g| glob_match(g, &r.id) || glob_match(g, &r.name))
        })
        .filter(|r| {
            filters.iter().all(|f| {
                r.config
                    .get(&f.key)
                    .is_some_and(|v| values_equal(v, &f.value))
            })
        })
        .collect();
    if let Some(key) = sort {
        if !SORT_METRICS.contains(&key) && !runs.iter().any(|r| r.config.contains_key(key)) {
            return Err(format!(
                "--sort {key}: not a config key of these runs nor one of {}",
                SORT_METRICS.join(", ")
            ));
        }
        let sort_value = |r: &Run| -> (Option<f64>, String) {
            let s = r.summary.as_ref();
            let num = match (key, Metric::parse(key)) {
                ("steps", _) => s.map(|s| s.steps_done as f64),
                ("started", _) => None,
                (_, Some(m)) => s.and_then(|s| m.read(&metrics::recorded(s))),
                _ => r.config.get(key).and_then(|v| v.parse().ok()),
            };
            let text = match key {
                "started" => s.map(|s| s.started_at.clone()).unwrap_or_default(),
                _ => r.config.get(key).cloned().unwrap_or_default(),
            };
            (num, text)
        };
        chosen.sort_by(|a, b| {
            let (va, vb) = (sort_value(a), sort_value(b));
            let ord = match (va.0, vb.0) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => va.1.cmp(&vb.1),
            };
            if desc { ord.reverse() } else { ord }.then_with(|| a.id.cmp(&b.id))
        });
    }
    let mut table = Table {
        headers: [
            "run", "name", "hash", "status", "steps", "test_acc", "ms/step", "started",
        ]
        .map(String::from)
        .to_vec(),
        ..Table::default()
    };
    for r in chosen {
        let s = r.summary.as_ref();
        let m = metrics::of(r, None);
        let steps = s.map_or_else(Cell::empty, |s| {
            Cell::text(format!("{}/{}", s.steps_done, s.steps))
        });
        let mut acc = Cell::number(m.test_acc, 4);
        if let Some(a) = m.test_acc {
            acc.text = format!("{:.2}%", a * 100.0);
        }
        table.rows.push(vec![
            Cell::text(&r.id),
            Cell::text(&r.name),
            Cell::text(r.hash()),
            Cell::text(r.status()),
            steps,
            acc,
            Cell::number(m.ms_per_step, 2),
            s.map_or_else(Cell::empty, |s| Cell::text(&s.started_at)),
        ]);
    }
    Ok(table)
}
