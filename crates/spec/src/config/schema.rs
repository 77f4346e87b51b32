//! The experiment schema as data: every key, its type, its range and which `kind` it belongs to.
//!
//! One table drives key validation (with did-you-mean), `--set` typing and the error messages,
//! so they can never disagree with each other.

/// The type (and allowed range) of one leaf key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueType {
    /// An integer in `min..=max`.
    Int {
        min: i64,
        max: i64,
    },
    /// A finite float, with the range described by `FloatRange`.
    Float(FloatRange),
    Bool,
    /// A free-form string (validated elsewhere, e.g. `name`).
    Str,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A list of integers in `min..=max` (layer widths).
    IntList {
        min: i64,
        max: i64,
    },
    /// One value of the inner type for every conv block, or a list of them, one per block.
    PerBlock(&'static ValueType),
}

/// Ranges of float keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FloatRange {
    /// `x > 0`
    Positive,
    /// `x >= 0`
    NonNegative,
    /// `0 <= x < 1`
    UnitHalfOpen,
}

impl FloatRange {
    /// Training reads these values as f32: a value that f32 turns into infinity (`1e300`) or,
    /// for `> 0`, into zero (`1e-300`) is out of range, as in f64 nan and inf are.
    pub fn contains(self, x: f64) -> bool {
        let f = x as f32;
        x.is_finite()
            && f.is_finite()
            && match self {
                FloatRange::Positive => x > 0.0 && f > 0.0,
                FloatRange::NonNegative => x >= 0.0,
                FloatRange::UnitHalfOpen => (0.0..1.0).contains(&x),
            }
    }

    pub fn describe(self) -> &'static str {
        match self {
            FloatRange::Positive => "a number > 0 that f32 holds (1e-45 ..= 3.4e38)",
            FloatRange::NonNegative => "a number >= 0 that f32 holds (at most 3.4e38)",
            FloatRange::UnitHalfOpen => "a number in [0, 1)",
        }
    }
}

impl ValueType {
    /// Human description used in error messages ("expected ...").
    pub fn describe(&self) -> String {
        match self {
            ValueType::Int { min, max } if *max == i64::MAX => format!("an integer >= {min}"),
            ValueType::Int { min, max } => format!("an integer in {min}..={max}"),
            ValueType::Float(r) => r.describe().to_string(),
            ValueType::Bool => "true or false".to_string(),
            ValueType::Str => "a string".to_string(),
            ValueType::Enum(allowed) => format!("one of {}", quoted_list(allowed)),
            ValueType::IntList { min, max } => {
                format!("a list of integers in {min}..={max}, e.g. [256, 128]")
            }
            ValueType::PerBlock(inner) => {
                format!("{}, or a list of those (one per block)", inner.describe())
            }
        }
    }
}

/// One leaf key of the schema.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    /// Dotted path, e.g. `optimizer.lr`.
    pub path: &'static str,
    pub ty: ValueType,
    /// For keys that only exist for some `kind`s of their table (`optimizer.beta1` is Adam's):
    /// the kinds that accept it. `None`: every kind.
    pub kinds: Option<&'static [&'static str]>,
    pub required: bool,
}

pub const MODEL_KINDS: &[&str] = &["mlp", "cnn"];
pub const OPTIMIZER_KINDS: &[&str] = &["adam", "adamw", "sgd", "rmsprop", "lion"];
pub const INITS: &[&str] = &["glorot", "pytorch"];
pub const PADDINGS: &[&str] = &["same", "valid"];
/// The dataset with a vendored copy (others need `data.dir`).
pub const VENDORED_DATASET: &str = "mnist";
pub const ACTIVATIONS: &[&str] = &["relu", "leaky_relu", "gelu", "tanh", "sigmoid", "elu"];
pub const SCHEDULE_KINDS: &[&str] = &[
    "constant",
    "step",
    "multistep",
    "exponential",
    "cosine",
    "linear",
];

/// Largest `train.steps` accepted: keeps step arithmetic far from overflow.
pub const MAX_STEPS: i64 = 1_000_000_000;
/// The network's limits (one source: `network`), as the schema's integer bounds.
const MAX_WIDTH: i64 = crate::network::MAX_WIDTH as i64;
const MAX_FILTERS: i64 = crate::network::MAX_FILTERS as i64;
const MAX_KERNEL: i64 = crate::network::MAX_KERNEL as i64;

const UNBOUNDED: i64 = i64::MAX;

const fn key(path: &'static str, ty: ValueType) -> KeySpec {
    KeySpec {
        path,
        ty,
        kinds: None,
        required: false,
    }
}

