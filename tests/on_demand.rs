//! Networks built on demand, through the binary: a `base =` experiment outside `experiments/`
//! builds and runs, with the digests of a binary that has the network compiled in; the build is
//! cached and reused; a sweep builds every network before its first trial; two first runs build
//! once; a corrupt or half-written cache entry is rebuilt; `--no-build` keeps the plain error.
//!
//! One test, its steps in order, over one build cache (`target/tmp/on-demand-cache`) and the test
//! build's target directory: the first build compiles runner's library again (a minute or two on
//! 2 cores, once per checkout until the source changes), each later one a crate per new network
//! and the link (seconds).

mod common;
use common::{digest_line, the_run};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("on-demand-cache")
}

/// `runner ARGS` in the repository root, building on demand into the shared cache, with cargo's
/// target directory that of the test build (its compiled dependencies are reused: minutes less).
fn runner(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runner"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    c.args(args)
        .current_dir(ROOT)
        .env("RUNNER_CACHE_DIR", cache())
        .env("RUNNER_BUILD_TARGET_DIR", target)
        .env_remove("RUNNER_BUILD")
        .env_remove("RUNNER_BUILT")
        .env_remove("RUNNER_SOURCE");
    c
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// How many builds a command's stderr reports starting.
fn builds(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("runner: compiling "))
        .count()
}

/// A hidden width that no compiled-in network has and no other call in this test run returns,
/// so that its network is new to the cache. Odd: every width in `experiments/` is even. The
/// start is random so that runs which share the cache (it outlives a test run) rarely meet.
/// Before: a time-derived width per call, which in CI once repeated an earlier call's width, and
/// `--no-build` then found that build cached and ran.
fn fresh_width() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;
    const WIDTHS: usize = 4500;
    static START: OnceLock<usize> = OnceLock::new();
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let start = *START.get_or_init(|| {
        let experiments = Path::new(ROOT).join("experiments");
        let files = std::fs::read_dir(&experiments)
            .unwrap()
            .chain(std::fs::read_dir(experiments.join("sweeps")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"));
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines().map(|l| l.split('#').next().unwrap()) {
                let odd = line.contains("hidden")
                    && line
                        .split(|c: char| !c.is_ascii_digit())
                        .filter_map(|w| w.parse::<usize>().ok())
                        .any(|w| w % 2 == 1);
                assert!(!odd, "fresh_width assumes even compiled-in widths: {line}");
            }
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        (nanos / 1000) as usize % WIDTHS
    });
    101 + 2 * ((start + CALLS.fetch_add(1, Ordering::SeqCst)) % WIDTHS)
}

/// An experiment on smoke.toml with these hidden widths, in `dir`.
fn mlp_file(dir: &Path, name: &str, hidden: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "base = {:?}\nname = \"{name}\"\n[model]\nhidden = {hidden}\n[train]\nsteps = 5\n\
             eval_every = 5\n",
            Path::new(ROOT).join("experiments/smoke.toml")
        ),
    )
    .unwrap();
    path
}

#[test]
fn networks_are_built_on_demand() {
    base_files_build_run_and_match_a_compiled_in_network();
    a_sweep_builds_every_network_before_its_first_trial();
    two_first_runs_build_once();
    a_corrupt_or_half_written_entry_is_rebuilt();
    no_build_keeps_the_error();
    a_build_that_cannot_happen_says_why_and_caches_nothing();
}

/// The digests of the two fixtures from a binary built with
/// `RUNNER_EXPERIMENTS=tests/fixtures/on-demand` (the networks compiled into the library), on
/// AVX-512 and AVX2 alike.
const COMPILED_IN: &[(&str, &str)] = &[
    (
        "tests/fixtures/on-demand/mlp-24-12.toml",
        "mlp-24-12 4780a429550d3b22 fd0419dea27c331d 9bdc273db85dbb4f",
    ),
    (
        "tests/fixtures/on-demand/cnn-6-12.toml",
        "cnn-6-12 eb2c15c28b69ea4c ff6b02705d1599af 6a84dd0a09a09c17",
    ),
];

