//! Experiment files: parsing, `--set` overrides, validation, and the canonical resolved form
//! whose hash names the run directory.

mod compose;
pub use compose::{read_bounded, MAX_FILE_BYTES};
pub mod overrides;
pub mod schema;

use crate::error::{Error, Result};
use crate::schedule::ScheduleConfig;
use schema::{KeySpec, ValueType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use toml::{Table, Value};

pub use overrides::Override;

/// A fully resolved experiment: every default filled in. Field order is the canonical key
/// order of `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub data: DataConfig,
    pub model: ModelConfig,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub train: TrainConfig,
    /// The learning-rate schedule; `None` (and a constant one without warmup, which is the same
    /// run) keeps the canonical form, and so the hash, of a file without `[schedule]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    #[serde(default = "default_dataset")]
    pub dataset: String,
    /// A directory holding the four IDX `.gz` files, instead of the vendored copy. Stored
    /// absolute in the resolved config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Training images held out for validation (0: none), chosen by the run's seed.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub validation: usize,
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: default_dataset(),
            dir: None,
            validation: 0,
        }
    }
}

fn default_dataset() -> String {
    "mnist".into()
}

/// Weight initialisation scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Glorot-uniform weights, zero biases: the Keras default, used by the reference program.
    #[default]
    Glorot,
    /// PyTorch's default: weights and biases uniform in ±1/sqrt(fan_in).
    Pytorch,
}

/// The nonlinearity after every convolution and hidden dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    /// max(x, 0.01 x), PyTorch's default slope.
    LeakyRelu,
    /// The exact form x * Phi(x) (with erf), not the tanh approximation.
    Gelu,
    Tanh,
    Sigmoid,
    /// x for x > 0, exp(x) - 1 otherwise (alpha = 1, PyTorch's default).
    Elu,
}

impl Activation {
    fn is_relu(&self) -> bool {
        *self == Activation::Relu
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// Output has the input's spatial size (zero padding of kernel/2 on each side).
    #[default]
    Same,
    /// No padding: output shrinks by kernel - 1.
    Valid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ModelConfig {
    Mlp {
        #[serde(default = "default_mlp_hidden")]
        hidden: Vec<usize>,
        #[serde(default)]
        init: Init,
        #[serde(default, skip_serializing_if = "Activation::is_relu")]
        activation: Activation,
        /// Dropout probability on each hidden dense layer's output while training.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropout: f64,
    },
    Cnn {
        #[serde(default = "default_cnn_conv")]
        conv: Vec<usize>,
        #[serde(default = "default_kernel")]
        kernel: PerBlock<usize>,
        #[serde(default)]
        padding: PerBlock<Padding>,
        /// Whether each block ends in a 2x2 max-pool. Left out of the canonical form (and so of
        /// the hash) when every block pools, as before the key existed.
        #[serde(
            default = "pool_everywhere",
            skip_serializing_if = "PerBlock::is_all_true"
        )]
        pool: PerBlock<bool>,
        #[serde(default = "default_cnn_hidden")]
        hidden: Vec<usize>,
        #[serde(default)]
        init: Init,
        #[serde(default, skip_serializing_if = "Activation::is_relu")]
        activation: Activation,
        /// Dropout probability on each hidden dense layer's output while training.
        #[serde(default, skip_serializing_if = "is_zero")]
        dropout: f64,
    },
}

impl ModelConfig {
    pub fn init(&self) -> Init {
        match self {
            ModelConfig::Mlp { init, .. } | ModelConfig::Cnn { init, .. } => *init,
        }
    }

    pub fn activation(&self) -> Activation {
        match self {
            ModelConfig::Mlp { activation, .. } | ModelConfig::Cnn { activation, .. } => {
                *activation
            }
        }
    }

    pub fn dropout(&self) -> f64 {
        match self {
            ModelConfig::Mlp { dropout, .. } | ModelConfig::Cnn { dropout, .. } => *dropout,
        }
    }
}

fn default_mlp_hidden() -> Vec<usize> {
    vec![256]
}
fn default_cnn_conv() -> Vec<usize> {
    vec![32, 64]
}
fn default_kernel() -> PerBlock<usize> {
    PerBlock::All(5)
}
fn pool_everywhere() -> PerBlock<bool> {
    PerBlock::All(true)
}

