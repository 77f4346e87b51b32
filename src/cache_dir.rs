//! Where runner keeps what it can rebuild: networks built on demand, decoded datasets, proofs of
//! run directories already checked.

use std::path::PathBuf;

/// `RUNNER_CACHE_DIR`, else `$XDG_CACHE_HOME/runner`, else `~/.cache/runner`.
pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("RUNNER_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("runner")
}
