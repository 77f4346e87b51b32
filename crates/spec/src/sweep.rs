//! Sweep files: parsing, validation against the experiment schema, and expansion into trials.

use crate::config::{self, schema, Override};
use crate::metric::Metric;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

const TOP_KEYS: &[&str] = &[
    "name",
    "base",
    "metric",
    "goal",
    "seeds",
    "set",
    "grid",
    "zip",
    "random",
    "tpe",
    "early_stop",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub name: String,
    /// The base experiment, resolved against the sweep file's directory.
    pub base: PathBuf,
    pub metric: Metric,
    /// `true` to maximise the metric.
    pub maximize: bool,
    pub seeds: Option<Vec<i64>>,
    /// `[set]`: overrides of every trial (`"~KEY" = true` removes a key of the base).
    pub set: Vec<Override>,
    pub grid: Vec<(String, Vec<Value>)>,
    pub zip: Vec<(String, Vec<Value>)>,
    pub random: Option<Random>,
    /// `[tpe]`: trials proposed one at a time from the finished ones (then the sweep has no
    /// other axes).
    pub tpe: Option<Tpe>,
    /// `[early_stop]`: the rule trials apply against each other.
    pub early_stop: Option<crate::rule::Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Random {
    pub trials: usize,
    pub seed: u64,
    pub axes: Vec<(String, Distribution)>,
}

/// `[tpe]`: the `[random]` distributions searched by the Tree-structured Parzen Estimator.
#[derive(Clone, PartialEq)]
pub struct Tpe {
    pub trials: usize,
    /// Trials drawn at random before the estimator is used.
    pub startup: usize,
    pub seed: u64,
    pub axes: Vec<(String, Distribution)>,
    pub options: TpeOptions,
}

/// How `[tpe]` estimates; the defaults are those bench/tpe_vs_optuna.py chose (and Optuna 5's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeOptions {
    /// One estimator over all axes (kernels are products over the axes), not one per axis.
    pub multivariate: bool,
    /// Trials still running count as bad ones when the next is proposed.
    pub constant_liar: bool,
    /// Draws from the good trials' estimator per proposal (Optuna's `n_ei_candidates`).
    pub candidates: usize,
    /// Trial `i` trains at the base experiment's seed plus `i`, so the search does not rank
    /// every configuration on one draw of weights, batch order, dropout masks and held-out
    /// images. Off: every trial trains at the base's seed.
    pub seed_per_trial: bool,
}

impl Default for TpeOptions {
    fn default() -> TpeOptions {
        TpeOptions {
            multivariate: true,
            constant_liar: true,
            candidates: 24,
            seed_per_trial: false,
        }
    }
}

/// What names the sweep directory: the form `{:?}` gave before `options` existed, then the
/// options that differ from their defaults, so a sweep file that sets none keeps its journal.
impl std::fmt::Debug for Tpe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tpe {{ trials: {:?}, startup: {:?}, seed: {:?}, axes: {:?} }}",
            self.trials, self.startup, self.seed, self.axes
        )?;
        let (o, d) = (self.options, TpeOptions::default());
        if o.multivariate != d.multivariate {
            write!(f, " multivariate: {}", o.multivariate)?;
        }
        if o.constant_liar != d.constant_liar {
            write!(f, " constant_liar: {}", o.constant_liar)?;
        }
        if o.candidates != d.candidates {
            write!(f, " candidates: {}", o.candidates)?;
        }
        if o.seed_per_trial != d.seed_per_trial {
            write!(f, " seed_per_trial: {}", o.seed_per_trial)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Uniform(f64, f64),
    LogUniform(f64, f64),
    /// Integers in `lo..=hi`.
    IntRange(i64, i64),
    Choice(Vec<Value>),
}

/// Parses and validates a sweep file. Errors name the file and the key.
pub fn load(path: &Path) -> Result<Sweep, String> {
    let text = crate::config::read_bounded(path)
        .map_err(|e| format!("cannot read sweep file {}: {e}", path.display()))?;
    let sweep = parse(&text, path)?;
    if !sweep.base.is_file() {
        return Err(format!(
            "{}: key 'base': the experiment file {} does not exist (the path is relative to \
             the sweep file's directory)",
            path.display(),
            sweep.base.display()
        ));
    }
    Ok(sweep)
}

