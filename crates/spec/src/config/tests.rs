use super::*;

const MLP: &str = r#"
name = "mlp"
seed = 0
[model]
kind = "mlp"
hidden = [256]
[optimizer]
kind = "adam"
lr = 1e-3
[train]
batch_size = 64
steps = 3000
eval_every = 500
"#;

fn parse(text: &str) -> Result<Experiment> {
    parse_str(text, "exp.toml", Path::new("."), &[])
}

fn parse_err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn with_sets(text: &str, sets: &[&str]) -> Result<Experiment> {
    let ovs: Vec<Override> = sets.iter().map(|s| overrides::parse(s).unwrap()).collect();
    parse_str(text, "exp.toml", Path::new("."), &ovs)
}

#[test]
fn defaults_are_filled_in() {
    let exp =
        parse("name = \"x\"\n[model]\nkind = \"mlp\"\n[optimizer]\nkind = \"adam\"\nlr = 0.001\n")
            .unwrap();
    assert_eq!(exp.seed, 0);
    assert_eq!(exp.train, TrainConfig::default());
    assert_eq!(
        exp.model,
        ModelConfig::Mlp {
            hidden: vec![256],
            init: Init::Glorot,
            activation: Default::default(),
            dropout: 0.0,
        }
    );
    assert_eq!(
        exp.optimizer,
        OptimizerConfig::Adam {
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0
        }
    );
}

#[test]
fn canonical_form_round_trips_to_the_same_hash() {
    let exp = parse(MLP).unwrap();
    let canonical = exp.canonical_toml();
    let again = parse(&canonical).unwrap();
    assert_eq!(exp, again);
    assert_eq!(exp.hash("d"), again.hash("d"));
    assert_eq!(canonical, again.canonical_toml());
}

#[test]
fn formatting_and_comments_do_not_change_the_hash() {
    let reformatted = r#"
# a comment
name="mlp"
optimizer = { kind = "adam", lr = 0.001 }   # inline table, other number spelling
[train]
eval_every=500
steps = 3_000
[model]
hidden=[ 256 ]
kind="mlp"
"#;
    assert_eq!(
        parse(MLP).unwrap().hash("d"),
        parse(reformatted).unwrap().hash("d")
    );
}

#[test]
fn any_changed_value_changes_the_hash() {
    let base = parse(MLP).unwrap().hash("d");
    for set in [
        "seed=1",
        "optimizer.lr=0.002",
        "train.steps=3001",
        "model.hidden=[128]",
        "model.init=pytorch",
    ] {
        assert_ne!(with_sets(MLP, &[set]).unwrap().hash("d"), base, "{set}");
    }
    assert_ne!(parse(MLP).unwrap().hash("other dataset"), base);
}

#[test]
fn overrides_are_part_of_the_resolved_config() {
    let exp = with_sets(MLP, &["optimizer.lr=3e-4", "train.steps=200"]).unwrap();
    assert_eq!(exp.optimizer.lr(), 3e-4);
    assert_eq!(exp.train.steps, 200);
    let exp = with_sets(MLP, &["optimizer.kind=sgd", "optimizer.momentum=0.9"]).unwrap();
    assert!(matches!(exp.optimizer, OptimizerConfig::Sgd { momentum, .. } if momentum == 0.9));
}

#[test]
fn unknown_keys_name_the_path_and_suggest() {
    let msg = parse_err(&MLP.replace("lr = 1e-3", "lrr = 1e-3\nlr = 1e-3"));
    assert!(
        msg.contains("exp.toml")
            && msg.contains("'optimizer.lrr'")
            && msg.contains("did you mean 'optimizer.lr'"),
        "{msg}"
    );
    let msg = parse_err(&MLP.replace("[train]", "[train]\nlr = 1"));
    assert!(
        msg.contains("'train.lr'") && msg.contains("did you mean 'optimizer.lr'"),
        "{msg}"
    );
    let msg = parse_err(&format!("{MLP}\n[trian]\nsteps = 1\n"));
    assert!(
        msg.contains("'trian'") && msg.contains("did you mean 'train'"),
        "{msg}"
    );
}

