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
            init: Init::Glorot
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
        ("lr = 1e-3", "lr = nan", "optimizer.lr", "finite"),
        ("lr = 1e-3", "lr = inf", "optimizer.lr", "finite"),
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
