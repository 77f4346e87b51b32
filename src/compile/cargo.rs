//! The cargo workspace of on-demand builds, one per source tree and profile: a crate per network
//! (`nets/runner-net-<hash>`, a few lines naming its type) and a `main` crate that registers
//! them and runs runner's command line. Adding a network compiles its crate and relinks; the
//! library and its dependencies are compiled once, in the workspace's own target directory.

use super::cache::{self, NetworkSpec};
use super::source::{self, Source};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace for `source` at this binary's profile.
pub fn workspace_dir(source: &Source) -> PathBuf {
    let tag = Sha256::digest(source.root.as_os_str().as_encoded_bytes());
    cache::builds_dir().join(format!(
        "work-{}-{}",
        &crate::config::hex(&tag)[..12],
        source::profile()
    ))
}

/// The crate name of a network: stable for its type, whatever else changes.
fn crate_name(n: &NetworkSpec) -> String {
    let h = crate::config::hex(&Sha256::digest(n.rust_type.as_bytes()));
    format!("runner-net-{}", &h[..16])
}

/// Writes `path` only when its content changes: cargo decides what to recompile by mtimes.
fn put(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

/// The workspace manifest: its members, and the source's `[patch]` (paths made absolute) and
/// `[profile]` tables, which cargo reads from the workspace root only.
fn manifest(source: &Source, members: &[String]) -> Result<String> {
    let path = source.root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    let mut out = toml::Table::new();
    let mut workspace = toml::Table::new();
    workspace.insert("members".into(), members.to_vec().into());
    workspace.insert("resolver".into(), "2".into());
    out.insert("workspace".into(), workspace.into());
    if let Some(mut patch) = table.get("patch").cloned() {
        absolute_paths(&mut patch, &source.root);
        out.insert("patch".into(), patch);
    }
    if let Some(profile) = table.get("profile").cloned() {
        out.insert("profile".into(), profile);
    }
    Ok(format!(
        "# Written by runner for networks built on demand: do not edit.\n{}",
        toml::to_string(&out).expect("a manifest serialises")
    ))
}

fn absolute_paths(value: &mut toml::Value, root: &Path) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                match v {
                    toml::Value::String(p) if k == "path" => {
                        *p = root.join(&*p).display().to_string();
                    }
                    other => absolute_paths(other, root),
                }
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|v| absolute_paths(v, root)),
        _ => {}
    }
}

fn dependency(name: &str, path: &Path) -> String {
    format!("{name} = {{ path = {:?} }}\n", path.display().to_string())
}

/// The source's `[dev-dependencies]`, as `[dependencies]` lines (paths made absolute).
fn dev_dependencies(source: &Source) -> Result<String> {
    let path = source.root.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
    let mut deps = table
        .get("dev-dependencies")
        .cloned()
        .unwrap_or_else(|| toml::Value::Table(Default::default()));
    absolute_paths(&mut deps, &source.root);
    let mut out = String::new();
    for (name, spec) in deps.as_table().into_iter().flatten() {
        // One line each, a table inline: its values are strings, booleans and lists of strings.
        let spec = match spec {
            toml::Value::Table(t) => format!(
                "{{ {} }}",
                t.iter()
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        };
        out += &format!("{name} = {spec}\n");
    }
    Ok(out)
}

/// Writes the workspace for these on-demand networks.
fn write(dir: &Path, source: &Source, extra: &[NetworkSpec]) -> Result<()> {
    let mut members = vec!["main".to_string()];
    let runner = dependency("runner", &source.root);
    let mut main_deps = runner.clone();
    let mut table = String::new();
    for n in extra {
        let name = crate_name(n);
        let lib = name.replace('-', "_");
        members.push(format!("nets/{name}"));
        let crate_dir = dir.join("nets").join(&name);
        put(
            &crate_dir.join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
                 publish = false\n\n[dependencies]\n{runner}"
            ),
        )?;
        // A plain function, so that the network is compiled here, in its own crate, and the
        // main crate only links it.
        put(
            &crate_dir.join("src/lib.rs"),
            &format!(
                "//! Generated by runner: the network {:?}.\n\n\
                 use runner::models::codegen::*;\n\n\
                 pub fn make(setup: Setup, rng: &mut ChaCha8Rng) -> runner::Result<Box<dyn Trainable>> {{\n    \
                 runner::models::codegen::make::<{}>(setup, rng)\n}}\n",
                n.key, n.rust_type
            ),
        )?;
        main_deps += &dependency(&name, &crate_dir);
        table += &format!(
            "    Compiled {{\n        key: {:?},\n        declaration: {:?},\n        \
             rust_type: {:?},\n        files: &{:?},\n        make: {lib}::make,\n    }},\n",
            n.key, n.declaration, n.rust_type, n.files
        );
    }
    // Sharing a checkout's target directory (as the test suite does): resolve dependency features
    // as its test build did, with its dev-dependencies, so that its compiled crates are reused.
    if std::env::var_os("RUNNER_BUILD_TARGET_DIR").is_some_and(|d| !d.is_empty()) {
        main_deps += &dev_dependencies(source)?;
    }
    put(
        &dir.join("main/Cargo.toml"),
        &format!(
            "[package]\nname = \"runner-on-demand\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[[bin]]\nname = \"{BIN}\"\npath = \"src/main.rs\"\n\n\
             [dependencies]\n{main_deps}"
        ),
    )?;
    put(
        &dir.join("main/src/main.rs"),
        &format!(
            "//! Generated by runner: runner with the networks built on demand.\n\n\
             use runner::models::codegen::Compiled;\n\n\
             static NETWORKS: &[Compiled] = &[\n{table}];\n\n\
             fn main() {{\n    runner::models::register(NETWORKS);\n    \
             std::process::exit(runner::cli::main());\n}}\n"
        ),
    )?;
    put(&dir.join("Cargo.toml"), &manifest(source, &members)?)?;
    // The source's lock file, so that every dependency is the version the source pins.
    let lock = source.root.join("Cargo.lock");
    if let Ok(text) = std::fs::read_to_string(&lock) {
        put(&dir.join("Cargo.lock"), &text)?;
    }
    // A copy of the checkout's cargo configuration, from before builds ran in the checkout.
    let _ = std::fs::remove_file(dir.join(".cargo/config.toml"));
    Ok(())
}

