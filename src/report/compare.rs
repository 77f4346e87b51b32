//! `runner compare`: differing config keys, then metrics; seed replicates grouped.

use super::metrics::{self, Metric, Metrics, ReadMetric};
use super::runs::Run;
use super::stats;
use super::table::{Cell, Table};
use std::collections::{BTreeMap, BTreeSet};

/// Runs whose configs are equal but for `seed`.
struct Group<'a> {
    runs: Vec<&'a Run>,
    metrics: Vec<Metrics>,
}

/// Keys whose values are not the same in every run (a missing key counts as a value).
pub fn differing_keys(runs: &[&Run]) -> Vec<String> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.config.keys()).collect();
    keys.into_iter()
        .filter(|k| {
            let values: BTreeSet<Option<&String>> = runs.iter().map(|r| r.config.get(*k)).collect();
            values.len() > 1
        })
        .cloned()
        .collect()
}

/// What `compare` shows.
#[derive(Debug, Clone)]
pub struct Options {
    /// Compare at this step (the last evaluation at or before it) instead of the end.
    pub at: Option<u64>,
    /// Add Welch's t-test.
    pub stats: bool,
    /// The metric that ranks the rows, and whether larger is better.
    pub sort: (Metric, bool),
    /// Config keys to add as columns and, written `-NAME`, columns to remove.
    pub columns: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            at: None,
            stats: false,
            sort: (Metric::TestAccuracy, true),
            columns: Vec::new(),
        }
    }
}

/// The comparison table, rows sorted by the metric `sort.0` (best first: largest when `sort.1`,
/// else smallest), and with `with_stats` a line with Welch's t-test on that metric between the
/// two best groups. Only complete runs are ranked: groups of unfinished runs (interrupted,
/// failed, pruned, ...) come after the complete ones, with their status, and are never marked
/// best.
pub fn compare(runs: &[Run], opts: &Options) -> Result<(Table, Option<Welch>), String> {
    let Options {
        at,
        stats: with_stats,
        sort,
        ref columns,
    } = *opts;
    let mut groups = group_by_config(runs, at);
    let (sort_col, _) = sort;
    rank_groups(&mut groups, sort);
    let (added, removed) = super::table::split_columns(columns);
    let config_cols = config_columns(runs, &groups, added)?;

    let mut table = Table::default();
    table.headers.push("run".into());
    table.headers.extend(config_cols.iter().cloned());
    table.headers.push("n".into());
    table.headers.push("status".into());
    let shown = shown_metrics(&groups);
    table
        .headers
        .extend(shown.iter().map(|m| m.column().to_string()));
    for g in &groups {
        let (row, extras) = group_row(g, &config_cols, &shown);
        table.rows.push(row);
        table.extras.push(extras);
    }
    table.json_keys = table.headers.clone();
    let first_metric = table.headers.len() - shown.len();
    for (key, metric) in table.json_keys[first_metric..].iter_mut().zip(&shown) {
        *key = metric.name().to_string();
    }
    // Rows are ranked only against complete rows on the same data.
    let datasets: Vec<Option<String>> = groups
        .iter()
        .map(|g| g.complete().then(|| g.runs[0].dataset()))
        .collect();
    mark_best(&mut table, &shown, &datasets);
    let complete: Vec<&Group> = groups.iter().filter(|g| g.complete()).collect();
    let stats_line = with_stats.then(|| welch_line(&complete, sort_col));
    table.remove_columns(&removed)?;
    Ok((table, stats_line))
}

/// Complete groups first, then best first by the sort metric (largest when `sort.1`; missing
/// values last); ties by run id, so output is stable.
fn rank_groups(groups: &mut [Group], sort: (Metric, bool)) {
    let (sort_col, maximize) = sort;
    groups.sort_by(|a, b| {
        let ord = match (a.mean(sort_col).map(|m| m.0), b.mean(sort_col).map(|m| m.0)) {
            (Some(x), Some(y)) if maximize => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        b.complete()
            .cmp(&a.complete())
            .then(ord)
            .then_with(|| a.runs[0].id.cmp(&b.runs[0].id))
    });
}

/// The config keys shown as columns: those that differ between the runs (not `seed` when runs
/// are grouped over seeds), then the `--columns` asked for.
fn config_columns(
    runs: &[Run],
    groups: &[Group],
    added: Vec<String>,
) -> Result<Vec<String>, String> {
    let all: Vec<&Run> = runs.iter().collect();
    let replicated = groups.iter().any(|g| g.runs.len() > 1);
    let mut config_cols: Vec<String> = differing_keys(&all)
        .into_iter()
        .filter(|k| !(replicated && k == "seed"))
        .collect();
    for key in added {
        if !runs.iter().any(|r| r.config.contains_key(&key)) {
            return Err(format!(
                "--columns {key}: not a config key of these runs (metrics are all shown)"
            ));
        }
        if !config_cols.contains(&key) {
            config_cols.push(key);
        }
    }
    Ok(config_cols)
}

/// One group's row (its first run's id and config values, count, status and mean metrics) and
/// its machine-only fields (the runs behind it, standard deviations).
fn group_row(
    g: &Group,
    config_cols: &[String],
    shown: &[Metric],
) -> (Vec<Cell>, serde_json::Map<String, serde_json::Value>) {
    let first = g.runs[0];
    let label = if g.runs.len() == 1 {
        first.id.clone()
    } else {
        format!("{} (+{})", first.id, g.runs.len() - 1)
    };
    let mut row = vec![Cell::text(label)];
    for key in config_cols {
        row.push(
            first
                .config
                .get(key)
                .map_or_else(Cell::empty, |v| Cell::toml_value(v)),
        );
    }
    row.push(Cell {
        text: g.runs.len().to_string(),
        json: g.runs.len().into(),
        best: false,
    });
    row.push(Cell::text(g.status()));
    let mut extras = serde_json::Map::new();
    extras.insert(
        "runs".into(),
        g.runs
            .iter()
            .map(|r| r.id.clone())
            .collect::<Vec<_>>()
            .into(),
    );
    for &col in shown {
        let value = g.mean(col);
        extras.insert(
            format!("{}_std", col.name()),
            value.and_then(|v| v.1).into(),
        );
        row.push(metric_cell(col, value));
    }
    (row, extras)
}

/// Runs grouped by their config without `seed` (complete runs apart from the others), with
/// their metrics at `at`.
fn group_by_config(runs: &[Run], at: Option<u64>) -> Vec<Group<'_>> {
    type Key = (Vec<(String, String)>, bool);
    let mut by_config: BTreeMap<Key, Group> = BTreeMap::new();
    for run in runs {
        let g = by_config
            .entry((run.config_without_seed(), is_complete(run)))
            .or_insert_with(|| Group {
                runs: Vec::new(),
                metrics: Vec::new(),
            });
        g.runs.push(run);
        g.metrics.push(metrics::of(run, at));
    }
    by_config.into_values().collect()
}

