//! The bad-input table: every case runs the real binary and checks the exit code, that the
//! message names what is wrong (file, key, value) and what is allowed, and that nothing
//! panicked. Cases that need a run directory or data files build them in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_runner");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

const MLP: &str = r#"name = "mlp"
seed = 0
[model]
kind = "mlp"
hidden = [32]
[optimizer]
kind = "sgd"
lr = 0.1
[train]
batch_size = 32
steps = 5
eval_every = 5
"#;

/// A dataset case: name, the file to damage, how, and what the message must say.
type DataCase = (&'static str, &'static str, fn(&mut Vec<u8>), &'static str);

struct Case {
    name: &'static str,
    /// Experiment text written to `exp.toml` in the temp dir (None: none written).
    experiment: Option<String>,
    /// Sweep text written to `sw.toml` (None: none written).
    sweep: Option<String>,
    args: Vec<String>,
    code: i32,
    /// Every fragment must appear in stderr.
    says: Vec<&'static str>,
}

fn case(name: &'static str, text: &str, args: &[&str], code: i32, says: &[&'static str]) -> Case {
    Case {
        name,
        experiment: Some(text.to_string()),
        sweep: None,
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        says: says.to_vec(),
    }
}

/// `runner sweep sw.toml --dry-run` on a sweep file over `exp.toml` (the MLP).
fn sweep_case(name: &'static str, text: &str, says: &[&'static str]) -> Case {
    Case {
        sweep: Some(text.to_string()),
        ..case(name, MLP, &["sweep", "sw.toml", "--dry-run"], 2, says)
    }
}

/// MLP with one line replaced (`from` must occur).
fn with(from: &str, to: &str) -> String {
    assert!(MLP.contains(from), "{from}");
    MLP.replacen(from, to, 1)
}

fn run(dir: &Path, c: &Case) -> (i32, String) {
    run_with(dir, c, Command::new(BIN))
}

/// Runs case `c` with a prepared command (extra environment, another user, limits).
fn run_with(dir: &Path, c: &Case, mut cmd: Command) -> (i32, String) {
    if let Some(text) = &c.experiment {
        std::fs::write(dir.join("exp.toml"), text).unwrap();
    }
    if let Some(text) = &c.sweep {
        std::fs::write(dir.join("sw.toml"), text).unwrap();
    }
    let out = cmd
        .args(&c.args)
        .current_dir(dir)
        .env("RUNNER_BUILD", "never")
        .env("RUNNER_RUNS_DIR", dir.join("runs"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of the MNIST files with `edit` applied to one of them (decompressed bytes).
fn data_copy(dir: &Path, file: &str, edit: fn(&mut Vec<u8>)) -> PathBuf {
    use std::io::{Read, Write};
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        let src = Path::new(ROOT).join("data/mnist").join(f);
        if f != file {
            std::fs::copy(&src, data.join(f)).unwrap();
            continue;
        }
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&src).unwrap())
            .read_to_end(&mut raw)
            .unwrap();
        edit(&mut raw);
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(data.join(f)).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap();
    }
    data
}