/// What the last build of a workspace took, to tell the next one what to expect.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Timings {
    /// The first build: the library and every dependency.
    cold_s: Option<f64>,
    /// A build after the source changed: the library again, the networks and the link.
    library_s: Option<f64>,
    /// A build with the library compiled already: the new networks and the link.
    warm_s: Option<f64>,
    /// The source key of the last build: another one means the library compiles again.
    source_key: Option<String>,
}

const TIMINGS: &str = "timings.json";

/// The binary's name in the workspace: not `runner`, so that a target directory shared with a
/// checkout never has its `runner` replaced.
const BIN: &str = "runner-on-demand";

/// Cargo's target directory: `RUNNER_BUILD_TARGET_DIR` (a checkout's `target/` reuses the
/// dependencies it compiled), else the workspace's own.
fn target_dir(dir: &Path) -> PathBuf {
    std::env::var_os("RUNNER_BUILD_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| dir.join("target"), PathBuf::from)
}

fn target_profile_dir(dir: &Path) -> PathBuf {
    target_dir(dir).join(match source::profile() {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    })
}

/// Whether runner's library is compiled in this workspace already.
fn warm(dir: &Path) -> bool {
    std::fs::read_dir(target_profile_dir(dir).join("deps")).is_ok_and(|list| {
        list.flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("librunner-") && name.ends_with(".rlib")
        })
    })
}