/// A CNN setting given once for every block, or once per block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    All(T),
    Each(Vec<T>),
}

impl<T: Copy + Default> Default for PerBlock<T> {
    fn default() -> Self {
        PerBlock::All(T::default())
    }
}

impl<T: Copy> PerBlock<T> {
    /// The value for block `i` (0-based); `None` past the end of a per-block list.
    pub fn get(&self, i: usize) -> Option<T> {
        match self {
            PerBlock::All(v) => Some(*v),
            PerBlock::Each(list) => list.get(i).copied(),
        }
    }

    /// How many values a per-block list holds (`None` for one value for all).
    pub fn list_len(&self) -> Option<usize> {
        match self {
            PerBlock::All(_) => None,
            PerBlock::Each(list) => Some(list.len()),
        }
    }
}

impl PerBlock<bool> {
    fn is_all_true(&self) -> bool {
        *self == PerBlock::All(true)
    }
}
fn default_cnn_hidden() -> Vec<usize> {
    vec![1024]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam with bias correction (PyTorch's form); `weight_decay` is L2 added to the gradient.
    Adam {
        lr: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default)]
        weight_decay: f64,
    },
    /// AdamW: Adam with decoupled weight decay (the step adds `weight_decay * lr * p`).
    Adamw {
        lr: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default = "default_adamw_decay")]
        weight_decay: f64,
    },
    /// SGD with optional (Nesterov) momentum.
    Sgd {
        lr: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        nesterov: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    /// RMSprop as in PyTorch (`alpha` is the squared-gradient decay), except that the squared
    /// average starts at one, as in dfdx and TensorFlow 1.
    Rmsprop {
        lr: f64,
        #[serde(default = "default_alpha")]
        alpha: f64,
        #[serde(default = "default_eps")]
        eps: f64,
        #[serde(default)]
        momentum: f64,
        #[serde(default)]
        centered: bool,
        #[serde(default)]
        weight_decay: f64,
    },
    /// Lion (Chen et al. 2023, as lion-pytorch): steps of `lr * sign(beta1 * m + (1 - beta1) *
    /// g)`, then `m = beta2 * m + (1 - beta2) * g`; `weight_decay` is decoupled (`p *= 1 - lr *
    /// weight_decay`). Its authors use a learning rate 3-10x smaller than AdamW's.
    Lion {
        lr: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_lion_beta2")]
        beta2: f64,
        #[serde(default)]
        weight_decay: f64,
    },
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_decay() -> f64 {
    0.01
}
fn default_lion_beta2() -> f64 {
    0.99
}
fn default_alpha() -> f64 {
    0.99
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. }
            | OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Rmsprop { lr, .. }
            | OptimizerConfig::Lion { lr, .. } => *lr,
        }
    }

    /// Replaces the learning rate (what a schedule does step by step).
    pub fn set_lr(&mut self, rate: f64) {
        match self {
            OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::Adamw { lr, .. }
            | OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Rmsprop { lr, .. }
            | OptimizerConfig::Lion { lr, .. } => *lr = rate,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_steps")]
    pub steps: u64,
    /// Evaluate on the test set every this many steps, and always after the last step.
    #[serde(default = "default_eval_every")]
    pub eval_every: u64,
    /// Write a resumable checkpoint every this many steps (default: at every evaluation). Does
    /// not change results, so it is left out of the run's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<u64>,
    /// Train for this many epochs: `steps` becomes `epochs * floor(training images / batch)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u64>,
    /// Scale all gradients together so that their global L2 norm is at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_grad_norm: Option<f64>,
    /// Training targets mix the one-hot label with the uniform distribution by this much.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
    /// Also write `model-best.safetensors` at the best validation evaluation.
    #[serde(default, skip_serializing_if = "is_false")]
    pub keep_best: bool,
}

impl TrainConfig {
    /// Steps between checkpoints.
    pub fn checkpoint_interval(&self) -> u64 {
        self.checkpoint_every.unwrap_or(self.eval_every)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: default_batch_size(),
            steps: default_steps(),
            eval_every: default_eval_every(),
            checkpoint_every: None,
            epochs: None,
            clip_grad_norm: None,
            label_smoothing: 0.0,
            keep_best: false,
        }
    }
}

