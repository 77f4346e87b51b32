//! Whether a run whose summary says `complete` really is: a finished run is written with its
//! summary last, so a complete summary beside missing or truncated files means the directory was
//! damaged afterwards (copied in part, a full disk, hand edits). Such a run must not be
//! reported, skipped or compared as complete. The checks read only file ends and headers, so
//! that `runner ls` over thousands of runs stays fast; `runner verify` compares full digests.

use super::{RunDir, Summary, CONFIG, EVAL, META, METRICS, WEIGHTS};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// `Err` says what is wrong with a run whose summary says complete.
pub fn check_complete(dir: &RunDir, summary: &Summary) -> Result<(), String> {
    for name in [CONFIG, META, METRICS, EVAL, WEIGHTS] {
        if !dir.file(name).is_file() {
            return Err(format!("{name} is missing"));
        }
    }
    for (name, last) in [(METRICS, summary.steps_done), (EVAL, summary.steps)] {
        match last_logged_step(&dir.file(name)) {
            Some(step) if step == last => {}
            found => {
                return Err(format!(
                    "{name} ends {} instead of at step {last} (truncated?)",
                    found.map_or("without a complete row".into(), |s| format!("at step {s}"))
                ))
            }
        }
    }
    safetensors_length_ok(&dir.file(WEIGHTS)).map_err(|why| format!("{WEIGHTS} is damaged: {why}"))
}

/// The step (first column) of a CSV log's last row, if that row is complete (ends in a newline).
fn last_logged_step(path: &Path) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    let body = tail.strip_suffix('\n')?;
    let last = body.rsplit('\n').next()?;
    last.split(',').next()?.parse().ok()
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
    fn last_logged_step_needs_a_complete_row() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "step,loss\n1,0.5\n2,0.4\n").unwrap();
        assert_eq!(last_logged_step(&p), Some(2));
        std::fs::write(&p, "step,loss\n1,0.5\n2,0.").unwrap();
        assert_eq!(last_logged_step(&p), None);
        std::fs::write(&p, "step,loss\n").unwrap();
        assert_eq!(last_logged_step(&p), None);
    }

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
