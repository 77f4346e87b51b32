//! Fingerprints of a run's results, recorded in `summary.json` so that anyone can check a copy
//! of the run, or a re-run of it, without the original files.

use super::{RunDir, BEST_WEIGHTS, EVAL, METRICS};
use crate::config::hex;
use crate::error::{Error, Result};
use crate::ops::params::NamedTensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The timing column, which differs between runs by nature and is left out of digests.
pub const TIMING_COLUMN: &str = "elapsed_s";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digests {
    /// SHA-256 of `metrics.csv` without its timing column.
    pub metrics: String,
    /// SHA-256 of `eval.csv` without its timing column.
    pub eval: String,
    /// SHA-256 of each weight tensor's little-endian f32 values, by safetensors name (absent
    /// when the run has no final weights).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, String>,
    /// The same for `model-best.safetensors` (`train.keep_best`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub best_weights: BTreeMap<String, String>,
}

impl Digests {
    pub fn of_run(dir: &RunDir, weights: Option<&[NamedTensor]>) -> Result<Digests> {
        Ok(Digests {
            metrics: csv_digest(&dir.file(METRICS))?,
            eval: csv_digest(&dir.file(EVAL))?,
            weights: weights.map_or_else(BTreeMap::new, weight_digests),
            best_weights: match dir.file(BEST_WEIGHTS) {
                best if best.is_file() => weight_digests(&super::checkpoint::read_weights(&best)?),
                _ => BTreeMap::new(),
            },
        })
    }
}

pub fn weight_digests(tensors: &[NamedTensor]) -> BTreeMap<String, String> {
    tensors
        .iter()
        .map(|t| (t.name.clone(), t.sha256()))
        .collect()
}

/// Rows of a run CSV with the timing column removed, as they are hashed and compared.
pub fn untimed_rows(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_string)
        .collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| header[i] != TIMING_COLUMN)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::Failed(format!("{}: {e}", path.display())))?;
        rows.push(
            keep.iter()
                .map(|&i| record.get(i).unwrap_or("").to_string())
                .collect(),
        );
    }
    Ok((keep.iter().map(|&i| header[i].clone()).collect(), rows))
}

/// SHA-256 over the untimed rows, one comma-joined line each, header first.
pub fn csv_digest(path: &Path) -> Result<String> {
    let (header, rows) = untimed_rows(path)?;
    Ok(rows_digest(&header, &rows))
}

/// [`csv_digest`] of rows already read with [`untimed_rows`].
pub fn rows_digest(header: &[String], rows: &[Vec<String>]) -> String {
    let mut h = Sha256::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        h.update(row.join(",").as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ignores_timings_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("a"), "step,loss,elapsed_s\n1,0.5,0.1\n2,0.4,0.2\n").unwrap();
        std::fs::write(p("b"), "step,loss,elapsed_s\n1,0.5,9.1\n2,0.4,9.9\n").unwrap();
        std::fs::write(p("c"), "step,loss,elapsed_s\n1,0.5,0.1\n2,0.41,0.2\n").unwrap();
        let (a, b, c) = (
            csv_digest(&p("a")).unwrap(),
            csv_digest(&p("b")).unwrap(),
            csv_digest(&p("c")).unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Known value: sha256 of "step,loss\n1,0.5\n2,0.4\n".
        assert_eq!(a, hex(&Sha256::digest(b"step,loss\n1,0.5\n2,0.4\n")));
    }
}
