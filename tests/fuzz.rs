//! Property tests: the parsers and the IDX decoder never panic, whatever the input. Each input
//! either parses or yields an error. Both arbitrary text and mutations of the real files are used
//! (mutations reach deeper than random bytes). Runs on stable Rust; cargo-fuzz would need
//! nightly. `PROPTEST_CASES=N` changes the number of cases per test.

use proptest::prelude::*;
use runner::config::{self, overrides};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn file(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()
}

/// Values that stress types and ranges when spliced into a TOML file.
const NASTY: &[&str] = &[
    "-1",
    "0",
    "1e400",
    "-1e400",
    "nan",
    "inf",
    "-inf",
    "\"\"",
    "\"../x\"",
    "\"a/b\"",
    "\"\\u0000\"",
    "[]",
    "[0]",
    "[1, -2]",
    "[[1]]",
    "{}",
    "{ a = 1 }",
    "true",
    "9223372036854775807",
    "18446744073709551616",
    "1.5",
    "\"adam\"",
    "\"mlp\"",
    "'''x'''",
    "2024-01-01",
    "[1,",
    "=",
];

/// A mutation of `base`: replace the value of a line, delete a line, duplicate a line, or
/// insert raw text.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let lines = base.lines().count().max(1);
    (0..lines, 0..4u8, 0..NASTY.len(), "\\PC{0,12}").prop_map(move |(line, kind, nasty, raw)| {
        let mut out: Vec<String> = base.lines().map(str::to_string).collect();
        match kind {
            0 => {
                if let Some((key, _)) = out[line].split_once('=') {
                    out[line] = format!("{key}= {}", NASTY[nasty]);
                }
            }
            1 => {
                out.remove(line);
            }
            2 => {
                let l = out[line].clone();
                out.insert(line, l);
            }
            _ => out.insert(line, raw),
        }
        out.join("\n")
    })
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn parse_experiment(text: &str) {
    let _ = config::parse_str(text, "fuzz.toml", Path::new(ROOT), &[]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn experiment_parser_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        parse_experiment(&text);
    }

    #[test]
    fn experiment_parser_never_panics_on_mutated_experiments(
        text in prop_oneof![
            mutated(leak(file("experiments/baseline.toml"))),
            mutated(leak(file("experiments/mlp.toml"))),
            mutated(leak(file("experiments/smoke.toml"))),
        ]
    ) {
        parse_experiment(&text);
    }

    #[test]
    fn override_parser_never_panics(arg in "\\PC{0,60}", nasty in 0..NASTY.len(), key in prop::sample::select(vec![
        "seed", "optimizer.lr", "model.hidden", "model.kind", "train.steps", "train.batch_size",
        "optimizer.kind", "data.dir", "name", "model.conv", "unknown.key",
    ])) {
        let _ = overrides::parse(&arg);
        // Well-formed KEY=VALUE pairs go on to be applied to a real experiment.
        if let Ok(ov) = overrides::parse(&format!("{key}={}", NASTY[nasty])) {
            let _ = config::parse_str(&file("experiments/mlp.toml"), "mlp.toml", Path::new(ROOT), &[ov]);
        }
    }

    #[test]
    fn sweep_parser_never_panics(
        text in prop_oneof![
            "\\PC{0,200}",
            mutated(leak(file("experiments/sweeps/lr.toml"))),
            mutated(leak(file("experiments/sweeps/smoke-asha.toml"))),
            mutated(leak(file("experiments/sweeps/width.toml"))),
        ]
    ) {
        let _ = runner::sweep::spec::parse(&text, &Path::new(ROOT).join("experiments/sweeps/fuzz.toml"));
    }

    #[test]
    fn idx_decoder_never_panics(
        magic in prop::sample::select(vec![0x0803u32, 0x0801, 0, 0xffff_ffff]),
        dims in prop::collection::vec(any::<u32>(), 0..4),
        body in prop::collection::vec(any::<u8>(), 0..64),
        expected in prop::sample::select(vec![0x0803u32, 0x0801]),
    ) {
        let mut raw = magic.to_be_bytes().to_vec();
        for d in &dims {
            // Small counts most of the time, so that headers and bodies can agree.
            raw.extend_from_slice(&(d % 9).to_be_bytes());
        }
        raw.extend_from_slice(&body);
        let _ = runner::data::idx::decode(&raw, expected);
        let _ = runner::data::idx::decode(&body, expected);
    }
}
