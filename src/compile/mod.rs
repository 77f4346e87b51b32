//! Networks built on demand. Networks are statically typed, so a network this binary lacks must
//! be compiled: [`provide`] finds (or builds, with cargo, from runner's source tree) a binary
//! that has it, every network this binary has and every network earlier on-demand builds of the
//! same source had, caches it under `<cache>/builds/`, and runs it in place of this process with
//! the same arguments. The set of networks only grows, so any run made by a cached build can be
//! resumed and verified by the next.

pub mod cache;
mod cargo;
pub mod source;

use crate::error::{Error, Result};
use cache::NetworkSpec;
use runner_spec::network::Network;
use source::Source;
use std::collections::BTreeSet;

/// Set in the environment of a binary [`provide`] started: the id of its build.
pub const BUILT_ENV: &str = "RUNNER_BUILT";

/// Whether a missing network may be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Auto,
    Never,
}

impl Policy {
    /// `--no-build`, else `RUNNER_BUILD` (`never` or `auto`, the default).
    pub fn choose(no_build: bool) -> Result<Policy> {
        if no_build {
            return Ok(Policy::Never);
        }
        match std::env::var("RUNNER_BUILD").as_deref() {
            Err(_) | Ok("") | Ok("auto") => Ok(Policy::Auto),
            Ok("never") => Ok(Policy::Never),
            Ok(other) => Err(Error::Input(format!(
                "RUNNER_BUILD={other}: expected auto (build missing networks, the default) or \
                 never"
            ))),
        }
    }
}

/// Runs this command again in a binary that has `missing` (the networks `message` says this one
/// lacks), building it first if no cached build has them. Returns only on failure, with an error
/// that says why and what to do.
pub fn provide(missing: &[Network], message: &str, policy: Policy, quiet: bool) -> Error {
    let why = match try_provide(missing, policy, quiet) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let text = format!("{message}. {why}");
    match why {
        Error::Failed(_) => Error::Failed(text),
        Error::Io { context, source } => Error::Io {
            context: format!("{message}. {context}"),
            source,
        },
        _ => Error::Input(text),
    }
}

fn by_hand(source: &str) -> String {
    format!(
        "To compile a file's networks in by hand: RUNNER_EXPERIMENTS=<its directory> cargo install \
         --path {source}"
    )
}

fn try_provide(
    missing: &[Network],
    policy: Policy,
    quiet: bool,
) -> Result<std::convert::Infallible> {
    if let Ok(id) = std::env::var(BUILT_ENV) {
        return Err(Error::Failed(format!(
            "This binary is the on-demand build {id}, made to have it; remove that build \
             (`runner gc --builds`) and run the command again"
        )));
    }
    if policy == Policy::Never {
        return Err(Error::Input(format!(
            "Networks are built on demand unless --no-build or RUNNER_BUILD=never, as here. {}",
            by_hand(source::BUILT_FROM)
        )));
    }
    let source = Source::locate().map_err(|e| Error::Input(format!("{e}. {}", by_hand("."))))?;
    let source_key = source.key()?;
    let keys: Vec<String> = missing.iter().map(Network::key).collect();
    if let Some(entry) = cache::find(&source_key, &keys) {
        return exec(&entry);
    }
    let lock = cache::lock(quiet)?;
    // Another process may have built it while this one waited.
    if let Some(entry) = cache::find(&source_key, &keys) {
        drop(lock);
        return exec(&entry);
    }
    let networks = wanted(missing, &source_key);
    let built_in: BTreeSet<String> = library_networks(&source);
    let extra: Vec<NetworkSpec> = networks
        .iter()
        .filter(|n| !built_in.contains(&n.key))
        .cloned()
        .collect();
    let id = cache::id(&source_key, &networks);
    let log = cache::builds_dir().join("logs").join(format!("{id}.log"));
    let started = chrono::Utc::now();
    let t0 = std::time::Instant::now();
    let binary = cargo::build(&source, &source_key, &extra, &log, quiet)?;
    let record = cache::Record {
        format: 1,
        source: source.root.clone(),
        source_key,
        profile: source::profile().to_string(),
        networks,
        binary_sha256: String::new(),
        built_at: started.to_rfc3339(),
        build_seconds: t0.elapsed().as_secs_f64(),
    };
    let entry = cache::install(&id, &binary, record)?;
    drop(lock);
    exec(&entry)
}