fn base_files_build_run_and_match_a_compiled_in_network() {
    for (file, want) in COMPILED_IN {
        let case = want.split(' ').next().unwrap();
        let runs = tempfile::tempdir().unwrap();
        let out = runner(&["run", file, "-q", "--runs-dir"])
            .arg(runs.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {}", text(&out));
        let run = the_run(runs.path());
        assert_eq!(digest_line(case, &run), *want, "{file}: the same bits");

        // Cached: the next command starts from the cache, compiles nothing, and verify
        // reproduces the run bit for bit.
        let t0 = Instant::now();
        let out = runner(&["verify", "-v"]).arg(&run).output().unwrap();
        assert!(out.status.success(), "{file}: {}", text(&out));
        assert_eq!(builds(&out), 0, "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("running the on-demand build"),
            "{}",
            text(&out)
        );
        eprintln!("{file}: verify from the cache in {:?}", t0.elapsed());
    }
    // `runner models` lists what the cached builds add to this binary.
    let out = runner(&["models", "--json"]).output().unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = listed
        .lines()
        .find(|l| l.contains("\"mlp[24,12]\""))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(line.contains("\"compiled_in\":false"), "{line}");
}

fn a_sweep_builds_every_network_before_its_first_trial() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let base = mlp_file(dir.path(), "sweep-base", "[32]");
    let sweep = dir.path().join("tpe.toml");
    let (a, b) = (fresh_width(), fresh_width());
    std::fs::write(
        &sweep,
        format!(
            "name = \"choices\"\nbase = {:?}\n[tpe]\ntrials = 3\nstartup = 3\n\
             \"optimizer.lr\" = {{ log_uniform = [0.01, 0.1] }}\n\
             \"model.hidden\" = {{ choice = [[{a}], [{b}, 10]] }}\n",
            base
        ),
    )
    .unwrap();
    let sweep = sweep.to_str().unwrap();
    let out = runner(&["sweep", sweep, "--dry-run", "--runs-dir"])
        .arg(&runs)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        listed.contains("networks: 2 (2 not compiled in")
            && listed.contains(&format!(
                "to build  [model] kind = \"mlp\", hidden = [{b}, 10]"
            )),
        "{listed}"
    );

    let out = runner(&["sweep", sweep, "--no-build", "--runs-dir"])
        .arg(&runs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&format!("hidden = [{a}]"))
            && stderr.contains(&format!("hidden = [{b}, 10]")),
        "{stderr}"
    );
    assert!(!runs.join("sweeps").exists(), "no trial before the check");

    let out = runner(&["sweep", sweep, "--runs-dir"])
        .arg(&runs)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        builds(&out),
        1,
        "one build for both networks: {}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let built = stderr.find("runner: compiled in").unwrap();
    let first_trial = stderr.find("started trial 0").unwrap();
    assert!(built < first_trial, "{stderr}");
    assert!(stderr.contains("3 of 3 trials: 3 complete"), "{stderr}");
}