/// The text of a sweep file, checked: `path` names it in errors and anchors `base`.
pub fn parse(text: &str, path: &Path) -> Result<Sweep, String> {
    let origin = path.display().to_string();
    let err = |msg: String| format!("{origin}: {msg}");
    let table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(format!("invalid TOML: {}", e.to_string().trim_end())))?;
    for key in table.keys() {
        if !TOP_KEYS.contains(&key.as_str()) {
            let hint = schema::did_you_mean(key, TOP_KEYS.iter().copied())
                .map_or(String::new(), |s| format!(" (did you mean '{s}'?)"));
            return Err(err(format!(
                "unknown key '{key}'{hint}; a sweep file takes: {}",
                TOP_KEYS.join(", ")
            )));
        }
    }
    let head = Header::parse(&table, &err)?;
    let sub = |key: &str| -> Result<Table, String> {
        match table.get(key) {
            None => Ok(Table::new()),
            Some(Value::Table(t)) => Ok(t.clone()),
            Some(v) => Err(err(format!(
                "key '{key}': expected a table [{key}], found {v}"
            ))),
        }
    };
    let mut set = Vec::new();
    for (k, mut v) in sub("set")? {
        if let Some(key) = k.strip_prefix('~') {
            // In [set], only `true` means something.
            match removal(key, &v) {
                Ok(true) => set.extend(axis_override(&k, &v)),
                Ok(false) => {
                    return Err(err(format!(
                        "[set] key '{k}': a '~' key removes '{key}' from the base experiment; \
                         write \"~{key}\" = true"
                    )))
                }
                Err(m) => return Err(err(format!("[set] key '{k}': {m}"))),
            }
            continue;
        }
        if let Some(hint) = unquoted_dotted_key("set", &k, &v) {
            return Err(err(hint));
        }
        config::check_key_value(&k, &mut v).map_err(|m| err(format!("[set] {m}")))?;
        set.push(Override::set(&k, v));
    }
    let grid = parse_axes("grid", sub("grid")?, &err)?;
    let zip = parse_axes("zip", sub("zip")?, &err)?;
    if let Some((k, first)) = zip.first() {
        if let Some((k2, other)) = zip.iter().find(|(_, v)| v.len() != first.len()) {
            return Err(err(format!(
                "[zip] lists advance together and must have equal lengths: '{k}' has {}, '{k2}' has {}",
                first.len(),
                other.len()
            )));
        }
    }
    let random = parse_random(sub("random")?, &err)?;
    let tpe = parse_tpe(sub("tpe")?, &err)?;
    let early_stop = parse_early_stop(sub("early_stop")?, &err)?;
    let sweep = Sweep {
        early_stop,
        name: head.name,
        base: path.parent().unwrap_or(Path::new(".")).join(head.base),
        metric: head.metric,
        maximize: head.maximize,
        seeds: head.seeds,
        set,
        grid,
        zip,
        random,
        tpe,
    };
    if sweep.tpe.is_some()
        && (!sweep.grid.is_empty()
            || !sweep.zip.is_empty()
            || sweep.random.is_some()
            || sweep.seeds.is_some())
    {
        return Err(err(
            "[tpe] proposes every trial itself: it cannot be combined with [grid], [zip], \
             [random] or seeds"
                .into(),
        ));
    }
    if sweep.grid.is_empty()
        && sweep.zip.is_empty()
        && sweep.random.is_none()
        && sweep.tpe.is_none()
        && sweep.seeds.is_none()
    {
        return Err(err(
            "the sweep has no axes: add [grid], [zip], [random], [tpe] or seeds".into(),
        ));
    }
    let (count, how) = trial_count(&sweep);
    if count > MAX_TRIALS as u128 {
        return Err(err(format!(
            "the sweep has {count} trials ({how}); at most {MAX_TRIALS}: split it into smaller \
             sweeps"
        )));
    }
    Ok(sweep)
}

/// The most trials a sweep may have. Each trial is a run directory, a manifest line and, on
/// Slurm, an array task; a larger count is a typo far more often than a plan, and expanding it
/// would take memory in proportion.
pub const MAX_TRIALS: usize = 100_000;

/// How many trials a sweep has, counted without expanding them (saturating), and the product
/// that gives it (`grid 1000 x 1000 x zip 3 x seeds 2`).
pub fn trial_count(sweep: &Sweep) -> (u128, String) {
    let mut factors: Vec<(String, usize)> = sweep
        .grid
        .iter()
        .map(|(k, v)| (format!("grid '{k}' {}", v.len()), v.len()))
        .collect();
    if let Some((_, first)) = sweep.zip.first() {
        factors.push((format!("zip {}", first.len()), first.len()));
    }
    if let Some(r) = &sweep.random {
        factors.push((format!("random {}", r.trials), r.trials));
    }
    if let Some(t) = &sweep.tpe {
        factors.push((format!("tpe {}", t.trials), t.trials));
    }
    if let Some(seeds) = &sweep.seeds {
        factors.push((format!("seeds {}", seeds.len()), seeds.len()));
    }
    let count = factors
        .iter()
        .fold(1u128, |n, (_, f)| n.saturating_mul(*f as u128));
    let how = factors
        .into_iter()
        .map(|(what, _)| what)
        .collect::<Vec<_>>()
        .join(" x ");
    (count, how)
}