fn default_batch_size() -> usize {
    64
}
fn default_steps() -> u64 {
    3000
}
fn default_eval_every() -> u64 {
    500
}

/// Reads, overrides and validates an experiment file, merged over its `base` chain.
pub fn load(file: &Path, overrides: &[Override]) -> Result<Experiment> {
    let table = compose::read(file)?;
    // The file's own data.dir is absolute by now; one from --set is relative to the current
    // directory, as paths on a command line are.
    parse_table(
        table,
        &file.display().to_string(),
        Path::new("."),
        overrides,
    )
}

/// Parses experiment text. `origin` names the source in messages; relative `data.dir` paths
/// resolve against `base_dir`. (`base` is not followed: that needs a file, see [`load`].)
pub fn parse_str(
    text: &str,
    origin: &str,
    base_dir: &Path,
    overrides: &[Override],
) -> Result<Experiment> {
    let table: Table = text.parse().map_err(|e: toml::de::Error| {
        Error::Input(format!(
            "{origin}: invalid TOML: {}",
            e.to_string().trim_end()
        ))
    })?;
    parse_table(table, origin, base_dir, overrides)
}

fn parse_table(
    mut table: Table,
    origin: &str,
    base_dir: &Path,
    overrides: &[Override],
) -> Result<Experiment> {
    for ov in overrides {
        overrides::apply(&mut table, ov)?;
    }
    let overridden: Vec<&str> = overrides.iter().map(|o| o.key.as_str()).collect();
    let ctx = Ctx {
        origin,
        overridden: &overridden,
    };
    validate_table(&mut table, &ctx)?;
    let steps_given = table.get("train").and_then(|t| t.get("steps")).is_some();
    let mut exp: Experiment = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| Error::Input(format!("{origin}: {}", e.message())))?;
    validate_semantics(&exp, &ctx)?;
    resolve_epochs(&mut exp, steps_given, &ctx)?;
    if let Some(schedule) = &mut exp.schedule {
        schedule.resolve().map_err(|(key, msg)| ctx.err(key, msg))?;
        if schedule.is_constant() {
            exp.schedule = None;
        }
    }
    if let Some(dir) = &exp.data.dir {
        exp.data.dir = Some(compose::absolute(base_dir, dir).display().to_string());
    }
    Ok(exp)
}

struct Ctx<'a> {
    origin: &'a str,
    overridden: &'a [&'a str],
}

impl Ctx<'_> {
    fn err(&self, key: &str, msg: impl std::fmt::Display) -> Error {
        let via = if self.overridden.contains(&key) {
            " (set by --set)"
        } else {
            ""
        };
        Error::Input(format!("{}: key '{key}'{via}: {msg}", self.origin))
    }
}

/// The hint after "unknown key": a close key in the same table (or the same key name in another
/// table) and the keys that table does accept, e.g. ` (did you mean 'optimizer.lr'?); keys of
/// [optimizer]: kind, lr, ...`.
pub(crate) fn unknown_key_hint(path: &str) -> String {
    let (table, leaf) = path.rsplit_once('.').unwrap_or(("", path));
    let leaf_of = |p: &'static str| p.rsplit_once('.').map_or(p, |(_, l)| l);
    let mut siblings: Vec<&str> = schema::KEYS
        .iter()
        .map(|k| k.path)
        .filter(|p| p.rsplit_once('.').map_or("", |(t, _)| t) == table)
        .collect();
    if table.is_empty() {
        siblings.extend(schema::tables());
    }
    let suggestion = schema::did_you_mean(leaf, siblings.iter().map(|p| leaf_of(p)))
        .and_then(|l| siblings.iter().find(|p| leaf_of(p) == l).copied())
        .or_else(|| {
            schema::KEYS
                .iter()
                .map(|k| k.path)
                .find(|p| leaf_of(p) == leaf)
        });
    let label = if table.is_empty() {
        "the top level".to_string()
    } else {
        format!("[{table}]")
    };
    let known = siblings
        .iter()
        .map(|p| leaf_of(p))
        .collect::<Vec<_>>()
        .join(", ");
    match suggestion {
        Some(s) => format!(" (did you mean '{s}'?); keys of {label}: {known}"),
        None => format!("; keys of {label}: {known}"),
    }
}

