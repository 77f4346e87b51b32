//! Records build facts for `meta.json` (git commit, rustc version, dfdx version) and generates
//! the dfdx network types of every network the experiment and sweep files declare: those under
//! `experiments/` and in the directories of `RUNNER_EXPERIMENTS` (colon-separated), resolved by
//! the same code as `runner` (`runner-spec`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = output("git", &["rev-parse", "HEAD"]).unwrap_or_default();
    // --no-optional-locks: a plain `git status` rewrites .git/index, which would retrigger this
    // script (and a rebuild of the crate) on every build.
    let dirty = output(
        "git",
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|s| !s.is_empty());
    let commit = if commit.is_empty() || !dirty {
        commit
    } else {
        format!("{commit}-dirty")
    };
    println!("cargo:rustc-env=RUNNER_GIT_COMMIT={commit}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    println!(
        "cargo:rustc-env=RUNNER_RUSTC_VERSION={}",
        output(&rustc, &["-V"]).unwrap_or_default()
    );
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let dfdx = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"dfdx\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    println!("cargo:rustc-env=RUNNER_DFDX_VERSION={dfdx}");
    // On-demand network builds use the profile of the binary that asks for them.
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=RUNNER_PROFILE={profile}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    println!("cargo:rerun-if-changed=Cargo.lock");
    generate_networks();
}

fn generate_networks() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut dirs = vec![root.join("experiments")];
    println!("cargo:rerun-if-env-changed=RUNNER_EXPERIMENTS");
    if let Ok(extra) = std::env::var("RUNNER_EXPERIMENTS") {
        dirs.extend(
            extra
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| root.join(d)),
        );
    }
    for d in &dirs {
        // A directory: cargo reruns this script when any file under it changes.
        println!("cargo:rerun-if-changed={}", d.display());
    }
    let shown = |p: &Path| {
        p.strip_prefix(&root)
            .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
    };
    let (catalog, problems) = runner_spec::catalog::scan(&dirs, shown);
    for p in problems {
        println!("cargo:warning=no network compiled for {p}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("networks.rs");
    std::fs::write(&out, runner_spec::catalog::rust_source(&catalog))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
}