/// A sweep file's top-level values.
struct Header {
    name: String,
    /// As written: relative to the sweep file's directory.
    base: String,
    metric: Metric,
    maximize: bool,
    seeds: Option<Vec<i64>>,
}

impl Header {
    fn parse(table: &Table, err: &dyn Fn(String) -> String) -> Result<Header, String> {
        let string = |key: &str| -> Result<Option<String>, String> {
            match table.get(key) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v) => Err(err(format!("key '{key}': expected a string, found {v}"))),
            }
        };
        let name = string("name")?
            .ok_or_else(|| err("key 'name' is missing; it names the sweep directory".into()))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.starts_with('.')
        {
            return Err(err(format!(
                "key 'name': {name:?} cannot name a directory; use A-Z a-z 0-9 - _ ."
            )));
        }
        let base = string("base")?.ok_or_else(|| {
            err("key 'base' is missing: the experiment file the trials start from".into())
        })?;
        let metric_name = string("metric")?.unwrap_or_else(|| Metric::TestAccuracy.name().into());
        let metric = Metric::RANKABLE
            .into_iter()
            .find(|m| m.name() == metric_name)
            .ok_or_else(|| {
                let names: Vec<&str> = Metric::RANKABLE.iter().map(|m| m.name()).collect();
                err(format!(
                    "key 'metric': \"{metric_name}\" is not one of {}",
                    schema::quoted_list(&names)
                ))
            })?;
        let maximize = match string("goal")?.as_deref() {
            None => metric.higher_is_better(),
            Some("max") => true,
            Some("min") => false,
            Some(other) => {
                return Err(err(format!(
                    "key 'goal': \"{other}\" is not one of \"max\", \"min\""
                )))
            }
        };
        let seeds = match table.get("seeds") {
            None => None,
            Some(Value::Array(items))
                if !items.is_empty()
                    && items.iter().all(|v| v.as_integer().is_some_and(|i| i >= 0)) =>
            {
                Some(items.iter().filter_map(Value::as_integer).collect())
            }
            Some(v) => {
                return Err(err(format!(
                    "key 'seeds': expected a non-empty list of integers >= 0, found {v}"
                )))
            }
        };
        Ok(Header {
            name,
            base,
            metric,
            maximize,
            seeds,
        })
    }
}

/// `"~KEY" = true` in `[set]`: every trial removes KEY from the base (as `--set ~KEY` does); in
/// a `[grid]` or `[zip]` list, `true` removes it in that trial and `false` keeps it. Checks the
/// key and the value, and says whether it removes.
fn removal(key: &str, v: &Value) -> Result<bool, String> {
    if schema::find(key).is_none() {
        return Err(format!(
            "unknown key '{key}'{}",
            config::unknown_key_hint(key)
        ));
    }
    if !matches!(v, Value::Boolean(_)) {
        return Err(format!(
            "a '~' key removes '{key}' from the base experiment; write \"~{key}\" = true"
        ));
    }
    Ok(*v == Value::Boolean(true))
}

/// TOML reads an unquoted `optimizer.lr = ...` as a table `optimizer` holding `lr`: the message
/// for such a key says to quote it, naming the dotted key as written.
fn unquoted_dotted_key(section: &str, k: &str, v: &Value) -> Option<String> {
    let Value::Table(inner) = v else {
        return None;
    };
    let (leaf, value) = inner.iter().next()?;
    let dotted = match value {
        Value::Table(_) => format!("{k}.{leaf}..."),
        _ => format!("{k}.{leaf}"),
    };
    Some(format!(
        "[{section}] key '{k}' is a table: TOML reads an unquoted dotted key as nested tables; \
         quote it: \"{dotted}\" = {}",
        match value {
            Value::Table(_) => "...".to_string(),
            other => other.to_string(),
        }
    ))
}

/// `[grid]` or `[zip]`: non-empty lists of values, each checked against the schema.
fn parse_axes(
    section: &str,
    t: Table,
    err: &dyn Fn(String) -> String,
) -> Result<Vec<(String, Vec<Value>)>, String> {
    let mut out = Vec::new();
    for (k, v) in t {
        if let Some(hint) = unquoted_dotted_key(section, &k, &v) {
            return Err(err(hint));
        }
        let Value::Array(mut items) = v else {
            return Err(err(format!(
                "[{section}] key '{k}': expected a list of values, found {v}"
            )));
        };
        if items.is_empty() {
            return Err(err(format!("[{section}] key '{k}': the list is empty")));
        }
        if let Some(key) = k.strip_prefix('~') {
            for item in &items {
                removal(key, item).map_err(|m| {
                    err(format!(
                        "[{section}] key '{k}': {m}, or false to keep it (e.g. [true, false])"
                    ))
                })?;
            }
            out.push((k, items));
            continue;
        }
        for item in &mut items {
            config::check_key_value(&k, item).map_err(|m| err(format!("[{section}] {m}")))?;
        }
        out.push((k, items));
    }
    Ok(out)
}