/// Builds the workspace's binary with these on-demand networks; returns its path. Progress goes
/// to stderr (a spinner on a terminal, a line per crate otherwise); cargo's whole output to
/// `log`, which the error of a failed build names.
pub fn build(
    source: &Source,
    source_key: &str,
    extra: &[NetworkSpec],
    log: &Path,
    quiet: bool,
) -> Result<PathBuf> {
    let dir = workspace_dir(source);
    let new: Vec<&str> = extra
        .iter()
        .filter(|n| {
            !dir.join("nets")
                .join(crate_name(n))
                .join("src/lib.rs")
                .is_file()
        })
        .map(|n| n.declaration.as_str())
        .collect();
    write(&dir, source, extra)?;
    let timings_path = dir.join(TIMINGS);
    let mut timings: Timings = std::fs::read_to_string(&timings_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let cold = !warm(&dir);
    let library = !cold && timings.source_key.as_deref() != Some(source_key);
    let expected = expected_time(&timings, cold, library);
    let say = |line: &str| {
        if !quiet {
            crate::errln!("{line}");
        }
    };
    say(&format!(
        "runner: compiling {} from {} ({} profile); expected {expected}; log: {}",
        match new.len() {
            0 => "the on-demand networks into one binary".to_string(),
            1 => format!("the network [model] {} on demand", new[0]),
            n => format!("{n} networks on demand"),
        },
        source.root.display(),
        source::profile(),
        log.display()
    ));
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
    }
    let mut log_file = std::fs::File::create(log).map_err(|e| Error::io("create", log, e))?;
    let start = Instant::now();
    let child = spawn_cargo(source, &dir)?;
    let status = follow(child, &mut log_file, &dir, quiet, start)?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(Error::Failed(format!(
            "building the networks failed ({status}) after {seconds:.0} s; cargo's output is in \
             {}; nothing was added to the build cache",
            log.display()
        )));
    }
    *(match (cold, library) {
        (true, _) => &mut timings.cold_s,
        (false, true) => &mut timings.library_s,
        (false, false) => &mut timings.warm_s,
    }) = Some(seconds);
    timings.source_key = Some(source_key.to_string());
    let _ = std::fs::write(
        &timings_path,
        serde_json::to_string(&timings).expect("timings serialise"),
    );
    say(&format!("runner: compiled in {seconds:.1} s"));
    Ok(target_profile_dir(&dir).join(BIN))
}

/// What the compile is expected to take, from the last builds of the same kind.
fn expected_time(timings: &Timings, cold: bool, library: bool) -> String {
    if cold {
        timings.cold_s.map_or(
            "a few minutes: the library and its dependencies compile once".to_string(),
            |s| format!("~{s:.0} s: the library and its dependencies compile once"),
        )
    } else if library {
        timings.library_s.map_or(
            "about a minute: the source changed, so the library compiles again".to_string(),
            |s| format!("~{s:.0} s: the source changed, so the library compiles again"),
        )
    } else {
        timings.warm_s.map_or("~10 s".to_string(), |s| {
            format!("~{s:.0} s, as the last one")
        })
    }
}

/// Starts `cargo build` of the on-demand workspace, its output piped.
fn spawn_cargo(source: &Source, dir: &Path) -> Result<std::process::Child> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Run from the checkout, so that cargo reads its configuration (`.cargo/config.toml`:
    // target-cpu) exactly as a build there does: a copy in the workspace would be read twice
    // when the cache lies inside the checkout (flags repeated, every dependency compiled again).
    Command::new(&cargo)
        .current_dir(&source.root)
        .args([
            "build",
            "--profile",
            source::profile(),
            "-p",
            "runner-on-demand",
        ])
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir(dir))
        .env_remove("RUNNER_EXPERIMENTS")
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_TERM_COLOR", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Input(format!(
                "cannot start {}: {e}; building networks on demand needs Rust's toolchain \
                 (cargo and rustc, e.g. from rustup) on the PATH",
                Path::new(&cargo).display()
            ))
        })
}

/// Follows cargo until it exits: every line to `log_file`, progress to stderr (a spinner on a
/// terminal, a line per crate otherwise).
fn follow(
    mut child: std::process::Child,
    log_file: &mut std::fs::File,
    dir: &Path,
    quiet: bool,
    start: Instant,
) -> Result<std::process::ExitStatus> {
    let say = |line: &str| {
        if !quiet {
            crate::errln!("{line}");
        }
    };
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx2 = tx.clone();
    let readers = [
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx2.send(line);
            }
        }),
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        }),
    ];
    let spinner = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    spinner.set_draw_target(if quiet {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    });
    spinner.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix} {msg}")
            .expect("a valid template"),
    );
    let terminal = !spinner.is_hidden();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            let _ = writeln!(log_file, "{line}");
            if let Some(what) = line.trim_start().strip_prefix("Compiling ") {
                let name = what.split_whitespace().next().unwrap_or(what).to_string();
                if terminal {
                    spinner.set_message(format!("compiling {name}"));
                } else {
                    say(&format!(
                        "runner:   compiling {name} ({:.0} s)",
                        start.elapsed().as_secs_f64()
                    ));
                }
            }
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("wait for", dir, e))?
        {
            break status;
        }
        spinner.set_prefix(format!("{:.0} s", start.elapsed().as_secs_f64()));
        spinner.tick();
        std::thread::sleep(Duration::from_millis(100));
    };
    for r in readers {
        let _ = r.join();
    }
    while let Ok(line) = rx.try_recv() {
        let _ = writeln!(log_file, "{line}");
    }
    spinner.finish_and_clear();
    Ok(status)
}
