//! Whether a run whose summary says `complete` really is: a finished run is written with its
//! summary last, so a complete summary beside missing, truncated or edited files means the
//! directory was damaged afterwards (copied in part, a full disk, hand edits). Such a run must
//! not be reported, skipped or compared as complete.

use super::digest::csv_digest;
use super::{RunDir, Summary, CONFIG, EVAL, META, METRICS, WEIGHTS};
use std::io::Read;
use std::path::Path;

/// `Err` says what is wrong with a run whose summary says complete.
pub fn check_complete(dir: &RunDir, summary: &Summary) -> Result<(), String> {
    for name in [CONFIG, META, METRICS, EVAL, WEIGHTS] {
        if !dir.file(name).is_file() {
            return Err(format!("{name} is missing"));
        }
    }
    if let Some(d) = &summary.digests {
        for (name, recorded) in [(METRICS, &d.metrics), (EVAL, &d.eval)] {
            if csv_digest(&dir.file(name)).ok().as_ref() != Some(recorded) {
                return Err(format!(
                    "{name} does not match the digest recorded when the run finished \
                     (truncated or edited)"
                ));
            }
        }
    }
    safetensors_length_ok(&dir.file(WEIGHTS)).map_err(|why| format!("{WEIGHTS} is damaged: {why}"))
}

/// Checks a safetensors file's length against its header without reading the tensors: cheap
/// enough for `runner ls` over many runs, and it catches truncation.
fn safetensors_length_ok(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| "shorter than its header".to_string())?;
    let n = u64::from_le_bytes(n);
    if n > len.saturating_sub(8) || n > 100 << 20 {
        return Err("header length past the end of the file".into());
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|_| "shorter than its header".to_string())?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|_| "unreadable header".to_string())?;
    let end = header
        .values()
        .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if 8 + n + end != len {
        return Err(format!("{len} bytes, its header describes {}", 8 + n + end));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_length_check_catches_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let header = br#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 12]);
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(safetensors_length_ok(&p), Ok(()));
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        assert!(safetensors_length_ok(&p)
            .unwrap_err()
            .contains("header describes"));
        std::fs::write(&p, &bytes[..5]).unwrap();
        assert!(safetensors_length_ok(&p).is_err());
    }
}