/// What the new build has: the missing networks, every network of this binary, and every
/// network of the cached builds of the same source, each once.
fn wanted(missing: &[Network], source_key: &str) -> Vec<NetworkSpec> {
    let mut out: Vec<NetworkSpec> = crate::models::compiled()
        .map(|c| NetworkSpec {
            key: c.key.to_string(),
            declaration: c.declaration.to_string(),
            rust_type: c.rust_type.to_string(),
            files: c.files.iter().map(|f| f.to_string()).collect(),
        })
        .collect();
    for entry in cache::entries() {
        if entry.record.source_key == source_key {
            out.extend(entry.record.networks);
        }
    }
    out.extend(missing.iter().map(|n| NetworkSpec {
        key: n.key(),
        declaration: n.to_string(),
        rust_type: n.rust_type(),
        files: vec!["built on demand".to_string()],
    }));
    let mut seen = BTreeSet::new();
    out.retain(|n| seen.insert(n.key.clone()));
    out
}

/// The networks the source's library compiles in by itself (its build script's catalog: the
/// built-in set and its `experiments/`), which need no crate of their own.
fn library_networks(source: &Source) -> BTreeSet<String> {
    let (catalog, _) = runner_spec::catalog::scan(&[source.root.join("experiments")], |p| {
        p.display().to_string()
    });
    catalog.keys().map(Network::key).collect()
}

/// Replaces this process with the cached build, same arguments, same standard streams.
fn exec(entry: &cache::Entry) -> Result<std::convert::Infallible> {
    use std::os::unix::process::CommandExt;
    crate::verbose::say(|| format!("running the on-demand build {}", entry.dir.display()));
    let binary = entry.binary();
    let mut args = std::env::args_os();
    // The name it was called by, so that meta.json's command is the one the user typed.
    let arg0 = args.next().unwrap_or_else(|| "runner".into());
    let err = std::process::Command::new(&binary)
        .arg0(arg0)
        .args(args)
        .env(BUILT_ENV, entry.id())
        .exec();
    Err(Error::io("run the on-demand build", &binary, err))
}

/// The cached builds, oldest first.
pub fn cached() -> Vec<cache::Entry> {
    cache::entries()
}

/// What `runner gc --builds` removes: builds whose every network a newer build of the same source
/// has, builds of any other source (or version of it) older than `cutoff`, and what failed or
/// interrupted builds left behind. With `dry_run` nothing is removed. Returns each path with
/// why it goes.
pub fn gc(cutoff: chrono::DateTime<chrono::Utc>, dry_run: bool) -> Result<Vec<(String, String)>> {
    let _lock = cache::lock(false)?;
    let current = Source::locate().and_then(|s| s.key()).ok();
    let entries = cache::entries();
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let superseded = entries[i + 1..].iter().any(|newer| {
            newer.record.source_key == e.record.source_key
                && e.record.networks.iter().all(|n| newer.record.has(&n.key))
        });
        let built = chrono::DateTime::parse_from_rfc3339(&e.record.built_at)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok();
        let why = if superseded {
            "a newer build has all its networks"
        } else if current.as_deref() != Some(e.record.source_key.as_str())
            && built.is_none_or(|t| t < cutoff)
        {
            "built from another version of the source, and old"
        } else {
            continue;
        };
        out.push((e.dir.display().to_string(), why.to_string()));
    }
    if let Ok(list) = std::fs::read_dir(cache::builds_dir()) {
        for item in list.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp-") {
                out.push((
                    item.path().display().to_string(),
                    "left by an interrupted build".into(),
                ));
            }
        }
    }
    if !dry_run {
        for (path, _) in &out {
            std::fs::remove_dir_all(path)
                .map_err(|e| Error::io("remove", std::path::Path::new(path), e))?;
        }
    }
    Ok(out)
}

/// When this process is an on-demand build, a copy of it in `dir` (`<dir>/<build id>/runner`)
/// for cluster nodes, which may not see the cache; `None` for any other binary, which the nodes
/// run where it is.
pub fn for_nodes(dir: &std::path::Path) -> Result<Option<std::path::PathBuf>> {
    let Ok(id) = std::env::var(BUILT_ENV) else {
        return Ok(None);
    };
    let exe = std::env::current_exe()
        .map_err(|e| Error::Failed(format!("cannot find the runner executable: {e}")))?;
    let target = dir.join(&id).join(cache::BINARY);
    let same = |a: &std::path::Path, b: &std::path::Path| {
        cache::sha256_file(a)
            .ok()
            .is_some_and(|d| Some(d) == cache::sha256_file(b).ok())
    };
    if !same(&exe, &target) {
        let parent = target.parent().expect("a file in a directory");
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create", parent, e))?;
        let tmp = parent.join(format!(".runner.tmp-{}", std::process::id()));
        std::fs::copy(&exe, &tmp)
            .and_then(|_| std::fs::rename(&tmp, &target))
            .map_err(|e| Error::io("copy the on-demand build to", &target, e))?;
    }
    let target = std::path::absolute(&target).unwrap_or(target);
    Ok(Some(target))
}