fn parse_early_stop(
    mut t: Table,
    err: &dyn Fn(String) -> String,
) -> Result<Option<crate::rule::Rule>, String> {
    use crate::rule::Rule;
    if t.is_empty() {
        return Ok(None);
    }
    let kind = match t.remove("kind") {
        Some(Value::String(k)) => k,
        other => {
            return Err(err(format!(
                "[early_stop] key 'kind': expected \"median\" or \"asha\", found {}",
                other.map_or("nothing".into(), |v| v.to_string())
            )))
        }
    };
    let mut int = |key: &str, default: Option<i64>, min: i64| -> Result<i64, String> {
        match (t.remove(key), default) {
            (None, Some(d)) => Ok(d),
            (None, None) => Err(err(format!(
                "[early_stop] key '{key}' is required for kind = \"{kind}\""
            ))),
            (Some(Value::Integer(n)), _) if n >= min => Ok(n),
            (Some(v), _) => Err(err(format!(
                "[early_stop] key '{key}': expected an integer >= {min}, found {v}"
            ))),
        }
    };
    let (rule, keys) = match kind.as_str() {
        "median" => (
            Rule::Median {
                min_trials: int("min_trials", Some(3), 1)? as usize,
            },
            "kind, min_trials",
        ),
        "asha" => {
            let min_steps = int("min_steps", None, 1)? as u64;
            let eta = int("reduction_factor", Some(3), 2)? as u64;
            (
                Rule::Asha { min_steps, eta },
                "kind, min_steps, reduction_factor",
            )
        }
        other => {
            return Err(err(format!(
                "[early_stop] key 'kind': \"{other}\" is not one of \"median\", \"asha\""
            )))
        }
    };
    if let Some(k) = t.keys().next() {
        return Err(err(format!(
            "[early_stop] unknown key '{k}'; {kind} takes: {keys}"
        )));
    }
    Ok(Some(rule))
}

/// `[tpe]`: as `[random]`, plus `startup` (default 10, Optuna's `n_startup_trials`) and the
/// estimator's options (`multivariate`, `constant_liar`, `candidates`) and `seed_per_trial`.
fn parse_tpe(mut t: Table, err: &dyn Fn(String) -> String) -> Result<Option<Tpe>, String> {
    if t.is_empty() {
        return Ok(None);
    }
    let int = |t: &mut Table, key: &str, default: usize, min: i64| match t.remove(key) {
        None => Ok(default),
        Some(Value::Integer(n)) if n >= min => Ok(n as usize),
        Some(v) => Err(err(format!(
            "[tpe] key '{key}': expected an integer >= {min}, found {v}"
        ))),
    };
    let flag = |t: &mut Table, key: &str, default: bool| match t.remove(key) {
        None => Ok(default),
        Some(Value::Boolean(b)) => Ok(b),
        Some(v) => Err(err(format!(
            "[tpe] key '{key}': expected true or false, found {v}"
        ))),
    };
    let d = TpeOptions::default();
    let startup = int(&mut t, "startup", 10, 0)?;
    let options = TpeOptions {
        multivariate: flag(&mut t, "multivariate", d.multivariate)?,
        constant_liar: flag(&mut t, "constant_liar", d.constant_liar)?,
        candidates: int(&mut t, "candidates", d.candidates, 1)?,
        seed_per_trial: flag(&mut t, "seed_per_trial", d.seed_per_trial)?,
    };
    let r = parse_search("tpe", t, err)?.expect("not empty");
    Ok(Some(Tpe {
        trials: r.trials,
        startup,
        seed: r.seed,
        axes: r.axes,
        options,
    }))
}

fn parse_random(t: Table, err: &dyn Fn(String) -> String) -> Result<Option<Random>, String> {
    parse_search("random", t, err)
}

