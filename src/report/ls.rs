//! `runner ls`: one line per run, filtered and sorted.

use super::metrics::{self, Metric, ReadMetric};
use super::runs::Run;
use super::table::{Cell, Table};

/// A `--where KEY=VALUE` filter on a config key.
#[derive(Debug, Clone)]
pub struct Filter {
    pub key: String,
    pub op: Op,
    pub value: String,
}

/// How a `--where` filter compares: `=`, `!=`, and on numbers `<`, `<=`, `>`, `>=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    /// Longest first, so that `<=` is not read as `<`.
    const SPELLINGS: [(&'static str, Op); 6] = [
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("=", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    fn as_str(self) -> &'static str {
        Op::SPELLINGS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("=", |(s, _)| s)
    }
}

impl Filter {
    /// Whether a run's value (`None`: the run lacks the key) passes. Orderings need numbers on
    /// both sides; a run without the key passes only `!=`.
    pub fn accepts(&self, value: Option<&str>) -> bool {
        let Some(v) = value else {
            return self.op == Op::Ne;
        };
        let number = |s: &str| s.trim_matches('"').parse::<f64>().ok();
        match self.op {
            Op::Eq => values_equal(v, &self.value),
            Op::Ne => !values_equal(v, &self.value),
            op => match (number(v), number(&self.value)) {
                (Some(x), Some(y)) => match op {
                    Op::Lt => x < y,
                    Op::Le => x <= y,
                    Op::Gt => x > y,
                    _ => x >= y,
                },
                _ => false,
            },
        }
    }
}

impl Query {
    /// What the patterns and filters ask for, as a message says it: `'mlp-*' --where seed=1`.
    pub fn describe(&self) -> String {
        self.globs
            .iter()
            .map(|g| format!("'{g}'"))
            .chain(
                self.filters
                    .iter()
                    .map(|f| format!("--where {}{}{}", f.key, f.op.as_str(), f.value)),
            )
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl std::str::FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "--where {s:?}: expected KEY=VALUE, KEY!=VALUE or, on numbers, KEY<VALUE, \
                 KEY<=VALUE, KEY>VALUE, KEY>=VALUE (e.g. 'optimizer.lr<0.01', tag.paper=fig3)"
            )
        };
        let at = s.find(['=', '!', '<', '>']).ok_or_else(expected)?;
        let (key, rest) = s.split_at(at);
        let (spelling, op) = Op::SPELLINGS
            .iter()
            .find(|(sp, _)| rest.starts_with(sp))
            .ok_or_else(expected)?;
        let value = rest[spelling.len()..].trim();
        if key.trim().is_empty() || value.is_empty() {
            return Err(expected());
        }
        if !matches!(op, Op::Eq | Op::Ne) && value.trim_matches('"').parse::<f64>().is_err() {
            return Err(format!(
                "--where {s:?}: {spelling} compares numbers, and {value:?} is not one"
            ));
        }
        Ok(Filter {
            key: key.trim().to_string(),
            op: *op,
            value: value.to_string(),
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

/// The `ls` table: runs matching `globs` (over ids and names) and `filters`, sorted by `sort`
/// (default: start time), with the config keys that differ among them and the `columns` asked
/// for (config keys or metrics). Errors: a filter, sort key or column no run has.
pub fn list(runs: &[Run], q: &Query) -> Result<Table, String> {
    for f in q.filters.iter().filter(|f| tag_of(&f.key).is_none()) {
        if !runs.iter().any(|r| r.config.contains_key(&f.key)) && !runs.is_empty() {
            return Err(format!(
                "--where {}: no run has config key '{}'",
                f.key, f.key
            ));
        }
    }
    let mut chosen = matching(runs, q);
    sort_runs(
        &mut chosen,
        q.sort.as_deref().unwrap_or("started"),
        q.desc,
        runs,
    )?;
    let (added, removed) = super::table::split_columns(&q.columns);
    let (config_cols, metric_cols) = columns(&chosen, &added)?;
    let mut table = table(&chosen, &config_cols, &metric_cols);
    table.remove_columns(&removed)?;
    Ok(table)
}

/// What `ls` lists and how.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub globs: Vec<String>,
    pub filters: Vec<Filter>,
    pub sort: Option<String>,
    pub desc: bool,
    /// Columns to add (config keys or metric names) and, written `-NAME`, to remove.
    pub columns: Vec<String>,
}

fn matching<'a>(runs: &'a [Run], q: &Query) -> Vec<&'a Run> {
    runs.iter()
        .filter(|r| q.globs.is_empty() || q.globs.iter().any(|g| super::runs::names(g, r)))
        .filter(|r| {
            q.filters.iter().all(|f| {
                let value = match tag_of(&f.key) {
                    Some(tag) => r.tags.get(tag),
                    None => r.config.get(&f.key),
                };
                f.accepts(value.map(String::as_str))
            })
        })
        .collect()
}