#[test]
fn every_bad_input_fails_cleanly_with_a_helpful_message() {
    let run_exp = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["run", "exp.toml"];
        v.extend_from_slice(extra);
        v
    };
    let r = run_exp(&[]);
    let cases = vec![
        // Malformed TOML, with line and column.
        case(
            "toml syntax",
            &with("lr = 0.1", "lr = = 0.1"),
            &r,
            2,
            &["exp.toml", "invalid TOML", "line 8"],
        ),
        case(
            "unclosed table",
            &with("[train]", "[train"),
            &r,
            2,
            &["exp.toml", "invalid TOML"],
        ),
        case(
            "not utf-8 free text",
            "\u{0}\u{1}garbage",
            &r,
            2,
            &["exp.toml"],
        ),
        // Unknown keys, with did-you-mean.
        case(
            "typo key",
            &with("lr = 0.1", "lrr = 0.1"),
            &r,
            2,
            &["optimizer.lrr", "optimizer.lr"],
        ),
        case(
            "typo table",
            &with("[train]", "[trian]"),
            &r,
            2,
            &["trian", "train"],
        ),
        case(
            "key of other kind",
            &with("lr = 0.1", "lr = 0.1\nbeta1 = 0.9"),
            &r,
            2,
            &["optimizer.beta1", "\"adam\", \"adamw\"", "momentum"],
        ),
        // Wrong types.
        case(
            "lr string",
            &with("lr = 0.1", "lr = \"fast\""),
            &r,
            2,
            &["optimizer.lr", "number"],
        ),
        case(
            "steps float",
            &with("steps = 5", "steps = 5.5"),
            &r,
            2,
            &["train.steps", "integer"],
        ),
        case(
            "hidden scalar",
            &with("hidden = [32]", "hidden = 32"),
            &r,
            2,
            &["model.hidden", "list"],
        ),
        case(
            "kind unknown",
            &with("kind = \"sgd\"", "kind = \"lbfgs\""),
            &r,
            2,
            &["optimizer.kind", "\"adam\""],
        ),
        // Out of range.
        case(
            "lr zero",
            &with("lr = 0.1", "lr = 0"),
            &r,
            2,
            &["optimizer.lr", "> 0"],
        ),
        case(
            "lr negative",
            &with("lr = 0.1", "lr = -1e-3"),
            &r,
            2,
            &["optimizer.lr", "> 0"],
        ),
        case(
            "lr nan",
            &with("lr = 0.1", "lr = nan"),
            &r,
            2,
            &["optimizer.lr", "f32 holds"],
        ),
        case(
            "lr inf",
            &with("lr = 0.1", "lr = inf"),
            &r,
            2,
            &["optimizer.lr", "f32 holds"],
        ),
        // Issue 35, finding 8: 5 million widths cost 1.2 GB and 4.3 s before "at most 8".
        case(
            "hidden with 5 million entries",
            &with(
                "hidden = [32]",
                &format!("hidden = [{}]", vec!["32"; 5_000_000].join(",")),
            ),
            &r,
            2,
            &["exp.toml", "larger than 1024 KiB"],
        ),
        // Issue 35, finding 8: finite as f64, infinite as the f32 training reads.
        case(
            "lr 1e300",
            &with("lr = 0.1", "lr = 1e300"),
            &r,
            2,
            &["optimizer.lr", "f32 holds", "3.4e38"],
        ),
        case(
            "batch zero",
            &with("batch_size = 32", "batch_size = 0"),
            &r,
            2,
            &["train.batch_size", ">= 1"],
        ),
        case(
            "batch too large",
            &with("batch_size = 32", "batch_size = 60001"),
            &r,
            2,
            &["train.batch_size", "60000"],
        ),
        case(
            "steps zero",
            &with("steps = 5", "steps = 0"),
            &r,
            2,
            &["train.steps", "1..="],
        ),
        case(
            "steps overflow",
            &with("steps = 5", "steps = 99999999999999999999"),
            &r,
            2,
            &["exp.toml"],
        ),
        case(
            "momentum one",
            &with("lr = 0.1", "lr = 0.1\nmomentum = 1.0"),
            &r,
            2,
            &["optimizer.momentum", "[0, 1)"],
        ),
        case(
            "seed negative",
            &with("seed = 0", "seed = -1"),
            &r,
            2,
            &["seed", ">= 0"],
        ),
        // Networks: not compiled in (named, with the command that adds them), or not buildable.
        case(
            "width not compiled in",
            &with("hidden = [32]", "hidden = [33]"),
            &r,
            2,
            &[
                "exp.toml",
                "hidden = [33]",
                "not compiled into this binary",
                "RUNNER_EXPERIMENTS=",
                "cargo install --path",
            ],
        ),
        case(
            "depth not compiled in",
            &with("hidden = [32]", "hidden = [32, 32, 32]"),
            &r,
            2,
            &["hidden = [32, 32, 32]", "not compiled into this binary"],
        ),
        case(
            "nine hidden layers",
            &with("hidden = [32]", "hidden = [8, 8, 8, 8, 8, 8, 8, 8, 8]"),
            &r,
            2,
            &["exp.toml", "model.hidden", "at most 8"],
        ),
        case(
            "width past the limit",
            &with("hidden = [32]", "hidden = [20000]"),
            &r,
            2,
            &["exp.toml", "20000", "1..=16384"],
        ),
        // Names.
        case(
            "name slash",
            &with("name = \"mlp\"", "name = \"a/b\""),
            &r,
            2,
            &["name", "a/b"],
        ),
        case(
            "name dotdot",
            &with("name = \"mlp\"", "name = \"..\""),
            &r,
            2,
            &["name"],
        ),
        case(
            "name control",
            &with("name = \"mlp\"", "name = \"a\\u0007b\""),
            &r,
            2,
            &["name"],
        ),
        case(
            "name empty",
            &with("name = \"mlp\"", "name = \"\""),
            &r,
            2,
            &["name"],
        ),
        case(
            "name missing",
            &with("name = \"mlp\"\n", ""),
            &r,
            2,
            &["name", "required"],
        ),
        // --set.
        case(
            "set unknown key",
            MLP,
            &run_exp(&["--set", "optimizer.lrate=1"]),
            2,
            &["optimizer.lrate", "optimizer.lr"],
        ),
        case(
            "set bad value",
            MLP,
            &run_exp(&["--set", "train.steps=abc"]),
            2,
            &["train.steps", "integer"],
        ),
        case(
            "set missing =",
            MLP,
            &run_exp(&["--set", "train.steps"]),
            2,
            &["KEY=VALUE"],
        ),
        case(
            "set out of range",
            MLP,
            &run_exp(&["--set", "optimizer.lr=-1"]),
            2,
            &["optimizer.lr", "> 0"],
        ),
        // One limit everywhere (issue 34: the type check said 1..=1048576, the README 16384).
        case(
            "set width past the limit",
            MLP,
            &run_exp(&["--set", "model.hidden=[2000000]"]),
            2,
            &["model.hidden", "16384"],
        ),
        // Files.
        case(
            "missing file",
            MLP,
            &["run", "nope.toml"],
            2,
            &["nope.toml"],
        ),
        case("directory as file", MLP, &["run", "."], 2, &["."]),
        // Data directory.
        case(
            "data dir missing",
            &with("seed = 0", "seed = 0\n[data]\ndir = \"no-such-dir\""),
            &r,
            3,
            &["no-such-dir"],
        ),
        // Report commands on things that are not runs.
        case(
            "verify non-run",
            MLP,
            &["verify", "."],
            2,
            &["not a run directory"],
        ),
        case(
            "verify steps 0",
            MLP,
            &["verify", ".", "--steps", "0"],
            2,
            &["not a run directory"],
        ),
        case(
            "resume non-run",
            MLP,
            &["resume", "."],
            2,
            &["not a run directory"],
        ),
        case(
            "compare nothing",
            MLP,
            &["compare", "no-such-run"],
            2,
            &["no-such-run"],
        ),
        case(
            "plot unknown run",
            MLP,
            &["plot", "x", "-o", "a.svg"],
            2,
            &["'x' matches no run"],
        ),
        case(
            "sweep missing file",
            MLP,
            &["sweep", "nope-sweep.toml"],
            2,
            &["nope-sweep.toml"],
        ),
        case(
            "sweep bad toml",
            MLP,
            &["sweep", "exp.toml"],
            2,
            &["exp.toml"],
        ),
        // Sweep files: each kind of mistake.
        // Issue 35, finding 1: these reached 15.6 GB and 9.7 GB of memory in 30 s.
        sweep_case(
            "sweep of a billion random trials",
            "name = \"s\"\nbase = \"exp.toml\"\n[random]\ntrials = 1000000000\n\
             \"optimizer.lr\" = { log_uniform = [1e-3, 0.5] }\n",
            &["sw.toml", "1000000000 trials", "at most 100000"],
        ),
        sweep_case(
            "sweep of a 1000 x 1000 x 1000 grid",
            &format!(
                "name = \"s\"\nbase = \"exp.toml\"\n[grid]\n\"optimizer.lr\" = [{0}]\n\
                 \"seed\" = [{1}]\n\"train.batch_size\" = [{1}]\n",
                (1..=1000).map(|i| format!("{}.0", i)).collect::<Vec<_>>().join(","),
                (1..=1000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            ),
            &["sw.toml", "1000000000 trials", "grid 'optimizer.lr' 1000 x"],
        ),
        sweep_case(
            "sweep typo key",
            "name = \"s\"\nbase = \"exp.toml\"\nseed = [1]\n",
            &["sw.toml", "'seed'", "did you mean 'seeds'"],
        ),
        sweep_case(
            "sweep name missing",
            "base = \"exp.toml\"\nseeds = [1]\n",
            &["sw.toml", "'name' is missing"],
        ),
        sweep_case(
            "sweep name path",
            "name = \"a/b\"\nbase = \"exp.toml\"\nseeds = [1]\n",
            &["sw.toml", "\"a/b\"", "A-Z a-z 0-9"],
        ),
        sweep_case(
            "sweep base missing",
            "name = \"s\"\nseeds = [1]\n",
            &["sw.toml", "'base' is missing"],
        ),
        sweep_case(
            "sweep base no file",
            "name = \"s\"\nbase = \"nope.toml\"\nseeds = [1]\n",
            &["sw.toml", "key 'base'", "nope.toml", "does not exist"],
        ),
        sweep_case(
            "sweep metric unknown",
            "name = \"s\"\nbase = \"exp.toml\"\nseeds = [1]\nmetric = \"f1\"\n",
            &["sw.toml", "'metric'", "\"f1\"", "\"test_accuracy\""],
        ),
        sweep_case(
            "sweep goal unknown",
            "name = \"s\"\nbase = \"exp.toml\"\nseeds = [1]\ngoal = \"up\"\n",
            &["sw.toml", "'goal'", "\"max\", \"min\""],
        ),
        sweep_case(
            "sweep seeds negative",
            "name = \"s\"\nbase = \"exp.toml\"\nseeds = [-1]\n",
            &["sw.toml", "'seeds'", "integers >= 0"],
        ),
        sweep_case(
            "sweep grid scalar",
            "name = \"s\"\nbase = \"exp.toml\"\n[grid]\n\"optimizer.lr\" = 0.1\n",
            &["sw.toml", "[grid]", "'optimizer.lr'", "a list of values"],
        ),
        sweep_case(
            "sweep grid empty",
            "name = \"s\"\nbase = \"exp.toml\"\n[grid]\n\"optimizer.lr\" = []\n",
            &["sw.toml", "[grid]", "the list is empty"],
        ),
        sweep_case(
            "sweep grid unknown key",
            "name = \"s\"\nbase = \"exp.toml\"\n[grid]\n\"optimizer.learning_rate\" = [0.1]\n",
            &["sw.toml", "'optimizer.learning_rate'", "lr"],
        ),
        sweep_case(
            "sweep grid bad value",
            "name = \"s\"\nbase = \"exp.toml\"\n[grid]\n\"optimizer.lr\" = [0.1, -1.0]\n",
            &["sw.toml", "'optimizer.lr'", "-1.0", "> 0"],
        ),
        sweep_case(
            "sweep zip lengths",
            "name = \"s\"\nbase = \"exp.toml\"\n[zip]\n\"optimizer.lr\" = [0.1, 0.2]\nseed = [1]\n",
            &["sw.toml", "[zip]", "equal lengths"],
        ),
        sweep_case(
            "sweep random no trials",
            "name = \"s\"\nbase = \"exp.toml\"\n[random]\n\"optimizer.lr\" = { uniform = [0.01, 0.1] }\n",
            &["sw.toml", "[random]", "'trials'", ">= 1"],
        ),
        sweep_case(
            "sweep random bad distribution",
            "name = \"s\"\nbase = \"exp.toml\"\n[random]\ntrials = 2\n\"optimizer.lr\" = \"x\"\n",
            &["sw.toml", "'optimizer.lr'", "log_uniform", "choice"],
        ),
        sweep_case(
            "sweep random reversed range",
            "name = \"s\"\nbase = \"exp.toml\"\n[random]\ntrials = 2\n\"optimizer.lr\" = { uniform = [0.1, 0.01] }\n",
            &["sw.toml", "'optimizer.lr'", "lo < hi"],
        ),
        sweep_case(
            "sweep set out of range",
            "name = \"s\"\nbase = \"exp.toml\"\nseeds = [1]\n[set]\n\"train.steps\" = 0\n",
            &["sw.toml", "[set]", "'train.steps'", "1..="],
        ),
        sweep_case(
            "sweep early stop kind",
            "name = \"s\"\nbase = \"exp.toml\"\nseeds = [1]\n[early_stop]\nkind = \"hyperband\"\n",
            &["sw.toml", "[early_stop]", "\"hyperband\"", "\"median\", \"asha\""],
        ),
        sweep_case(
            "sweep no axes",
            "name = \"s\"\nbase = \"exp.toml\"\n",
            &["sw.toml", "no axes", "[grid]"],
        ),
        case(
            "sweep status missing file",
            MLP,
            &["sweep", "status", "nope.toml"],
            2,
            &["nope.toml"],
        ),
        case(
            "base names a directory",
            &format!("base = \".\"\n{MLP}"),
            &["run", "exp.toml"],
            2,
            &["exp.toml", "key 'base'", "is a directory, not an experiment file"],
        ),
        case(
            "unknown command",
            MLP,
            &["train", "exp.toml"],
            2,
            &["train"],
        ),
    ];
    // Dataset files: each missing, wrong magic, truncated, inconsistent counts.
    let data_cases: Vec<DataCase> = vec![
        (
            "train images wrong magic",
            "train-images-idx3-ubyte.gz",
            |b| b[3] = 9,
            "magic",
        ),
        (
            "train labels truncated",
            "train-labels-idx1-ubyte.gz",
            |b| b.truncate(1000),
            "train-labels",
        ),
        (
            "test images truncated",
            "t10k-images-idx3-ubyte.gz",
            |b| b.truncate(5000),
            "t10k-images",
        ),
        (
            "test labels count",
            "t10k-labels-idx1-ubyte.gz",
            |b| {
                b[7] = 0x0f; // 9999 + ... labels claimed: count no longer matches images
                b.pop();
            },
            "t10k-labels",
        ),
        (
            "train images count zero",
            "train-images-idx3-ubyte.gz",
            |b| {
                b[4..8].copy_from_slice(&0u32.to_be_bytes());
                b.truncate(16);
            },
            "holds no images",
        ),
        (
            "train label out of range",
            "train-labels-idx1-ubyte.gz",
            |b| b[20] = 10,
            "label",
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for c in &cases {
        let (code, err) = run(tmp.path(), c);
        check(c.name, code, &err, c.code, &c.says, &mut failures);
    }
    let data_case_count = data_cases.len();
    for (name, file, edit, says) in data_cases {
        let dir = tempfile::tempdir().unwrap();
        let data = data_copy(dir.path(), file, edit);
        let text = with(
            "seed = 0",
            &format!("seed = 0\n[data]\ndir = \"{}\"", data.display()),
        );
        let c = case(name, &text, &r, 3, &[]);
        let (code, err) = run(dir.path(), &c);
        check(name, code, &err, 3, &[file, says], &mut failures);
    }
    // A dataset file that is a loop of symbolic links is bad data, not an I/O failure.
    {
        let dir = tempfile::tempdir().unwrap();
        let data = data_copy(dir.path(), "", |_| {});
        let looped = data.join("train-images-idx3-ubyte.gz");
        std::fs::remove_file(&looped).unwrap();
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let text = with(
            "seed = 0",
            &format!("seed = 0\n[data]\ndir = \"{}\"", data.display()),
        );
        let c = case("dataset symlink loop", &text, &r, 3, &[]);
        let (code, err) = run(dir.path(), &c);
        let says = ["train-images-idx3-ubyte.gz", "loop of symbolic links"];
        check(c.name, code, &err, 3, &says, &mut failures);
    }
    // Runs directory not writable.
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("runs"), "a file, not a directory").unwrap();
        let c = case(
            "runs dir is a file",
            MLP,
            &r,
            4,
            &["runs", "is not a directory", "--runs-dir"],
        );
        let (code, err) = run(dir.path(), &c);
        check(c.name, code, &err, 4, &c.says, &mut failures);
    }
    // The vendored copy (checksums enforced) with one pixel changed.
    {
        let dir = tempfile::tempdir().unwrap();
        let data = data_copy(dir.path(), "t10k-images-idx3-ubyte.gz", |b| b[5000] ^= 1);
        let c = case(
            "checksum mismatch",
            MLP,
            &r,
            3,
            &["t10k-images", "checksum mismatch", "expected"],
        );
        let mut cmd = Command::new(BIN);
        cmd.env("RUNNER_MNIST_DIR", &data);
        let (code, err) = run_with(dir.path(), &c, cmd);
        check(c.name, code, &err, 3, &c.says, &mut failures);
    }
    {
        // The vendored MNIST nowhere to be found: the error names where it looked and the way out.
        let dir = tempfile::tempdir().unwrap();
        let c = case(
            "vendored data missing",
            MLP,
            &r,
            3,
            &[
                "vendored MNIST",
                "nowhere-here",
                "RUNNER_MNIST_DIR",
                "train-images-idx3-ubyte.gz",
            ],
        );
        let mut cmd = Command::new(BIN);
        cmd.env("RUNNER_MNIST_DIR", dir.path().join("nowhere-here"));
        let (code, err) = run_with(dir.path(), &c, cmd);
        check(c.name, code, &err, 3, &c.says, &mut failures);
    }
    let total = cases.len() + data_case_count + 1 + 1 + 1 + 1;
    eprintln!("{total} bad-input cases, {} failed", failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(total >= 40);
}

fn check(name: &str, code: i32, err: &str, want: i32, says: &[&str], failures: &mut Vec<String>) {
    let mut why = Vec::new();
    if code != want {
        why.push(format!("exit {code}, expected {want}"));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        why.push("panicked".into());
    }
    for s in says {
        if !err.contains(s) {
            why.push(format!("message lacks {s:?}"));
        }
    }
    if !why.is_empty() {
        failures.push(format!("{name}: {}\n{}", why.join("; "), err.trim_end()));
    }
}

/// Whether this process runs as root (file permissions do not stop root).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn an_unreadable_experiment_file_is_named() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let set_mode = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(dir.path(), 0o777);
    let c = case("unreadable file", MLP, &["run", "exp.toml"], 4, &[]);
    std::fs::write(dir.path().join("exp.toml"), MLP).unwrap();
    set_mode(&dir.path().join("exp.toml"), 0o000);
    let nobody = || {
        let mut cmd = Command::new(BIN);
        if is_root() {
            // Root reads any file: run as `nobody` instead.
            cmd.uid(65534).gid(65534);
        }
        cmd
    };
    if !nobody()
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIPPED: the test binary cannot be run as user nobody from here");
        return;
    }
    let experiment = Case {
        experiment: None,
        ..c
    };
    let (code, err) = run_with(dir.path(), &experiment, nobody());
    let mut failures = Vec::new();
    check(
        "unreadable file",
        code,
        &err,
        4,
        &["exp.toml", "Permission denied"],
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// After a failed write: exit 4 naming the file and the OS error, no temporary file left, and
/// the run not reported complete.
fn check_failed_write(runs: &Path, code: i32, err: &str, os_error: &str) {
    let mut failures = Vec::new();
    check(
        "failed write",
        code,
        err,
        4,
        &[os_error, "cannot"],
        &mut failures,
    );
    eprintln!("{}", err.trim_end());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for entry in std::fs::read_dir(runs).unwrap().flatten() {
        for f in std::fs::read_dir(entry.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp-"), "temporary file left: {name}");
        }
    }
    let ls = Command::new(BIN)
        .args(["ls", "--json", "--runs-dir"])
        .arg(runs)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(!text.contains("\"complete\""), "{text}");
}

/// A run big enough to need ~350 kB for its first checkpoint (weights plus the data order).
const BIG_RUN: &str = "name = \"big\"\nseed = 0\n[model]\nkind = \"mlp\"\nhidden = [32]\n\
[optimizer]\nkind = \"sgd\"\nlr = 0.1\n[train]\nbatch_size = 32\nsteps = 60\neval_every = 30\n";

#[test]
fn a_write_past_the_file_size_limit_fails_cleanly() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), BIG_RUN).unwrap();
    let mut cmd = Command::new(BIN);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // SIGXFSZ keeps its default (kill) here: runner itself must ignore it, so that the
            // write fails with EFBIG like a full disk's ENOSPC instead of killing it silently.
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            let limit = libc::rlimit {
                rlim_cur: 200_000,
                rlim_max: 200_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let c = case("file size limit", BIG_RUN, &["run", "exp.toml"], 4, &[]);
    let (code, err) = run_with(dir.path(), &c, cmd);
    check_failed_write(&dir.path().join("runs"), code, &err, "File too large");
}