/// `[random]` or `[tpe]`: `trials`, `seed` and distributions.
fn parse_search(
    section: &str,
    mut t: Table,
    err: &dyn Fn(String) -> String,
) -> Result<Option<Random>, String> {
    if t.is_empty() {
        return Ok(None);
    }
    let trials = match t.remove("trials") {
        Some(Value::Integer(n)) if n >= 1 => n as usize,
        other => {
            return Err(err(format!(
                "[{section}] key 'trials': expected an integer >= 1, found {}",
                other.map_or("nothing".into(), |v| v.to_string())
            )))
        }
    };
    let seed = match t.remove("seed") {
        None => 0,
        Some(Value::Integer(n)) if n >= 0 => n as u64,
        Some(v) => {
            return Err(err(format!(
                "[{section}] key 'seed': expected an integer >= 0, found {v}"
            )))
        }
    };
    let mut axes = Vec::new();
    for (k, v) in t {
        let dist = distribution(&k, v).map_err(|m| err(format!("[{section}] key '{k}': {m}")))?;
        if shapes_the_network(&k) && !matches!(dist, Distribution::Choice(_)) {
            return Err(err(format!(
                "[{section}] key '{k}': a model shape sampled from a range can be a network that is \
                 not compiled in (networks are compiled at build time from the values sweep files \
                 list); list the values with {{ choice = [...] }}"
            )));
        }
        let probe = match &dist {
            Distribution::Uniform(a, _) | Distribution::LogUniform(a, _) => vec![Value::Float(*a)],
            Distribution::IntRange(a, _) => vec![Value::Integer(*a)],
            Distribution::Choice(c) => c.clone(),
        };
        for mut p in probe {
            config::check_key_value(&k, &mut p).map_err(|m| err(format!("[{section}] {m}")))?;
        }
        axes.push((k, dist));
    }
    if axes.is_empty() {
        return Err(err(format!(
            "[{section}] has no axes besides trials and seed"
        )));
    }
    Ok(Some(Random { trials, seed, axes }))
}

fn distribution(key: &str, v: Value) -> Result<Distribution, String> {
    const FORMS: &str = "{ uniform = [lo, hi] }, { log_uniform = [lo, hi] }, { int = [lo, hi] } or { choice = [...] }";
    let Value::Table(t) = v else {
        return Err(format!("expected one of {FORMS}"));
    };
    let (kind, arg) = t
        .into_iter()
        .next()
        .filter(|_| true)
        .ok_or_else(|| format!("expected one of {FORMS}"))?;
    let pair = |arg: &Value| -> Result<(f64, f64), String> {
        match arg.as_array().map(|a| a.as_slice()) {
            Some([a, b]) => {
                let f = |v: &Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
                match (f(a), f(b)) {
                    (Some(a), Some(b)) if a < b => Ok((a, b)),
                    _ => Err(format!("{kind} needs [lo, hi] numbers with lo < hi")),
                }
            }
            _ => Err(format!("{kind} needs [lo, hi]")),
        }
    };
    let _ = key;
    match kind.as_str() {
        "uniform" => pair(&arg).map(|(a, b)| Distribution::Uniform(a, b)),
        "log_uniform" => match pair(&arg)? {
            (a, b) if a > 0.0 => Ok(Distribution::LogUniform(a, b)),
            _ => Err("log_uniform needs 0 < lo < hi".into()),
        },
        "int" => match pair(&arg)? {
            (a, b) if a.fract() == 0.0 && b.fract() == 0.0 => {
                Ok(Distribution::IntRange(a as i64, b as i64))
            }
            _ => Err("int needs integer bounds".into()),
        },
        "choice" => match arg {
            Value::Array(items) if !items.is_empty() => Ok(Distribution::Choice(items)),
            _ => Err("choice needs a non-empty list".into()),
        },
        other => Err(format!(
            "unknown distribution '{other}'; expected one of {FORMS}"
        )),
    }
}

/// One trial: the overrides applied to the base experiment, in a fixed order.
pub type Trial = Vec<Override>;

/// Expands the sweep: the cartesian product of the grid, the zip entries and the random samples,
/// each with the fixed `[set]` overrides, repeated for every seed.
pub fn expand(sweep: &Sweep) -> Vec<Trial> {
    let mut combos: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for (key, values) in &sweep.grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values
                    .iter()
                    .map(move |v| [c.clone(), vec![(key.clone(), v.clone())]].concat())
            })
            .collect();
    }
    if let Some((_, first)) = sweep.zip.first() {
        let entries: Vec<Vec<(String, Value)>> = (0..first.len())
            .map(|i| {
                sweep
                    .zip
                    .iter()
                    .map(|(k, vs)| (k.clone(), vs[i].clone()))
                    .collect()
            })
            .collect();
        combos = combos
            .into_iter()
            .flat_map(|c| entries.iter().map(move |e| [c.clone(), e.clone()].concat()))
            .collect();
    }
    if let Some(r) = &sweep.random {
        let mut rng = ChaCha8Rng::seed_from_u64(r.seed);
        let samples: Vec<Vec<(String, Value)>> = (0..r.trials)
            .map(|_| {
                r.axes
                    .iter()
                    .map(|(k, d)| (k.clone(), sample(d, &mut rng)))
                    .collect()
            })
            .collect();
        combos = combos
            .into_iter()
            .flat_map(|c| samples.iter().map(move |s| [c.clone(), s.clone()].concat()))
            .collect();
    }
    let seeds: Vec<Option<i64>> = sweep
        .seeds
        .as_ref()
        .map_or(vec![None], |s| s.iter().copied().map(Some).collect());
    let mut trials = Vec::new();
    for combo in &combos {
        for seed in &seeds {
            let mut t: Trial = sweep.set.clone();
            t.extend(combo.iter().filter_map(|(k, v)| axis_override(k, v)));
            if let Some(s) = seed {
                t.push(Override::set("seed", Value::Integer(*s)));
            }
            trials.push(t);
        }
    }
    trials
}