/// The tag a `--where tag.KEY=VALUE` filter names.
fn tag_of(key: &str) -> Option<&str> {
    key.strip_prefix("tag.")
}

fn sort_runs(chosen: &mut [&Run], key: &str, desc: bool, runs: &[Run]) -> Result<(), String> {
    if !SORT_METRICS.contains(&key) && !runs.iter().any(|r| r.config.contains_key(key)) {
        return Err(format!(
            "--sort {key}: not a config key of these runs nor one of {}",
            SORT_METRICS.join(", ")
        ));
    }
    let sort_value = |r: &Run| -> (Option<f64>, String) {
        let s = r.summary.as_ref();
        let num = match (key, Metric::parse(key)) {
            ("steps", _) => Some(r.steps_done() as f64),
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
        // Runs without the value come last in either direction.
        let direction = |o: std::cmp::Ordering| if desc { o.reverse() } else { o };
        let ord = match (va.0, vb.0) {
            (Some(x), Some(y)) => direction(x.total_cmp(&y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => direction(va.1.cmp(&vb.1)),
        };
        ord.then_with(|| a.id.cmp(&b.id))
    });
    Ok(())
}

/// The config columns (keys that differ among the runs, then the config keys asked for) and the
/// extra metric columns.
fn columns(chosen: &[&Run], asked: &[String]) -> Result<(Vec<String>, Vec<Metric>), String> {
    let mut config: Vec<String> = super::compare::differing_keys(chosen)
        .into_iter()
        .filter(|k| k != "name")
        .collect();
    let mut metrics = Vec::new();
    for col in asked {
        if chosen.iter().any(|r| r.config.contains_key(col)) {
            if !config.contains(col) {
                config.push(col.clone());
            }
        } else if let Some(m) = Metric::parse(col) {
            metrics.push(m);
        } else {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            return Err(format!(
                "--columns {col}: not a config key of these runs nor a metric ({})",
                names.join(", ")
            ));
        }
    }
    Ok((config, metrics))
}

fn table(chosen: &[&Run], config_cols: &[String], metric_cols: &[Metric]) -> Table {
    let mut headers: Vec<String> = ["run", "name", "hash", "status", "steps"]
        .map(String::from)
        .to_vec();
    headers.extend(config_cols.iter().cloned());
    headers.extend(["test_acc", "ms/step"].map(String::from));
    headers.extend(metric_cols.iter().map(|m| m.column().to_string()));
    headers.push("started".into());
    let tagged = chosen.iter().any(|r| !r.tags.is_empty());
    if tagged {
        headers.push("tags".into());
    }
    // JSON names: those of `--json` objects.
    let json_keys = headers
        .iter()
        .map(|h| match h.as_str() {
            "steps" => "steps_done".to_string(),
            "test_acc" => "test_accuracy".to_string(),
            "ms/step" => "ms_per_step".to_string(),
            "started" => "started_at".to_string(),
            other => Metric::parse(other).map_or(other.to_string(), |m| m.name().to_string()),
        })
        .collect();
    let mut table = Table {
        headers,
        json_keys,
        ..Table::default()
    };
    for r in chosen {
        let s = r.summary.as_ref();
        let m = metrics::of(r, None);
        let steps = s.map_or_else(Cell::empty, |s| Cell {
            text: format!("{}/{}", r.steps_done(), s.steps),
            json: r.steps_done().into(),
            best: false,
        });
        let mut row = vec![
            Cell::text(&r.id),
            Cell::text(&r.name),
            Cell::text(r.hash()),
            Cell::text(r.status()),
            steps,
        ];
        for key in config_cols {
            row.push(
                r.config
                    .get(key)
                    .map_or_else(Cell::empty, |v| Cell::toml_value(v)),
            );
        }
        row.push(percent(m.test_acc));
        row.push(Cell::number(m.ms_per_step, 2));
        for &metric in metric_cols {
            let (scale, decimals, unit) = metric.format();
            let mut cell = Cell::number(metric.read(&m), decimals);
            if let Some(v) = metric.read(&m) {
                cell.text = format!("{:.*}{unit}", decimals, v * scale);
            }
            row.push(cell);
        }
        row.push(s.map_or_else(Cell::empty, |s| Cell::text(&s.started_at)));
        if tagged {
            let tags: Vec<String> = r.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            row.push(Cell::text(tags.join(",")));
        }
        table.rows.push(row);
    }
    table
}

fn percent(x: Option<f64>) -> Cell {
    let mut cell = Cell::number(x, 4);
    if let Some(a) = x {
        cell.text = format!("{:.2}%", a * 100.0);
    }
    cell
}