fn is_complete(run: &Run) -> bool {
    run.summary
        .as_ref()
        .is_some_and(|s| s.status == crate::rundir::Status::Complete)
}

impl Group<'_> {
    /// Whether its runs are complete (a group is all complete or all not).
    fn complete(&self) -> bool {
        self.runs.iter().all(|r| is_complete(r))
    }

    /// The status words of its runs, each once: `complete`, or `interrupted/failed`.
    fn status(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        for r in &self.runs {
            let w = r.status();
            if !words.contains(&w) {
                words.push(w);
            }
        }
        words.join("/")
    }

    /// Mean and sample standard deviation of a metric over the group's runs that have it.
    fn mean(&self, col: Metric) -> Option<(f64, Option<f64>)> {
        stats::mean_std(
            &self
                .metrics
                .iter()
                .filter_map(|m| col.read(m))
                .collect::<Vec<_>>(),
        )
    }
}

/// The metric columns: every metric but those that only some runs have and none of these do.
fn shown_metrics(groups: &[Group]) -> Vec<Metric> {
    Metric::ALL
        .into_iter()
        .filter(|&m| !m.optional() || groups.iter().any(|g| g.mean(m).is_some()))
        .collect()
}

/// Marks the best value of each metric column (the table's last columns, `shown`) among the
/// rows on the same dataset (`datasets`, one per row; `None`: a row not ranked), given two such
/// rows or more.
fn mark_best(table: &mut Table, shown: &[Metric], datasets: &[Option<String>]) {
    let first_metric = table.headers.len() - shown.len();
    for (i, &col) in shown.iter().enumerate() {
        let higher_better = col.higher_is_better();
        if col == Metric::BestTestStep {
            continue;
        }
        let c = first_metric + i;
        let values: Vec<Option<f64>> = table.rows.iter().map(|r| r[c].json.as_f64()).collect();
        // Rows are ranked only against rows on the same data.
        for dataset in datasets.iter().flatten() {
            let same: Vec<usize> = (0..values.len())
                .filter(|&r| datasets[r].as_ref() == Some(dataset))
                .collect();
            if same.len() < 2 {
                continue;
            }
            let best = same.iter().filter_map(|&r| values[r]).reduce(|a, b| {
                if (b > a) == higher_better {
                    b
                } else {
                    a
                }
            });
            for &r in &same {
                table.rows[r][c].best = values[r].is_some() && values[r] == best;
            }
        }
    }
}

fn metric_cell(col: Metric, value: Option<(f64, Option<f64>)>) -> Cell {
    let Some((mean, std)) = value else {
        return Cell::empty();
    };
    let (scale, decimals, suffix) = col.format();
    let mut cell = Cell::number(Some(mean), decimals);
    cell.text = match std {
        Some(s) if col != Metric::BestTestStep => format!(
            "{:.decimals$}{suffix} ± {:.decimals$}",
            mean * scale,
            s * scale
        ),
        _ => format!("{:.decimals$}{suffix}", mean * scale),
    };
    cell
}

/// Welch's t-test between the two best groups of seed replicates: the line people read, and the
/// p-value when there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Welch {
    pub summary: String,
    pub p: Option<f64>,
}

/// Welch's t-test on `metric` between the first two groups (the best, as sorted) with two
/// values or more each.
fn welch_line(groups: &[&Group], metric: Metric) -> Welch {
    let accs = |g: &Group| {
        g.metrics
            .iter()
            .filter_map(|m| metric.read(m))
            .collect::<Vec<_>>()
    };
    let replicated: Vec<&&Group> = groups.iter().filter(|g| accs(g).len() >= 2).collect();
    match replicated.as_slice() {
        [a, b, ..] => match stats::welch_p(&accs(a), &accs(b)) {
            Some(p) => Welch {
                summary: format!(
                    "Welch t-test on {}, {} (n={}) vs {} (n={}): p = {p:.4}",
                    metric.name(),
                    a.runs[0].id,
                    a.runs.len(),
                    b.runs[0].id,
                    b.runs.len()
                ),
                p: Some(p),
            },
            None => Welch {
                summary: "Welch t-test: the two best groups have no variance; no p-value".into(),
                p: None,
            },
        },
        _ => Welch {
            summary: "Welch t-test: needs two groups of seed replicates with at least 2 runs each"
                .into(),
            p: None,
        },
    }
}