/// Whether a parsed file is a sweep: it has a key only sweep files have (any of theirs but
/// `name` and `base`, which experiment files have too). Both `runner` and the build script
/// decide by this, so a `base = ...` experiment is never taken for a sweep.
pub fn is_sweep(table: &Table) -> bool {
    TOP_KEYS
        .iter()
        .any(|k| !matches!(*k, "name" | "base") && table.contains_key(*k))
}

/// Every network a sweep can train, as overrides of its base: `[set]` with every combination of
/// the values its grid, zip entries and `[random]` / `[tpe]` choices give the keys that shape the
/// network (the other axes, seeds and samples leave the network as it is). Known before the
/// first trial, and as small as the shape axes, however many trials the sweep has.
pub fn network_variants(sweep: &Sweep) -> Vec<Trial> {
    let shaping = |axes: &[(String, Vec<Value>)]| -> Vec<(String, Vec<Value>)> {
        axes.iter()
            .filter(|(k, _)| shapes_the_network(k))
            .cloned()
            .collect()
    };
    let mut combos: Vec<Trial> = vec![sweep.set.clone()];
    let mut axes: Vec<Vec<Vec<(String, Value)>>> = Vec::new();
    for (key, values) in shaping(&sweep.grid) {
        axes.push(values.into_iter().map(|v| vec![(key.clone(), v)]).collect());
    }
    let zip = shaping(&sweep.zip);
    if let Some((_, first)) = zip.first() {
        axes.push(
            (0..first.len())
                .map(|i| {
                    zip.iter()
                        .map(|(k, vs)| (k.clone(), vs[i].clone()))
                        .collect()
                })
                .collect(),
        );
    }
    let searched = sweep.random.iter().flat_map(|r| &r.axes);
    for (key, dist) in searched.chain(sweep.tpe.iter().flat_map(|t| &t.axes)) {
        if let (true, Distribution::Choice(values)) = (shapes_the_network(key), dist) {
            axes.push(
                values
                    .iter()
                    .map(|v| vec![(key.clone(), v.clone())])
                    .collect(),
            );
        }
    }
    for options in axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                options.iter().map(move |o| {
                    let mut t = c.clone();
                    t.extend(o.iter().filter_map(|(k, v)| axis_override(k, v)));
                    t
                })
            })
            .collect();
    }
    combos
}

/// What one axis value does to a trial: sets the key, or for `"~KEY"`, `true` removes KEY from
/// the base and `false` leaves it.
fn axis_override(key: &str, value: &Value) -> Option<Override> {
    match key.strip_prefix('~') {
        Some(removed) => (*value == Value::Boolean(true)).then(|| Override {
            key: removed.to_string(),
            value: None,
        }),
        None => Some(Override::set(key, value.clone())),
    }
}

/// Whether setting (or removing, `~KEY`) the key can change the network's type.
fn shapes_the_network(key: &str) -> bool {
    crate::network::SHAPE_KEYS.contains(&key.trim_start_matches('~'))
}

fn sample(d: &Distribution, rng: &mut ChaCha8Rng) -> Value {
    match d {
        Distribution::Uniform(a, b) => Value::Float(rng.gen_range(*a..*b)),
        Distribution::LogUniform(a, b) => Value::Float(rng.gen_range(a.ln()..b.ln()).exp()),
        Distribution::IntRange(a, b) => Value::Integer(rng.gen_range(*a..=*b)),
        Distribution::Choice(items) => items[rng.gen_range(0..items.len())].clone(),
    }
}