fn two_first_runs_build_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = mlp_file(dir.path(), "twice", &format!("[{}]", fresh_width()));
    let start = |runs: &str| {
        runner(&["run", file.to_str().unwrap(), "--runs-dir"])
            .arg(dir.path().join(runs))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start("a"), start("b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    assert_eq!(builds(&a) + builds(&b), 1, "{}\n{}", text(&a), text(&b));
}

/// The cache entry holding the network with this key.
fn entry_with(key: &str) -> PathBuf {
    std::fs::read_dir(cache().join("builds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(p.join("build.json"))
                .is_ok_and(|t| t.contains(&format!("\"key\": \"{key}\"")))
        })
        .unwrap_or_else(|| panic!("no cached build has {key}"))
}

fn a_corrupt_or_half_written_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let width = fresh_width();
    let file = mlp_file(dir.path(), "corrupt", &format!("[{width}]"));
    let run = |runs: &str| {
        runner(&["run", file.to_str().unwrap(), "--runs-dir"])
            .arg(dir.path().join(runs))
            .output()
            .unwrap()
    };
    let out = run("a");
    assert!(out.status.success(), "{}", text(&out));
    // Cut the cached binary short, as a crash while copying would.
    let entry = entry_with(&format!("mlp[{width}]"));
    let binary = entry.join("runner");
    let bytes = std::fs::read(&binary).unwrap();
    std::fs::write(&binary, &bytes[..bytes.len() / 2]).unwrap();
    // Leftovers of interrupted builds and a directory that is no build are ignored.
    let builds_dir = cache().join("builds");
    std::fs::create_dir_all(builds_dir.join(".0123-abcd.tmp-1")).unwrap();
    std::fs::write(builds_dir.join(".0123-abcd.tmp-1/runner"), b"half").unwrap();
    std::fs::create_dir_all(builds_dir.join("not-a-build")).unwrap();

    let out = run("b");
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("does not match its digest"), "{stderr}");
    assert_eq!(builds(&out), 1, "{stderr}");
    let a = the_run(&dir.path().join("a"));
    let b = the_run(&dir.path().join("b"));
    assert_eq!(digest_line("a", &a), digest_line("a", &b));

    // gc --builds removes the leftovers and every build a newer one supersedes.
    let out = runner(&["gc", "--builds"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !builds_dir.join(".0123-abcd.tmp-1").exists(),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(builds_dir.join("not-a-build"));
}

fn no_build_keeps_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let width = fresh_width();
    let file = mlp_file(dir.path(), "never", &format!("[{width}]"));
    for (flag, env) in [("--no-build", ""), ("-q", "never")] {
        let mut cmd = runner(&["run", file.to_str().unwrap(), flag, "--runs-dir"]);
        cmd.arg(dir.path().join("runs"));
        if !env.is_empty() {
            cmd.env("RUNNER_BUILD", env);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        for want in [
            "never.toml",
            &format!("hidden = [{width}]"),
            "not compiled into this binary",
            "RUNNER_EXPERIMENTS=",
            "cargo install --path",
        ] {
            assert!(stderr.contains(want), "{want}: {stderr}");
        }
        assert_eq!(builds(&out), 0, "{stderr}");
        assert!(!dir.path().join("runs").exists(), "nothing written");
    }
}

fn a_build_that_cannot_happen_says_why_and_caches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let width = fresh_width();
    let file = mlp_file(dir.path(), "cannot", &format!("[{width}]"));
    let run = |env: (&str, &Path)| {
        runner(&["run", file.to_str().unwrap(), "--runs-dir"])
            .arg(dir.path().join("runs"))
            .env(env.0, env.1)
            .output()
            .unwrap()
    };
    // cargo fails: the error points at the build's log, and no entry has the network.
    let out = run(("CARGO", Path::new("false")));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("building the networks failed") && stderr.contains("nothing was added"),
        "{stderr}"
    );
    let log = stderr
        .split_whitespace()
        .find(|w| w.ends_with(".log;"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(Path::new(log.trim_end_matches(';')).is_file(), "{stderr}");
    let cached = std::fs::read_dir(cache().join("builds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .any(|p| {
            std::fs::read_to_string(p.join("build.json"))
                .is_ok_and(|t| t.contains(&format!("\"mlp[{width}]\"")))
        });
    assert!(!cached, "a failed build is not cached");
    // No cargo at all, and a source tree that is not runner's: each says what to do.
    let out = run(("CARGO", Path::new("/nonexistent/cargo")));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Rust's toolchain"),
        "{}",
        text(&out)
    );
    let out = run(("RUNNER_SOURCE", dir.path()));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains("is not a checkout of runner's source") && stderr.contains("RUNNER_SOURCE"),
        "{stderr}"
    );
    assert!(!dir.path().join("runs").exists(), "nothing written");
}