/// Checks every key against the schema (unknown keys, types, ranges, kind-specific keys,
/// required keys) and coerces integers to floats where a float is expected. Every problem is
/// reported at once (up to [`MAX_REPORTED`]), one per line, so a file with two mistakes takes one
/// try.
fn validate_table(table: &mut Table, ctx: &Ctx) -> Result<()> {
    let tables = schema::tables();
    let kind_of = |t: &Table, table: &str| -> Option<String> {
        t.get(table)?.get("kind")?.as_str().map(str::to_string)
    };
    let model_kind = kind_of(table, "model");
    let optimizer_kind = kind_of(table, "optimizer");
    let schedule_kind = kind_of(table, "schedule");
    let mut problems: Vec<Error> = Vec::new();
    for (name, value) in table.iter_mut() {
        if tables.contains(&name.as_str()) {
            let Value::Table(inner) = value else {
                problems.push(ctx.err(
                    name,
                    format!("expected a table [{name}], found {}", describe(value)),
                ));
                continue;
            };
            let kind = match name.as_str() {
                "model" => model_kind.as_deref(),
                "optimizer" => optimizer_kind.as_deref(),
                "schedule" => schedule_kind.as_deref().or(Some("constant")),
                _ => None,
            };
            for (leaf, v) in inner.iter_mut() {
                let path = format!("{name}.{leaf}");
                problems.extend(check_leaf(&path, v, kind, ctx).err());
            }
        } else {
            problems.extend(check_leaf(name, value, None, ctx).err());
        }
    }
    for spec in schema::KEYS.iter().filter(|k| k.required) {
        let present = match spec.path.split_once('.') {
            Some((t, k)) => table.get(t).and_then(|t| t.get(k)).is_some(),
            None => table.contains_key(spec.path),
        };
        if !present {
            problems.push(ctx.err(
                spec.path,
                format!("missing; it is required ({})", spec.ty.describe()),
            ));
        }
    }
    combine(problems)
}

/// Problems of one file reported together, at most.
const MAX_REPORTED: usize = 10;

/// No problem, one (as it is), or several in one message, one per line.
fn combine(mut problems: Vec<Error>) -> Result<()> {
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems.remove(0)),
        n => {
            let mut lines: Vec<String> = problems
                .iter()
                .take(MAX_REPORTED)
                .map(|e| e.to_string())
                .collect();
            if n > MAX_REPORTED {
                lines.push(format!("... and {} more", n - MAX_REPORTED));
            }
            Err(Error::Input(format!(
                "{n} problems:\n  {}",
                lines.join("\n  ")
            )))
        }
    }
}

fn check_leaf(path: &str, value: &mut Value, kind: Option<&str>, ctx: &Ctx) -> Result<()> {
    let Some(spec) = schema::find(path) else {
        return Err(ctx.err(path, format!("unknown key{}", unknown_key_hint(path))));
    };
    if let (Some(kinds), Some(kind)) = (spec.kinds, kind) {
        if !kinds.contains(&kind) {
            let (table, _) = path.split_once('.').unwrap_or(("", path));
            let accepted: Vec<&str> = schema::KEYS
                .iter()
                .filter(|k| k.path.starts_with(&format!("{table}.")))
                .filter(|k| k.kinds.is_none_or(|ks| ks.contains(&kind)))
                .map(|k| k.path.rsplit_once('.').map_or(k.path, |(_, l)| l))
                .collect();
            return Err(ctx.err(
                path,
                format!(
                    "does not apply to {table}.kind = \"{kind}\" (it belongs to {}); that kind \
                     takes: {} (`--set ~{path}` removes it)",
                    schema::quoted_list(kinds),
                    accepted.join(", ")
                ),
            ));
        }
    }
    check_type(spec, value).map_err(|found| {
        ctx.err(
            path,
            format!("expected {}, found {found}", spec.ty.describe()),
        )
    })
}

/// Checks one value for a schema key (used by sweep files): the message names the key and says
/// what is allowed.
pub fn check_key_value(path: &str, value: &mut Value) -> std::result::Result<(), String> {
    let Some(spec) = schema::find(path) else {
        return Err(format!("unknown key '{path}'{}", unknown_key_hint(path)));
    };
    check_type(spec, value).map_err(|found| {
        format!(
            "key '{path}': expected {}, found {found}",
            spec.ty.describe()
        )
    })
}