#[test]
fn wrong_types_and_ranges_are_reported_with_the_allowed_values() {
    let cases = [
        ("lr = 1e-3", "lr = \"fast\"", "optimizer.lr", "> 0"),
        ("lr = 1e-3", "lr = -1.0", "optimizer.lr", "> 0"),
        ("lr = 1e-3", "lr = 0", "optimizer.lr", "> 0"),
        ("lr = 1e-3", "lr = nan", "optimizer.lr", "f32 holds"),
        ("lr = 1e-3", "lr = inf", "optimizer.lr", "f32 holds"),
        // Issue 35, finding 8: finite in f64, infinite (or zero) in f32, where training reads it.
        ("lr = 1e-3", "lr = 1e300", "optimizer.lr", "f32 holds"),
        ("lr = 1e-3", "lr = 1e-300", "optimizer.lr", "f32 holds"),
        (
            "batch_size = 64",
            "batch_size = 0",
            "train.batch_size",
            ">= 1",
        ),
        ("steps = 3000", "steps = 0", "train.steps", "1..="),
        (
            "steps = 3000",
            "steps = 99999999999999",
            "train.steps",
            "1..=",
        ),
        (
            "kind = \"adam\"",
            "kind = \"adamx\"",
            "optimizer.kind",
            "\"sgd\"",
        ),
        (
            "hidden = [256]",
            "hidden = [256, \"x\"]",
            "model.hidden",
            "list of integers",
        ),
        ("seed = 0", "seed = -3", "seed", ">= 0"),
    ];
    for (from, to, key, allowed) in cases {
        let msg = parse_err(&MLP.replace(from, to));
        assert!(
            msg.contains(&format!("'{key}'")) && msg.contains(allowed),
            "{to}: {msg}"
        );
    }
}

#[test]
fn kind_specific_keys_are_checked_against_the_kind() {
    let msg = parse_err(&MLP.replace("lr = 1e-3", "lr = 1e-3\nmomentum = 0.9"));
    assert!(
        msg.contains("'optimizer.momentum'") && msg.contains("adam") && msg.contains("beta1"),
        "{msg}"
    );
    let msg = parse_err(&MLP.replace("hidden = [256]", "hidden = [256]\nconv = [8]"));
    assert!(msg.contains("'model.conv'") && msg.contains("mlp"), "{msg}");
}

