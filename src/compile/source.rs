//! The source tree an on-demand build compiles, and the key of what it would produce: the
//! tree's content, the toolchain, the target flags and the profile.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout this binary was built from (`RUNNER_SOURCE` overrides it).
pub const BUILT_FROM: &str = env!("CARGO_MANIFEST_DIR");

/// The profile this binary was built with; on-demand builds use the same one, so that a debug
/// binary (the test suite's) builds debug binaries.
pub fn profile() -> &'static str {
    match env!("RUNNER_PROFILE") {
        "debug" => "dev",
        other => other,
    }
}

/// A source tree of runner, checked.
#[derive(Debug, Clone)]
pub struct Source {
    pub root: PathBuf,
}

impl Source {
    /// `RUNNER_SOURCE`, else the checkout this binary was built from. The error says which path
    /// was tried and what to do.
    pub fn locate() -> Result<Source> {
        let (root, origin) = match std::env::var_os("RUNNER_SOURCE") {
            Some(dir) => (PathBuf::from(dir), "RUNNER_SOURCE"),
            None => (
                PathBuf::from(BUILT_FROM),
                "the checkout this binary was built from",
            ),
        };
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
        let is_runner = manifest
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_owned))
            .is_some_and(|name| name == "runner");
        if !is_runner || !root.join("src/lib.rs").is_file() {
            return Err(Error::Input(format!(
                "{} ({origin}) is not a checkout of runner's source, which on-demand builds \
                 compile; set RUNNER_SOURCE to one",
                root.display()
            )));
        }
        let root = std::path::absolute(&root).unwrap_or(root);
        Ok(Source { root })
    }

    /// What decides the binary a build of this tree makes, but for the networks: every file that
    /// enters the build (manifests, lock file, build script, cargo config, the sources of the
    /// crate, its workspace crates and vendored code, and the experiment files whose networks
    /// the library compiles in), the toolchain, the flags and the profile.
    pub fn key(&self) -> Result<String> {
        let mut h = Sha256::new();
        let mut files = Vec::new();
        for name in ["Cargo.toml", "Cargo.lock", "build.rs", ".cargo/config.toml"] {
            files.push(self.root.join(name));
        }
        for dir in ["src", "crates", "vendor", "experiments"] {
            walk(&self.root.join(dir), &mut files);
        }
        files.sort();
        for file in files {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let rel = file.strip_prefix(&self.root).unwrap_or(&file);
            h.update(format!("{} {}\n", rel.display(), bytes.len()));
            h.update(&bytes);
        }
        h.update(toolchain()?);
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
        ] {
            h.update(format!("{var}={:?}\n", std::env::var_os(var)));
        }
        h.update(format!("profile={}\n", profile()));
        Ok(crate::config::hex(&h.finalize()))
    }
}

/// Every regular file under `dir` but build outputs, recursively.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() && entry.file_name() != "target" {
            walk(&path, out);
        } else if kind.is_file() {
            out.push(path);
        }
    }
}

/// `rustc -vV` of the compiler cargo would use, or why there is none.
fn toolchain() -> Result<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc).arg("-vV").output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        _ => Err(Error::Input(format!(
            "{} is not on the PATH: building networks on demand needs Rust's toolchain (cargo \
             and rustc, e.g. from rustup)",
            Path::new(&rustc).display()
        ))),
    }
}