/// Checks (and for int→float, coerces) one value. On mismatch returns what was found.
fn check_type(spec: &KeySpec, value: &mut Value) -> std::result::Result<(), String> {
    if let ValueType::PerBlock(inner) = spec.ty {
        let one = KeySpec {
            ty: *inner,
            ..*spec
        };
        let found = describe(value);
        return match value {
            Value::Array(items) if !items.is_empty() => items
                .iter_mut()
                .try_for_each(|v| check_type(&one, v))
                .map_err(|_| found),
            Value::Array(_) => Err(found),
            _ => check_type(&one, value),
        };
    }
    let ok = match (&spec.ty, &*value) {
        (ValueType::Int { min, max }, Value::Integer(i)) => (min..=max).contains(&i),
        // An exact float spelling of an integer (`steps = 1e4`) is that integer.
        (ValueType::Int { min, max }, Value::Float(f)) => {
            match overrides::exact_integer(*f).filter(|i| (min..=max).contains(&i)) {
                Some(i) => {
                    *value = Value::Integer(i);
                    true
                }
                None => false,
            }
        }
        (ValueType::Float(range), Value::Integer(i)) => {
            let f = *i as f64;
            let ok = range.contains(f);
            if ok {
                *value = Value::Float(f);
            }
            ok
        }
        (ValueType::Float(range), Value::Float(f)) => range.contains(*f),
        (ValueType::Bool, Value::Boolean(_)) => true,
        (ValueType::Str, Value::String(_)) => true,
        (ValueType::Enum(allowed), Value::String(s)) => allowed.contains(&s.as_str()),
        (ValueType::IntList { min, max }, Value::Array(items)) => items
            .iter()
            .all(|v| v.as_integer().is_some_and(|i| (*min..=*max).contains(&i))),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(describe(value))
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        Value::Table(_) => "a table".to_string(),
        other => other.to_string(),
    }
}

/// Keys the canonical form leaves out at their default (so that adding them kept every earlier
/// hash), with that default in TOML spelling and, for model keys of one kind, the kind. Tables
/// fill them back in to show "relu" rather than a blank beside runs that set another value.
pub const OMITTED_DEFAULTS: &[(&str, &str, Option<&str>)] = &[
    ("data.validation", "0", None),
    ("model.activation", "\"relu\"", None),
    ("model.dropout", "0.0", None),
    ("model.pool", "true", Some("cnn")),
    ("train.label_smoothing", "0.0", None),
    ("train.keep_best", "false", None),
    ("schedule.kind", "\"constant\"", None),
];

/// Training images in an MNIST-format dataset (MNIST and Fashion-MNIST alike); `runner` checks
/// that a custom `data.dir` has as many before it trains by epochs or holds images out.
pub const TRAIN_IMAGES: usize = 60_000;

/// The steps of `train.epochs` epochs: each epoch is `floor(training images / batch)` full
/// batches, the last partial batch dropped, as the batcher does. A `--set` of one of the two
/// keys wins over the file's other one; given together at the same level (as a resolved
/// `config.toml` gives them), they must agree.
fn resolve_epochs(exp: &mut Experiment, steps_given: bool, ctx: &Ctx) -> Result<()> {
    let Some(epochs) = exp.train.epochs else {
        return Ok(());
    };
    let set = |key: &str| ctx.overridden.contains(&key);
    if set("train.steps") && !set("train.epochs") {
        exp.train.epochs = None;
        return Ok(());
    }
    let images = (TRAIN_IMAGES - exp.data.validation) as u64;
    let per_epoch = images / exp.train.batch_size as u64;
    let steps = epochs.saturating_mul(per_epoch);
    if steps > schema::MAX_STEPS as u64 {
        return Err(ctx.err(
            "train.epochs",
            format!(
                "{epochs} epochs are {steps} steps, more than {}",
                schema::MAX_STEPS
            ),
        ));
    }
    let steps_from_file_only = steps_given && set("train.epochs") && !set("train.steps");
    if steps_given && !steps_from_file_only && exp.train.steps != steps {
        return Err(ctx.err(
            "train.steps",
            format!(
                "{} contradicts train.epochs = {epochs} ({epochs} epochs of {images} images at \
                 batch {} are {steps} steps); set one of the two",
                exp.train.steps, exp.train.batch_size
            ),
        ));
    }
    exp.train.steps = steps;
    Ok(())
}