const fn for_kinds(path: &'static str, ty: ValueType, kinds: &'static [&'static str]) -> KeySpec {
    KeySpec {
        path,
        ty,
        kinds: Some(kinds),
        required: false,
    }
}

const fn required(path: &'static str, ty: ValueType) -> KeySpec {
    KeySpec {
        path,
        ty,
        kinds: None,
        required: true,
    }
}

const POS: FloatRange = FloatRange::Positive;
const NONNEG: FloatRange = FloatRange::NonNegative;
const UNIT: FloatRange = FloatRange::UnitHalfOpen;

/// Every key an experiment file may contain. Tables are implied by the dotted paths.
pub const KEYS: &[KeySpec] = &[
    required("name", ValueType::Str),
    key(
        "seed",
        ValueType::Int {
            min: 0,
            max: UNBOUNDED,
        },
    ),
    key("data.dataset", ValueType::Str),
    key("data.dir", ValueType::Str),
    key(
        "data.validation",
        ValueType::Int {
            min: 0,
            max: UNBOUNDED,
        },
    ),
    required("model.kind", ValueType::Enum(MODEL_KINDS)),
    key(
        "model.hidden",
        ValueType::IntList {
            min: 1,
            max: MAX_WIDTH,
        },
    ),
    key("model.init", ValueType::Enum(INITS)),
    key("model.activation", ValueType::Enum(ACTIVATIONS)),
    key("model.dropout", ValueType::Float(UNIT)),
    for_kinds(
        "model.conv",
        ValueType::IntList {
            min: 1,
            max: MAX_FILTERS,
        },
        &["cnn"],
    ),
    for_kinds(
        "model.kernel",
        ValueType::PerBlock(&ValueType::Int {
            min: 1,
            max: MAX_KERNEL,
        }),
        &["cnn"],
    ),
    for_kinds(
        "model.padding",
        ValueType::PerBlock(&ValueType::Enum(PADDINGS)),
        &["cnn"],
    ),
    for_kinds(
        "model.pool",
        ValueType::PerBlock(&ValueType::Bool),
        &["cnn"],
    ),
    required("optimizer.kind", ValueType::Enum(OPTIMIZER_KINDS)),
    required("optimizer.lr", ValueType::Float(POS)),
    for_kinds(
        "optimizer.beta1",
        ValueType::Float(UNIT),
        &["adam", "adamw", "lion"],
    ),
    for_kinds(
        "optimizer.beta2",
        ValueType::Float(UNIT),
        &["adam", "adamw", "lion"],
    ),
    for_kinds(
        "optimizer.eps",
        ValueType::Float(POS),
        &["adam", "adamw", "rmsprop"],
    ),
    for_kinds(
        "optimizer.momentum",
        ValueType::Float(UNIT),
        &["sgd", "rmsprop"],
    ),
    for_kinds("optimizer.nesterov", ValueType::Bool, &["sgd"]),
    for_kinds("optimizer.alpha", ValueType::Float(UNIT), &["rmsprop"]),
    for_kinds("optimizer.centered", ValueType::Bool, &["rmsprop"]),
    key("optimizer.weight_decay", ValueType::Float(NONNEG)),
    key(
        "train.batch_size",
        ValueType::Int {
            min: 1,
            max: UNBOUNDED,
        },
    ),
    key(
        "train.steps",
        ValueType::Int {
            min: 1,
            max: MAX_STEPS,
        },
    ),
    key(
        "train.eval_every",
        ValueType::Int {
            min: 1,
            max: UNBOUNDED,
        },
    ),
    key(
        "train.checkpoint_every",
        ValueType::Int {
            min: 1,
            max: UNBOUNDED,
        },
    ),
    key(
        "train.epochs",
        ValueType::Int {
            min: 1,
            max: MAX_STEPS,
        },
    ),
    key("train.clip_grad_norm", ValueType::Float(POS)),
    key("train.label_smoothing", ValueType::Float(UNIT)),
    key("train.keep_best", ValueType::Bool),
    key("schedule.kind", ValueType::Enum(SCHEDULE_KINDS)),
    key(
        "schedule.warmup_steps",
        ValueType::Int {
            min: 0,
            max: MAX_STEPS,
        },
    ),
    for_kinds(
        "schedule.min_lr",
        ValueType::Float(NONNEG),
        &["cosine", "linear"],
    ),
    for_kinds(
        "schedule.step_size",
        ValueType::Int {
            min: 1,
            max: MAX_STEPS,
        },
        &["step"],
    ),
    for_kinds(
        "schedule.gamma",
        ValueType::Float(POS),
        &["step", "multistep", "exponential"],
    ),
    for_kinds(
        "schedule.milestones",
        ValueType::IntList {
            min: 1,
            max: MAX_STEPS,
        },
        &["multistep"],
    ),
];

/// The tables of the schema (`data`, `model`, ...).
pub fn tables() -> Vec<&'static str> {
    let mut t: Vec<&str> = KEYS
        .iter()
        .filter_map(|k| k.path.split_once('.').map(|(t, _)| t))
        .collect();
    t.dedup();
    t
}

pub fn find(path: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.path == path)
}

/// The closest known key to a mistyped one, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::normalized_damerau_levenshtein(wrong, c), c))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

pub fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
