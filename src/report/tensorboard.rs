//! `runner export tensorboard`: a run's logged metrics as TensorBoard event files, so that
//! TensorBoard users see runner's runs beside their own. One directory per run, one file of
//! scalar events: `train/loss`, `train/accuracy`, `train/lr` at every step, and `test/loss`,
//! `test/accuracy` (and `val/...`) at every evaluation; and the HParams plugin's session data
//! (the config keys as hyperparameters, and whether the run finished), so that TensorBoard's
//! HParams table lists the runs.
//!
//! The format is TFRecord framing (length, masked CRC-32C of the length, data, masked CRC-32C of
//! the data) around `tensorflow.Event` protocol buffers, written by hand: the three messages
//! involved have five fields between them.

use super::runs::Run;
use std::path::Path;

/// Writes `<out>/<run id>/events.out.tfevents.<start>.runner` for each run; returns the files.
pub fn export(runs: &[Run], out: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let mut written = Vec::new();
    for run in runs {
        let dir = out.join(&run.id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let start = run
            .summary
            .as_ref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s.started_at).ok())
            .map_or(0.0, |t| t.timestamp_millis() as f64 / 1000.0);
        let path = dir.join(format!("events.out.tfevents.{}.runner", start as u64));
        let bytes = events(run, start);
        crate::rundir::atomic::write(&path, &bytes).map_err(|e| e.to_string())?;
        written.push(path);
    }
    Ok(written)
}

/// The whole event file of a run.
fn events(run: &Run, start: f64) -> Vec<u8> {
    let mut out = Vec::new();
    record(
        &mut out,
        &event(start, 0, Payload::FileVersion("brain.Event:2")),
    );
    record(
        &mut out,
        &event(start, 0, Payload::Raw(&session_start(run, start))),
    );
    for row in run.steps(None) {
        let values = [
            ("train/loss", row.loss),
            ("train/accuracy", row.accuracy),
            ("train/lr", row.lr),
        ];
        let wall = start + row.elapsed_s.unwrap_or(0.0);
        record(&mut out, &event(wall, row.step, Payload::Scalars(&values)));
    }
    for e in &run.evals {
        let mut values = vec![
            ("test/loss", e.test_loss),
            ("test/accuracy", e.test_accuracy),
        ];
        if let Some((loss, acc)) = e.val {
            values.extend([("val/loss", loss), ("val/accuracy", acc)]);
        }
        let wall = start + e.elapsed_s.unwrap_or(0.0);
        record(&mut out, &event(wall, e.step, Payload::Scalars(&values)));
    }
    let last = run.summary.as_ref().map_or(0, |s| s.steps_done);
    let end = start + run.summary.as_ref().map_or(0.0, |s| s.wall_time_s);
    record(&mut out, &event(end, last, Payload::Raw(&session_end(run))));
    out
}

/// The HParams plugin's start of a session: a `Summary` with one value tagged
/// `_hparams_/session_start_info` whose metadata carries `HParamsPluginData { session_start_info
/// (3) { hparams (1): map<string, google.protobuf.Value>, start_time_secs (5) } }`.
fn session_start(run: &Run, start: f64) -> Vec<u8> {
    let mut info = Vec::new();
    for (key, value) in &run.config {
        let mut entry = Vec::new();
        bytes_field(&mut entry, 1, key.as_bytes());
        bytes_field(&mut entry, 2, &protobuf_value(value));
        bytes_field(&mut info, 1, &entry);
    }
    key(&mut info, 5, 1);
    info.extend_from_slice(&start.to_le_bytes());
    let mut data = Vec::new();
    bytes_field(&mut data, 3, &info);
    plugin_summary("_hparams_/session_start_info", &data)
}

/// `HParamsPluginData { session_end_info (4) { status (1): SUCCESS = 1, FAILURE = 2,
/// RUNNING = 3 } }`.
fn session_end(run: &Run) -> Vec<u8> {
    use crate::rundir::Status;
    let status = match run.summary.as_ref().map(|s| s.status) {
        Some(Status::Complete | Status::Pruned) => 1,
        Some(Status::Running) => 3,
        _ => 2,
    };
    let mut info = Vec::new();
    key(&mut info, 1, 0);
    varint(&mut info, status);
    let mut data = Vec::new();
    bytes_field(&mut data, 4, &info);
    plugin_summary("_hparams_/session_end_info", &data)
}