/// Checks that span several keys or depend on more than a key's own type.
fn validate_semantics(exp: &Experiment, ctx: &Ctx) -> Result<()> {
    let mut problems = Vec::new();
    let name = &exp.name;
    let bad_name = name.is_empty()
        || name.len() > 64
        || name.starts_with('.')
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if bad_name || name.contains("..") {
        problems.push(ctx.err(
            "name",
            format!(
                "{name:?} cannot name a run directory; use 1 to 64 characters from A-Z a-z 0-9 - _ . \
                 (no path separators, no '..', not starting with '.')"
            ),
        ));
    }
    if let OptimizerConfig::Sgd {
        momentum,
        nesterov: true,
        ..
    } = exp.optimizer
    {
        if momentum == 0.0 {
            problems.push(ctx.err(
                "optimizer.nesterov",
                "Nesterov momentum needs optimizer.momentum > 0",
            ));
        }
    }
    if let ModelConfig::Cnn {
        conv,
        kernel,
        padding,
        pool,
        ..
    } = &exp.model
    {
        for (key, len) in [
            ("model.kernel", kernel.list_len()),
            ("model.padding", padding.list_len()),
            ("model.pool", pool.list_len()),
        ] {
            if let Some(n) = len.filter(|&n| n != conv.len()) {
                problems.push(ctx.err(
                    key,
                    format!(
                        "{n} values for {} conv blocks; give one value for every block or one \
                         per block",
                        conv.len()
                    ),
                ));
            }
        }
        for i in 0..conv.len() {
            let k = kernel.get(i).unwrap_or(1);
            if !crate::network::valid_kernel(k) {
                problems.push(ctx.err(
                    "model.kernel",
                    format!(
                        "expected an odd kernel size 1..={}, found {k}",
                        crate::network::MAX_KERNEL
                    ),
                ));
                break;
            }
        }
    }
    let dataset = &exp.data.dataset;
    let bad_dataset = dataset.is_empty()
        || dataset.len() > 40
        || !dataset
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if bad_dataset {
        problems.push(ctx.err(
            "data.dataset",
            format!("{dataset:?}: a dataset name is 1 to 40 characters from A-Z a-z 0-9 - _ ."),
        ));
    }
    if exp.data.dir.is_none() && dataset != schema::VENDORED_DATASET {
        problems.push(ctx.err(
            "data.dataset",
            format!(
                "\"{dataset}\" has no vendored copy (only \"{}\" has); give its four IDX .gz \
                 files with data.dir",
                schema::VENDORED_DATASET
            ),
        ));
    }
    let (validation, batch) = (exp.data.validation, exp.train.batch_size);
    if validation > 0 && validation.saturating_add(batch) > TRAIN_IMAGES {
        problems.push(ctx.err(
            "data.validation",
            format!(
                "holding out {validation} of the {TRAIN_IMAGES} training images leaves fewer \
                 than one batch of {batch}"
            ),
        ));
    }
    if exp.train.keep_best && validation == 0 {
        problems.push(ctx.err(
            "train.keep_best",
            "picks the best weights by validation accuracy; hold images out with \
             data.validation (e.g. 5000)",
        ));
    }
    combine(problems)
}

impl Experiment {
    /// The canonical TOML text: all defaults filled in, fixed key order and number format.
    pub fn canonical_toml(&self) -> String {
        toml::to_string(self).expect("experiment config always serialises to TOML")
    }

    /// The content hash that names the run directory: SHA-256 over the canonical config and the
    /// dataset's digest. Keys that cannot change results are left out: `train.checkpoint_every`,
    /// and `data.dir`, since the dataset's digest stands for its content wherever it lives.
    pub fn hash(&self, dataset_digest: &str) -> String {
        let mut hashed = self.clone();
        hashed.train.checkpoint_every = None;
        hashed.data.dir = None;
        let mut h = Sha256::new();
        h.update(hashed.canonical_toml().as_bytes());
        h.update(b"\n# dataset sha256\n");
        h.update(dataset_digest.as_bytes());
        hex(&h.finalize())
    }

    /// `<name>-<first 12 hex digits of the hash>`.
    pub fn run_dir_name(&self, dataset_digest: &str) -> String {
        format!("{}-{}", self.name, &self.hash(dataset_digest)[..12])
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
