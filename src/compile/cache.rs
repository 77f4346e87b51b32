//! The build cache: `<cache>/builds/<id>/` holds one binary built on demand (`runner`) and what it
//! is (`build.json`: its source key, networks and the binary's SHA-256). An entry appears by
//! rename once complete, and is believed only when its binary matches its digest.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const BINARY: &str = "runner";
pub const RECORD: &str = "build.json";
const FORMAT: u32 = 1;

pub use crate::cache_dir::root;

/// Where the builds and their cargo workspaces live.
pub fn builds_dir() -> PathBuf {
    root().join("builds")
}

/// A network as a build compiles it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub key: String,
    pub declaration: String,
    pub rust_type: String,
    pub files: Vec<String>,
}

/// `build.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub source: PathBuf,
    pub source_key: String,
    pub profile: String,
    /// Every network the binary has (its library's and those compiled on demand), by key.
    pub networks: Vec<NetworkSpec>,
    pub binary_sha256: String,
    pub built_at: String,
    pub build_seconds: f64,
}

impl Record {
    pub fn has(&self, key: &str) -> bool {
        self.networks.iter().any(|n| n.key == key)
    }
}

/// One complete entry of the cache.
#[derive(Debug, Clone)]
pub struct Entry {
    pub dir: PathBuf,
    pub record: Record,
}

impl Entry {
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub fn binary(&self) -> PathBuf {
        self.dir.join(BINARY)
    }

    /// Whether the binary is the one the record describes (not truncated, not replaced).
    pub fn intact(&self) -> bool {
        sha256_file(&self.binary()).is_ok_and(|d| d == self.record.binary_sha256)
    }
}

/// The id of the build of `networks` from the source with this key.
pub fn id(source_key: &str, networks: &[NetworkSpec]) -> String {
    let mut keys: Vec<&str> = networks.iter().map(|n| n.key.as_str()).collect();
    keys.sort_unstable();
    let set = crate::config::hex(&Sha256::digest(keys.join("\n").as_bytes()));
    format!("{}-{}", &source_key[..12], &set[..12])
}

/// Every entry whose record reads; half-written ones (temporary names) and others are skipped.
pub fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(list) = std::fs::read_dir(builds_dir()) else {
        return out;
    };
    for item in list.flatten() {
        let dir = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with("work-") || !dir.is_dir() {
            continue;
        }
        let record = std::fs::read_to_string(dir.join(RECORD))
            .ok()
            .and_then(|t| serde_json::from_str::<Record>(&t).ok())
            .filter(|r| r.format == FORMAT);
        if let Some(record) = record {
            out.push(Entry { dir, record });
        }
    }
    out.sort_by(|a, b| a.record.built_at.cmp(&b.record.built_at));
    out
}

/// The entry of this source that has every key, the one with most networks (then the newest)
/// first. An entry whose binary does not match its digest is removed and skipped.
pub fn find(source_key: &str, keys: &[String]) -> Option<Entry> {
    let mut fits: Vec<Entry> = entries()
        .into_iter()
        .filter(|e| e.record.source_key == source_key && keys.iter().all(|k| e.record.has(k)))
        .collect();
    fits.sort_by(|a, b| {
        let rank = |e: &Entry| (e.record.networks.len(), e.record.built_at.clone());
        rank(b).cmp(&rank(a))
    });
    for entry in fits {
        if entry.intact() {
            return Some(entry);
        }
        crate::errln!(
            "runner: the cached build {} does not match its digest; removing it",
            entry.dir.display()
        );
        let _ = std::fs::remove_dir_all(&entry.dir);
    }
    None
}

/// Installs a built binary as the entry `id`: copied into a temporary directory with its record,
/// synced, then renamed into place, so that no reader sees half of it.
pub fn install(id: &str, built: &Path, mut record: Record) -> Result<Entry> {
    let dir = builds_dir().join(id);
    let tmp = builds_dir().join(format!(".{id}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let io = |action: &str, p: &Path, e| Error::io(action, p, e);
    std::fs::create_dir_all(&tmp).map_err(|e| io("create", &tmp, e))?;
    let binary = tmp.join(BINARY);
    std::fs::copy(built, &binary).map_err(|e| io("copy the build to", &binary, e))?;
    std::fs::File::open(&binary)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("sync", &binary, e))?;
    record.binary_sha256 = sha256_file(&binary).map_err(|e| io("read", &binary, e))?;
    let text = serde_json::to_string_pretty(&record).expect("a record serialises");
    let path = tmp.join(RECORD);
    std::fs::write(&path, text)
        .and_then(|()| std::fs::File::open(&path)?.sync_all())
        .map_err(|e| io("write", &path, e))?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| io("rename into place", &dir, e))?;
    Ok(Entry { dir, record })
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut file, &mut h)?;
    Ok(crate::config::hex(&h.finalize()))
}

/// Held while one process builds: others wait, then find its entry.
pub struct BuildLock {
    _file: std::fs::File,
}

/// Takes the cache's build lock, saying so when another process holds it.
pub fn lock(quiet: bool) -> Result<BuildLock> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = builds_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::io("open the build lock", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            if !quiet {
                crate::errln!("runner: another runner is building networks; waiting for it");
            }
            file.lock().map_err(|e| Error::io("lock", &path, e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
    }
    Ok(BuildLock { _file: file })
}
