//! A complete run proves itself: before a run is believed complete (skipped by `run`, listed,
//! compared, reported), its files are checked against what its summary records: the config
//! re-hashed against the hash that names the directory, `metrics.csv`, `eval.csv` and the weights
//! against their digests, and the summary's numbers against `eval.csv`. That costs a read of
//! every file, so a run that passed is remembered by its files' sizes, inodes and times (ctime
//! included, which no tool can set back) under the cache directory; a later read with the same
//! fingerprint trusts it, anything else checks again. `runner verify` always checks in full.

use super::{digest, RunDir, Summary, BEST_WEIGHTS, CONFIG, EVAL, META, METRICS, SUMMARY, WEIGHTS};
use crate::config::hex;
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Whether a remembered proof may stand in for reading the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Trust a proof remembered for the same files (by size, inode and times).
    Remembered,
    /// Read every file.
    Full,
}

/// `Err` names the file that does not agree with the summary, and how.
pub fn check(dir: &RunDir, summary: &Summary, depth: Depth) -> Result<(), String> {
    let print = fingerprint(dir);
    let memo = memo_path(dir);
    if depth == Depth::Remembered
        && print.is_some()
        && memo
            .as_ref()
            .and_then(|m| std::fs::read_to_string(m).ok())
            .is_some_and(|text| Some(text) == print)
    {
        return Ok(());
    }
    check_files(dir, summary)?;
    if let (Some(memo), Some(print)) = (memo, print) {
        // Best effort: a read-only cache only costs the next read a full check.
        let _ = std::fs::create_dir_all(memo.parent().expect("memo has a parent"));
        let _ = super::atomic::write(&memo, print.as_bytes());
    }
    Ok(())
}

fn check_files(dir: &RunDir, summary: &Summary) -> Result<(), String> {
    check_config(dir, summary)?;
    // eval.csv is read once: for its digest and for the summary's numbers.
    let (header, evals) =
        digest::untimed_rows(&dir.file(EVAL)).map_err(|e| format!("{EVAL} cannot be read: {e}"))?;
    let Some(recorded) = summary.digests.as_ref() else {
        // Runs from releases before digests were recorded: their files cannot be checked.
        return check_numbers(&header, &evals, summary);
    };
    let eval_digest = digest::rows_digest(&header, &evals);
    let metrics_digest = digest::csv_digest(&dir.file(METRICS))
        .map_err(|e| format!("{METRICS} cannot be read: {e}"))?;
    for (name, got, want) in [
        (METRICS, metrics_digest, &recorded.metrics),
        (EVAL, eval_digest, &recorded.eval),
    ] {
        if got != *want {
            return Err(format!(
                "{name} does not match the digest {SUMMARY} records (edited or damaged)"
            ));
        }
    }
    for (name, want) in [
        (WEIGHTS, &recorded.weights),
        (BEST_WEIGHTS, &recorded.best_weights),
    ] {
        if want.is_empty() {
            continue;
        }
        let tensors = super::checkpoint::read_weights(&dir.file(name))
            .map_err(|e| format!("{name} cannot be read: {e}"))?;
        let got = digest::weight_digests(&tensors);
        if let Some(tensor) = want
            .keys()
            .chain(got.keys())
            .find(|k| got.get(*k) != want.get(*k))
        {
            return Err(format!(
                "{name}: tensor {tensor} does not match the digest {SUMMARY} records (edited or \
                 damaged)"
            ));
        }
    }
    check_numbers(&header, &evals, summary)
}

/// The config, re-hashed with the data digest `meta.json` records, must give the hash the
/// summary records and the directory is named by.
fn check_config(dir: &RunDir, summary: &Summary) -> Result<(), String> {
    let exp = crate::config::load(&dir.file(CONFIG), &[])
        .map_err(|e| format!("{CONFIG} is not a valid config: {e}"))?;
    let meta = dir
        .read_meta()
        .ok_or_else(|| format!("{META} is unreadable"))?;
    let hash = exp.hash(&meta.data_digest);
    if hash != summary.hash {
        return Err(format!(
            "{CONFIG} hashes to {} but {SUMMARY} records {} (edited?)",
            &hash[..12],
            summary.hash.get(..12).unwrap_or(&summary.hash)
        ));
    }
    // `run` finds a run by its directory name, so a name that carries another hash would pass
    // this run off as that config's. A name without a hash (a renamed copy) claims nothing.
    let named = dir
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some((_, claimed)) = named.rsplit_once('-') {
        let is_hash = claimed.len() == 12 && claimed.bytes().all(|b| b.is_ascii_hexdigit());
        if is_hash && claimed != &hash[..12] {
            return Err(format!(
                "the directory is named for hash {claimed} but {CONFIG} hashes to {} (renamed?)",
                &hash[..12]
            ));
        }
    }
    Ok(())
}

/// The summary's numbers must be those of `eval.csv`: the last row's test loss and accuracy,
/// and the test accuracy at the best step.
fn check_numbers(header: &[String], rows: &[Vec<String>], summary: &Summary) -> Result<(), String> {
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(loss), Some(acc)) = (col("test_loss"), col("test_accuracy")) else {
        return Err(format!("{EVAL} lacks its test columns"));
    };
    let value = |row: &Vec<String>, c: usize| row.get(c).and_then(|v| v.parse::<f64>().ok());
    let same = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1e-30),
        (None, None) => true,
        _ => false,
    };
    let last = rows.last();
    let mismatch = |what: &str| {
        Err(format!(
            "{SUMMARY}'s {what} is not the one {EVAL} holds (edited?)"
        ))
    };
    if !same(last.and_then(|r| value(r, loss)), summary.final_test_loss) {
        return mismatch("final_test_loss");
    }
    if !same(
        last.and_then(|r| value(r, acc)),
        summary.final_test_accuracy,
    ) {
        return mismatch("final_test_accuracy");
    }
    if let Some(step) = summary.best_test_step {
        let at = rows
            .iter()
            .find(|r| r.first().and_then(|s| s.parse::<u64>().ok()) == Some(step));
        if !same(at.and_then(|r| value(r, acc)), summary.best_test_accuracy) {
            return mismatch("best_test_accuracy");
        }
    }
    Ok(())
}

/// The files' sizes, inodes, modification and change times, as one line per file.
fn fingerprint(dir: &RunDir) -> Option<String> {
    let mut out = String::new();
    for name in [CONFIG, META, METRICS, EVAL, SUMMARY, WEIGHTS, BEST_WEIGHTS] {
        match std::fs::symlink_metadata(dir.file(name)) {
            Ok(m) => {
                out += &format!(
                    "{name} {} {} {}.{} {}.{}\n",
                    m.len(),
                    m.ino(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec()
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out += &format!("{name} -\n"),
            Err(_) => return None,
        }
    }
    Some(out)
}

/// Where the proof of `dir` is remembered: by a hash of its absolute path.
fn memo_path(dir: &RunDir) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(&dir.path).ok()?;
    let key = hex(&Sha256::digest(abs.as_os_str().as_encoded_bytes()));
    Some(
        crate::cache_dir::root()
            .join("proven")
            .join(format!("{}.txt", &key[..32])),
    )
}