#[test]
fn a_full_disk_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    let mounted = is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=200k", "tmpfs"])
            .arg(&runs)
            .status()
            .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: cannot mount a small tmpfs here (needs root); \
             a_write_past_the_file_size_limit_fails_cleanly covers failed writes"
        );
        return;
    }
    std::fs::write(dir.path().join("exp.toml"), BIG_RUN).unwrap();
    let c = case("full disk", BIG_RUN, &["run", "exp.toml"], 4, &[]);
    let (code, err) = run(dir.path(), &c);
    let result = std::panic::catch_unwind(|| {
        check_failed_write(&runs, code, &err, "No space left on device")
    });
    let _ = Command::new("umount").arg(&runs).status();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Finding 8 of issue 35: a long value was echoed whole in the error (a 50 MB name, a dataset
/// name twice). Values are cut to their ends with a count; the error stays a few hundred bytes.
#[test]
fn long_values_are_cut_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), MLP).unwrap();
    let long = "y".repeat(100_000);
    for key in ["name", "data.dataset", "optimizer.kind", "train.steps"] {
        let set = format!("{key}={long}");
        let out = Command::new(BIN)
            .args(["run", "exp.toml", "--set", &set])
            .current_dir(dir.path())
            .env("RUNNER_BUILD", "never")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(err.len() < 2000, "{key}: {} bytes of error", err.len());
        assert!(
            err.contains(key) && err.contains("characters cut]"),
            "{key}: {err}"
        );
    }
}