/// `key=value` text of a trial's overrides, as `--set` arguments take them.
pub fn set_args(trial: &Trial) -> Vec<String> {
    trial.iter().map(Override::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Sweep {
        parse(text, Path::new("sweeps/s.toml")).unwrap()
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("sweeps/s.toml")).unwrap_err()
    }

    const HEAD: &str = "name = \"s\"\nbase = \"../smoke.toml\"\n";

    #[test]
    fn tpe_sections_take_the_random_distributions_and_stand_alone() {
        let s = parse_ok(&format!(
            "{HEAD}[tpe]\ntrials = 20\n\"optimizer.lr\" = {{ log_uniform = [1e-5, 1e-1] }}\n\
             \"train.batch_size\" = {{ choice = [32, 64] }}\n"
        ));
        let tpe = s.tpe.unwrap();
        assert_eq!((tpe.trials, tpe.startup, tpe.seed), (20, 10, 0));
        assert_eq!(tpe.axes.len(), 2);
        let mixed = parse_err(&format!(
            "{HEAD}seeds = [0]\n[tpe]\ntrials = 2\n\"optimizer.lr\" = {{ uniform = [0.1, 0.2] }}\n"
        ));
        assert!(mixed.contains("cannot be combined"), "{mixed}");
        let bad = parse_err(&format!(
            "{HEAD}[tpe]\ntrials = 2\nstartup = -1\n\"optimizer.lr\" = {{ uniform = [0.1, 0.2] }}\n"
        ));
        assert!(bad.contains("[tpe] key 'startup'"), "{bad}");
        let empty = parse_err(&format!("{HEAD}[tpe]\ntrials = 2\n"));
        assert!(empty.contains("[tpe] has no axes"), "{empty}");
        // A range over a key that shapes the network is refused; dropout does not shape it.
        let width = parse_err(&format!(
            "{HEAD}[tpe]\ntrials = 2\n\"model.hidden\" = {{ int = [16, 64] }}\n"
        ));
        assert!(width.contains("list the values with { choice"), "{width}");
        let s = parse_ok(&format!(
            "{HEAD}[tpe]\ntrials = 2\n\"model.dropout\" = {{ uniform = [0.0, 0.5] }}\n\
             \"model.hidden\" = {{ choice = [[32], [64]] }}\n"
        ));
        let variants: Vec<Vec<String>> = network_variants(&s).iter().map(set_args).collect();
        assert_eq!(variants, [["model.hidden=[32]"], ["model.hidden=[64]"]]);
    }

    #[test]
    fn tpe_options_default_to_optuna_5_and_name_the_sweep_only_when_changed() {
        let axis = "\"optimizer.lr\" = { log_uniform = [1e-5, 1e-1] }\n";
        let plain = parse_ok(&format!("{HEAD}[tpe]\ntrials = 20\n{axis}"))
            .tpe
            .unwrap();
        assert_eq!(plain.options, TpeOptions::default());
        assert!(plain.options.multivariate && plain.options.constant_liar);
        assert_eq!(plain.options.candidates, 24);
        // What the derived Debug printed before options existed: sweep directories keep names.
        assert_eq!(
            format!("{plain:?}"),
            "Tpe { trials: 20, startup: 10, seed: 0, axes: [(\"optimizer.lr\", \
             LogUniform(1e-5, 0.1))] }"
        );
        let same = parse_ok(&format!(
            "{HEAD}[tpe]\ntrials = 20\nmultivariate = true\nconstant_liar = true\n\
             candidates = 24\nseed_per_trial = false\n{axis}"
        ))
        .tpe
        .unwrap();
        assert_eq!(format!("{same:?}"), format!("{plain:?}"));
        let other = parse_ok(&format!(
            "{HEAD}[tpe]\ntrials = 20\nmultivariate = false\ncandidates = 48\n\
             seed_per_trial = true\n{axis}"
        ))
        .tpe
        .unwrap();
        assert!(!other.options.multivariate && other.options.constant_liar);
        assert!(other.options.seed_per_trial);
        assert!(format!("{other:?}")
            .ends_with(" multivariate: false candidates: 48 seed_per_trial: true"));
        for (bad, says) in [
            (
                "multivariate = 1",
                "[tpe] key 'multivariate': expected true or false, found 1",
            ),
            (
                "constant_liar = \"no\"",
                "[tpe] key 'constant_liar': expected true or false",
            ),
            (
                "candidates = 0",
                "[tpe] key 'candidates': expected an integer >= 1, found 0",
            ),
            (
                "seed_per_trial = 1",
                "[tpe] key 'seed_per_trial': expected true or false, found 1",
            ),
        ] {
            let e = parse_err(&format!("{HEAD}[tpe]\ntrials = 2\n{bad}\n{axis}"));
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn grid_times_zip_times_seeds() {
        let s = parse_ok(&format!(
            "{HEAD}seeds = [0, 1]\n[set]\n\"train.steps\" = 5\n[grid]\n\"optimizer.lr\" = [0.1, 0.2]\n\"model.hidden\" = [[32], [64]]\n\
             [zip]\n\"train.batch_size\" = [16, 32, 64]\n\"train.eval_every\" = [1, 2, 3]\n"
        ));
        assert_eq!(s.base, Path::new("sweeps/../smoke.toml"));
        let trials = expand(&s);
        assert_eq!(trials.len(), 2 * 2 * 3 * 2);
        let args: Vec<String> = set_args(&trials[0]);
        assert_eq!(
            args,
            [
                "train.steps=5",
                "model.hidden=[32]",
                "optimizer.lr=0.1",
                "train.batch_size=16",
                "train.eval_every=1",
                "seed=0"
            ]
        );
        // zip advances its lists together.
        assert!(trials.iter().all(|t| {
            let get = |k: &str| {
                t.iter()
                    .find(|o| o.key == k)
                    .unwrap()
                    .value
                    .as_ref()
                    .unwrap()
                    .as_integer()
                    .unwrap()
            };
            get("train.eval_every")
                == [16, 32, 64]
                    .iter()
                    .position(|&b| b == get("train.batch_size"))
                    .unwrap() as i64
                    + 1
        }));
        let unique: std::collections::HashSet<Vec<String>> = trials.iter().map(set_args).collect();
        assert_eq!(unique.len(), trials.len());
    }

    #[test]
    fn random_search_is_seeded_and_in_range() {
        let text = format!(
            "{HEAD}[random]\ntrials = 8\nseed = 3\n\"optimizer.lr\" = {{ log_uniform = [1e-5, 1e-2] }}\n\
             \"train.batch_size\" = {{ int = [16, 64] }}\n\"model.init\" = {{ choice = [\"glorot\", \"pytorch\"] }}\n"
        );
        let a = expand(&parse_ok(&text));
        assert_eq!(a.len(), 8);
        assert_eq!(a, expand(&parse_ok(&text)), "same seed, same trials");
        assert_ne!(a, expand(&parse_ok(&text.replace("seed = 3", "seed = 4"))));
        for t in &a {
            let lr = t
                .iter()
                .find(|o| o.key == "optimizer.lr")
                .unwrap()
                .value
                .as_ref()
                .unwrap()
                .as_float()
                .unwrap();
            let b = t
                .iter()
                .find(|o| o.key == "train.batch_size")
                .unwrap()
                .value
                .as_ref()
                .unwrap()
                .as_integer()
                .unwrap();
            assert!((1e-5..1e-2).contains(&lr) && (16..=64).contains(&b));
        }
    }

    #[test]
    fn mistakes_are_reported_with_the_key() {
        let cases = [
            ("[grid]\n\"optimizer.lr\" = [\"fast\"]\n", "optimizer.lr"),
            (
                "[grid]\n\"optimizer.lrr\" = [0.1]\n",
                "did you mean 'optimizer.lr'",
            ),
            ("[grid]\n\"optimizer.lr\" = []\n", "empty"),
            ("[grid]\n\"optimizer.lr\" = 0.1\n", "expected a list"),
            (
                "[zip]\n\"optimizer.lr\" = [0.1, 0.2]\n\"train.steps\" = [1]\n",
                "equal lengths",
            ),
            (
                "[random]\n\"optimizer.lr\" = { log_uniform = [1e-3, 1e-5] }\ntrials = 2\n",
                "lo < hi",
            ),
            (
                "[random]\n\"optimizer.lr\" = { normal = [0, 1] }\ntrials = 2\n",
                "unknown distribution",
            ),
            (
                "[random]\n\"optimizer.lr\" = { uniform = [0, 1] }\n",
                "trials",
            ),
            ("[set]\n\"train.steps\" = 0\n", "train.steps"),
            (
                "[grid]\noptimizer.lr = [0.1, 0.2]\n",
                "quote it: \"optimizer.lr\" = [0.1, 0.2]",
            ),
            ("[set]\ntrain.steps = 5\n", "quote it: \"train.steps\" = 5"),
            ("gird = 1\n", "did you mean 'grid'"),
            ("metric = \"speed\"\n[grid]\n\"seed\" = [1]\n", "metric"),
            ("", "no axes"),
            ("[grid]\n\"seed\" = [1]\n[early_stop]\nkind = \"hyperband\"\n", "not one of"),
            ("[grid]\n\"seed\" = [1]\n[early_stop]\nkind = \"asha\"\n", "'min_steps' is required"),
            ("[grid]\n\"seed\" = [1]\n[early_stop]\nkind = \"asha\"\nmin_steps = 10\nreduction_factor = 1\n", ">= 2"),
            ("[grid]\n\"seed\" = [1]\n[early_stop]\nkind = \"median\"\npatience = 1\n", "unknown key 'patience'"),
        ];
        for (body, needle) in cases {
            let msg = parse_err(&format!("{HEAD}{body}"));
            assert!(
                msg.starts_with("sweeps/s.toml: ") && msg.contains(needle),
                "{body}: {msg}"
            );
        }
        assert!(parse_err("base = \"x\"\n[grid]\nseed = [1]\n").contains("'name'"));
    }

    #[test]
    fn a_model_shape_sampled_from_a_range_is_refused_and_choice_lists_work() {
        let base = "name = \"s\"\nbase = \"b.toml\"\n[random]\ntrials = 2\n";
        let err = parse(
            &format!("{base}\"model.kernel\" = {{ int = [3, 7] }}\n"),
            Path::new("s.toml"),
        )
        .unwrap_err();
        assert!(
            err.contains("model.kernel") && err.contains("choice"),
            "{err}"
        );
        parse(
            &format!("{base}\"model.kernel\" = {{ choice = [3, 5] }}\n"),
            Path::new("s.toml"),
        )
        .unwrap();
    }
}