/// A `Summary` of one value for the hparams plugin: `tag`, `metadata { plugin_data {
/// plugin_name: "hparams", content } }` and the empty float tensor the plugin's own writer puts
/// beside it.
fn plugin_summary(tag: &str, content: &[u8]) -> Vec<u8> {
    let mut plugin = Vec::new();
    bytes_field(&mut plugin, 1, b"hparams");
    bytes_field(&mut plugin, 2, content);
    let mut metadata = Vec::new();
    bytes_field(&mut metadata, 1, &plugin);
    let mut value = Vec::new();
    bytes_field(&mut value, 1, tag.as_bytes());
    bytes_field(&mut value, 9, &metadata);
    // TensorProto { dtype: DT_FLOAT, tensor_shape { dim { size: 0 } } }
    bytes_field(&mut value, 8, &[0x08, 0x01, 0x12, 0x02, 0x12, 0x00]);
    let mut summary = Vec::new();
    bytes_field(&mut summary, 1, &value);
    summary
}

/// A config value (TOML spelling) as a `google.protobuf.Value`: number_value (2), string_value
/// (3) or bool_value (4); lists as their text.
fn protobuf_value(toml: &str) -> Vec<u8> {
    let mut v = Vec::new();
    let parsed = format!("v = {toml}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(toml::Value::Integer(i)) => {
            key(&mut v, 2, 1);
            v.extend_from_slice(&(i as f64).to_le_bytes());
        }
        Some(toml::Value::Float(f)) => {
            key(&mut v, 2, 1);
            v.extend_from_slice(&f.to_le_bytes());
        }
        Some(toml::Value::Boolean(b)) => {
            key(&mut v, 4, 0);
            varint(&mut v, b as u64);
        }
        Some(toml::Value::String(s)) => bytes_field(&mut v, 3, s.as_bytes()),
        _ => bytes_field(&mut v, 3, toml.as_bytes()),
    }
    v
}

enum Payload<'a> {
    FileVersion(&'a str),
    Scalars(&'a [(&'a str, f64)]),
    /// An encoded `Summary`.
    Raw(&'a [u8]),
}

/// A `tensorflow.Event`: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
/// summary = 5 (`Summary { repeated Value value = 1 }`, `Value { tag = 1, simple_value = 2
/// (float) }`).
fn event(wall_time: f64, step: u64, payload: Payload) -> Vec<u8> {
    let mut e = Vec::new();
    key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    key(&mut e, 2, 0);
    varint(&mut e, step);
    match payload {
        Payload::FileVersion(v) => bytes_field(&mut e, 3, v.as_bytes()),
        Payload::Scalars(values) => {
            let mut summary = Vec::new();
            for (tag, v) in values {
                let mut value = Vec::new();
                bytes_field(&mut value, 1, tag.as_bytes());
                key(&mut value, 2, 5);
                value.extend_from_slice(&(*v as f32).to_le_bytes());
                bytes_field(&mut summary, 1, &value);
            }
            bytes_field(&mut e, 5, &summary);
        }
        Payload::Raw(summary) => bytes_field(&mut e, 5, summary),
    }
    e
}

fn key(out: &mut Vec<u8>, field: u64, wire_type: u64) {
    varint(out, (field << 3) | wire_type);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    key(out, field, 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One TFRecord: length, its masked CRC, the data, its masked CRC.
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli), bit by bit: event files are small next to the CSVs they come from.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value of CRC-32C (RFC 3720, and every CRC catalogue).
    #[test]
    fn crc32c_of_the_check_string() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn varints_and_records_frame_as_protobuf_and_tfrecord_do() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xAC, 0x02]);
        let mut out = Vec::new();
        record(&mut out, b"abc");
        assert_eq!(out.len(), 8 + 4 + 3 + 4);
        assert_eq!(&out[..8], &3u64.to_le_bytes());
        assert_eq!(&out[12..15], b"abc");
    }
}