#[test]
fn missing_required_keys_and_bad_tables() {
    let msg = parse_err(&MLP.replace("lr = 1e-3", ""));
    assert!(
        msg.contains("'optimizer.lr'") && msg.contains("required"),
        "{msg}"
    );
    let msg = parse_err("name = \"x\"\nmodel = 3\n");
    assert!(msg.contains("'model'") && msg.contains("table"), "{msg}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let msg = parse_err("name = \"x\"\n[model\nkind = 1\n");
    assert!(
        msg.contains("invalid TOML") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn names_that_cannot_be_directories_are_rejected() {
    for bad in ["", "a/b", "..", "a..b", ".hidden", "tab\there", "a\\\\b"] {
        let msg = parse_err(&MLP.replace("name = \"mlp\"", &format!("name = \"{bad}\"")));
        assert!(
            msg.contains("'name'") && msg.contains("A-Z a-z 0-9"),
            "{bad:?}: {msg}"
        );
    }
}

#[test]
fn an_override_that_cannot_apply_to_the_kind_is_an_error() {
    let with_beta = MLP.replace("lr = 1e-3", "lr = 1e-3\nbeta1 = 0.8");
    let msg = with_sets(&with_beta, &["optimizer.kind=sgd"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("'optimizer.beta1'") && msg.contains("\"sgd\""),
        "{msg}"
    );
    let msg = with_sets(MLP, &["optimizer.nesterov=true", "optimizer.kind=sgd"])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("optimizer.nesterov") && msg.contains("momentum"),
        "{msg}"
    );
}

/// A valid value of `spec`'s type, as TOML text (`kind` for the table's `kind` key).
fn sample_value(spec: &schema::KeySpec, kind: &str) -> String {
    use schema::{FloatRange, ValueType};
    match spec.ty {
        _ if spec.path.ends_with(".kind") => format!("\"{kind}\""),
        // What train.epochs = 3 derives: 3 epochs of 60000 - 3 held-out images at batch 3.
        _ if spec.path == "train.steps" => "59997".into(),
        ValueType::Int { min, .. } => (min.max(1) + 2).to_string(),
        ValueType::Float(FloatRange::UnitHalfOpen) => "0.5".into(),
        ValueType::Float(_) => "0.25".into(),
        // Not the default where the canonical form leaves the default out.
        ValueType::Bool => (spec.path != "model.pool").to_string(),
        ValueType::Str => "\"somewhere\"".into(),
        // The last: the first is the default of some keys, which the canonical form leaves out.
        ValueType::Enum(allowed) => format!("\"{}\"", allowed[allowed.len() - 1]),
        ValueType::IntList { min, .. } => format!("[{}]", min.max(8)),
        ValueType::PerBlock(inner) => sample_value(
            &schema::KeySpec {
                ty: *inner,
                ..*spec
            },
            kind,
        ),
    }
}

/// The schema table and the serde structs are one vocabulary: for every model, optimizer and
/// schedule kind, an experiment setting every key that kind accepts resolves to a canonical
/// config with exactly those keys (none dropped by the structs, none they add that the schema
/// lacks).
#[test]
fn schema_keys_and_config_structs_agree() {
    let kinds = schema::MODEL_KINDS.iter().flat_map(|m| {
        schema::OPTIMIZER_KINDS
            .iter()
            .flat_map(move |o| schema::SCHEDULE_KINDS.iter().map(move |s| (m, o, s)))
    });
    for (model, opt, sched) in kinds {
        {
            let kind_of = |table: &str| match table {
                "model" => *model,
                "optimizer" => *opt,
                "schedule" => *sched,
                _ => "",
            };
            let accepted: Vec<&schema::KeySpec> = schema::KEYS
                .iter()
                .filter(|k| {
                    let table = k.path.split_once('.').map_or("", |(t, _)| t);
                    k.kinds.is_none_or(|kinds| kinds.contains(&kind_of(table)))
                })
                .collect();
            let mut text = String::new();
            let mut table = "";
            for k in &accepted {
                let (t, leaf) = k.path.split_once('.').unwrap_or(("", k.path));
                if t != table {
                    text += &format!("[{t}]\n");
                    table = t;
                }
                text += &format!("{leaf} = {}\n", sample_value(k, kind_of(t)));
            }
            let exp = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let canonical: toml::Table = toml::from_str(&exp.canonical_toml()).unwrap();
            let mut leaves = Vec::new();
            for (key, value) in &canonical {
                match value.as_table() {
                    Some(t) => leaves.extend(t.keys().map(|k| format!("{key}.{k}"))),
                    None => leaves.push(key.clone()),
                }
            }
            leaves.sort();
            let mut want: Vec<String> = accepted.iter().map(|k| k.path.to_string()).collect();
            want.sort();
            assert_eq!(leaves, want, "{model} + {opt} + {sched}");
        }
    }
}

/// Every schema key is documented in the README's key table, and the table documents nothing
/// else.
#[test]
fn readme_key_table_lists_exactly_the_schema_keys() {
    let readme = include_str!("../../../../README.md");
    let table_rows = readme
        .lines()
        .skip_while(|l| !l.starts_with("| key | type"))
        .skip(2)
        .take_while(|l| l.starts_with('|'));
    let mut documented = Vec::new();
    for line in table_rows {
        let cell = line.split('|').nth(1).unwrap_or("");
        let mut table = "";
        for key in cell.split(',').map(|k| k.trim().trim_matches('`')) {
            let full = match key.split_once('.') {
                Some((t, _)) => {
                    table = t;
                    key.to_string()
                }
                None if table.is_empty() => key.to_string(),
                None => format!("{table}.{key}"),
            };
            documented.push(full);
        }
    }
    documented.sort();
    let mut keys: Vec<String> = schema::KEYS.iter().map(|k| k.path.to_string()).collect();
    keys.sort();
    assert_eq!(documented, keys);
}

/// Per-block settings: one value for every block keeps the canonical form (and hash) of before;
/// a list must have one value per block; `pool` is left out of the canonical form when every
/// block pools.
#[test]
fn per_block_cnn_settings() {
    let cnn = |extra: &str| {
        parse(&format!(
            "name = \"c\"\n[model]\nkind = \"cnn\"\nconv = [8, 16]\n{extra}\n[optimizer]\n\
             kind = \"adam\"\nlr = 0.001\n"
        ))
    };
    let plain = cnn("kernel = 5").unwrap();
    assert!(!plain.canonical_toml().contains("pool"));
    assert!(plain.canonical_toml().contains("kernel = 5\n"));
    assert_eq!(
        cnn("pool = true").unwrap().hash("d"),
        cnn("").unwrap().hash("d")
    );
    let listed =
        cnn("kernel = [5, 3]\npadding = [\"valid\", \"same\"]\npool = [true, false]").unwrap();
    assert!(listed.canonical_toml().contains("pool = [true, false]"));
    let err = cnn("kernel = [5, 3, 3]").unwrap_err().to_string();
    assert!(
        err.contains("model.kernel") && err.contains("3 values for 2 conv blocks"),
        "{err}"
    );
    let err = cnn("kernel = [5, 4]").unwrap_err().to_string();
    assert!(err.contains("odd"), "{err}");
    let err = cnn("padding = [\"valid\", \"wide\"]")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.padding") && err.contains("one per block"),
        "{err}"
    );
    let set = with_sets(
        "name = \"c\"\n[model]\nkind = \"cnn\"\n[optimizer]\nkind = \"adam\"\nlr = 0.001\n",
        &["model.kernel=[5,3]", "model.pool=[true,false]"],
    )
    .unwrap();
    assert!(set.canonical_toml().contains("kernel = [5, 3]"));
}

/// The new training keys at their defaults leave the canonical form (and so every existing
/// run's hash) as it was; set to anything else, they change it.
#[test]
fn training_keys_at_their_defaults_keep_the_hash() {
    let plain = parse(MLP).unwrap();
    let defaults = [
        "model.activation=\"relu\"",
        "model.dropout=0",
        "train.label_smoothing=0.0",
        "train.keep_best=false",
        "data.validation=0",
    ];
    let same = with_sets(MLP, &defaults).unwrap();
    assert_eq!(same.canonical_toml(), plain.canonical_toml());
    for set in [
        "model.activation=\"gelu\"",
        "model.dropout=0.5",
        "train.label_smoothing=0.1",
        "train.clip_grad_norm=1.0",
        "data.validation=5000",
        "train.epochs=1",
    ] {
        let changed = with_sets(MLP, &[set]).unwrap();
        assert_ne!(changed.hash("d"), plain.hash("d"), "{set}");
    }
}

/// `train.epochs` derives the steps from the training images left after the hold-out, with the
/// last partial batch dropped; a contradicting `train.steps` is an error naming both keys.
#[test]
fn epochs_set_the_steps() {
    let no_steps = MLP.replace("steps = 3000\n", "");
    let exp = with_sets(&no_steps, &["train.epochs=2"]).unwrap();
    assert_eq!(exp.train.steps, 2 * (60_000 / 64)); // 937 full batches of 64 per epoch
    let exp = with_sets(&no_steps, &["train.epochs=2", "data.validation=5000"]).unwrap();
    assert_eq!(exp.train.steps, 2 * (55_000 / 64));
    // The resolved form (epochs and the steps they make) reads back to itself.
    assert_eq!(parse(&exp.canonical_toml()).unwrap(), exp);
    // On the command line, either key wins over the file's other one.
    assert_eq!(
        with_sets(MLP, &["train.epochs=2"]).unwrap().train.steps,
        1874
    );
    let exp = with_sets(&exp.canonical_toml(), &["train.steps=10"]).unwrap();
    assert_eq!((exp.train.steps, exp.train.epochs), (10, None));
    // In one file, they must agree.
    let err = parse(&MLP.replace("steps = 3000", "steps = 3000\nepochs = 2"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key 'train.steps'")
            && err.contains("train.epochs = 2")
            && err.contains("1874"),
        "{err}"
    );
}

#[test]
fn validation_and_keep_best_are_checked() {
    let err = with_sets(MLP, &["train.keep_best=true"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.keep_best") && err.contains("data.validation"),
        "{err}"
    );
    assert!(with_sets(MLP, &["train.keep_best=true", "data.validation=100"]).is_ok());
    let err = with_sets(MLP, &["data.validation=59950"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("data.validation") && err.contains("batch of 64"),
        "{err}"
    );
    let err = with_sets(MLP, &["model.activation=\"swish\""])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"leaky_relu\"") && err.contains("\"gelu\""),
        "{err}"
    );
    let err = with_sets(MLP, &["model.dropout=1.0"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.dropout") && err.contains("[0, 1)"),
        "{err}"
    );
}

/// An exact float spelling of an integer is that integer, in a file as on the command line.
#[test]
fn integers_accept_exact_float_spellings() {
    let exp = parse(&MLP.replace("steps = 3000", "steps = 1e3")).unwrap();
    assert_eq!(exp.train.steps, 1000);
    assert_eq!(exp, with_sets(MLP, &["train.steps=1e3"]).unwrap());
    let err = parse_err(&MLP.replace("steps = 3000", "steps = 1.5"));
    assert!(err.contains("train.steps") && err.contains("1.5"), "{err}");
}

/// Every mistake of a file is reported at once, one per line, each naming its key.
#[test]
fn all_problems_of_a_file_are_reported_together() {
    let text = MLP
        .replace("lr = 1e-3", "lr = -1\nbeta3 = 0.9")
        .replace("batch_size = 64", "batch_size = \"big\"");
    let err = parse_err(&text);
    assert!(err.starts_with("3 problems:"), "{err}");
    for key in ["optimizer.lr", "optimizer.beta3", "train.batch_size"] {
        assert!(err.contains(&format!("key '{key}'")), "{key}: {err}");
    }
    // One mistake reads as before: one message.
    let err = parse_err(&MLP.replace("lr = 1e-3", "lr = -1"));
    assert!(err.starts_with("exp.toml: key 'optimizer.lr'"), "{err}");
}

/// Problems found across keys are reported together too.
#[test]
fn cross_key_problems_are_reported_together() {
    let err = with_sets(
        MLP,
        &[
            "train.keep_best=true",
            "data.dataset=\"fashion-mnist\"",
            "name=\"a/b\"",
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("3 problems:"), "{err}");
    for key in ["train.keep_best", "data.dataset", "'name'"] {
        assert!(err.contains(key), "{key}: {err}");
    }
}

/// Each default the canonical form leaves out is that key's default: setting it explicitly
/// changes nothing.
#[test]
fn omitted_defaults_are_the_defaults() {
    const CNN: &str =
        "name = \"c\"\n[model]\nkind = \"cnn\"\n[optimizer]\nkind = \"adam\"\nlr = 0.001\n";
    for (key, value, kind) in OMITTED_DEFAULTS {
        let base = if *kind == Some("cnn") { CNN } else { MLP };
        let set = format!("{key}={value}");
        let exp = with_sets(base, &[&set]).unwrap_or_else(|e| panic!("{set}: {e}"));
        assert_eq!(
            exp.canonical_toml(),
            parse(base).unwrap().canonical_toml(),
            "{set}"
        );
    }
}
