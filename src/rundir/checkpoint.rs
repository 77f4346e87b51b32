//! `checkpoint.safetensors`: everything needed to continue a run exactly where it stopped, in
//! one file replaced atomically. Tensors hold the parameters and optimizer state (`model.*`,
//! `optim.*`) and the data order (`data.order`); the safetensors metadata holds the loop state
//! as JSON under `runner.state`.

use super::{atomic, Totals};
use crate::error::{Error, Result};
use crate::ops::params::{safetensors_error, NamedTensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Bumped when the layout changes; older checkpoints are then ignored (the run starts over).
pub const FORMAT: u32 = 1;
const STATE_KEY: &str = "runner.state";
/// SHA-256 over the loop state and every tensor (see [`contents_digest`]): a checkpoint proves
/// itself before a run continues from it.
const DIGEST_KEY: &str = "runner.sha256";
const ORDER: &str = "data.order";

/// The training loop's position, beside the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    pub format: u32,
    /// Hash of the run the checkpoint belongs to.
    pub hash: String,
    /// The run's totals up to the checkpoint (its `steps_done` is the JSON's `step`).
    #[serde(flatten)]
    pub totals: Totals,
    pub epoch: u64,
    /// Position in `data.order` of the next batch.
    pub batch_pos: usize,
    /// The data-order generator: ChaCha8 seed (hex), stream and word position (decimal u128).
    pub rng_seed: String,
    pub rng_stream: u64,
    pub rng_word_pos: String,
    pub elapsed_s: f64,
    pub loss_ema: Option<f64>,
    pub acc_ema: f64,
    /// Digests of the logs up to the checkpoint's step (`metrics.csv`, `eval.csv`, untimed, as
    /// `digest::csv_digest`): a log edited before the step is not carried into the run.
    /// Absent in checkpoints of earlier releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogDigests>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogDigests {
    pub metrics: String,
    pub eval: String,
}

/// SHA-256 over the loop state's JSON and each tensor's name, dtype, shape and bytes, in name
/// order.
fn contents_digest(state_json: &str, tensors: &mut [(String, Dtype, Vec<usize>, &[u8])]) -> String {
    use sha2::{Digest, Sha256};
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    h.update((state_json.len() as u64).to_le_bytes());
    h.update(state_json.as_bytes());
    for (name, dtype, shape, bytes) in tensors.iter() {
        h.update(format!("\n{name} {dtype:?} {shape:?} {}\n", bytes.len()));
        h.update(bytes);
    }
    crate::config::hex(&h.finalize())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub state: LoopState,
    /// Permutation of the training set for the current epoch.
    pub order: Vec<u32>,
    pub tensors: Vec<NamedTensor>,
}

impl Checkpoint {
    /// Removes and returns the values of tensor `name`, checking their count.
    pub fn take(&mut self, name: &str, len: usize) -> std::result::Result<Vec<f32>, String> {
        let i = self
            .tensors
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| format!("tensor '{name}' is missing"))?;
        let t = self.tensors.swap_remove(i);
        if t.data.len() != len {
            return Err(format!(
                "tensor '{name}' has {} values, the network needs {len}",
                t.data.len()
            ));
        }
        Ok(t.data)
    }
}

/// Little-endian f32 bytes (as safetensors stores them) as values.
/// The f32 tensors of a safetensors file (weights), by name.
pub fn read_weights(path: &Path) -> Result<Vec<NamedTensor>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::Data(format!("{}: {}", path.display(), safetensors_error(&e))))?;
    Ok(st
        .tensors()
        .into_iter()
        .filter(|(_, v)| v.dtype() == Dtype::F32)
        .map(|(name, v)| NamedTensor {
            shape: v.shape().to_vec(),
            data: f32_values(v.data()),
            name,
        })
        .collect())
}

pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn le_bytes<T: Copy, const N: usize>(xs: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    xs.iter().flat_map(|&x| to(x)).collect()
}

/// Writes `ckpt` to `path` atomically (temporary file, fsync, rename).
pub fn save(path: &Path, ckpt: &Checkpoint) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = ckpt
        .tensors
        .iter()
        .map(|t| {
            let b = le_bytes(&t.data, f32::to_le_bytes);
            (t.name.clone(), t.shape.clone(), Dtype::F32, b)
        })
        .chain(std::iter::once((
            ORDER.to_string(),
            vec![ckpt.order.len()],
            Dtype::U32,
            le_bytes(&ckpt.order, u32::to_le_bytes),
        )))
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, dtype, b)| {
            let view = TensorView::new(*dtype, shape.clone(), b).expect("sizes match");
            (name.as_str(), view)
        })
        .collect::<Vec<_>>();
    let state = serde_json::to_string(&ckpt.state).expect("loop state serialises");
    let mut parts: Vec<(String, Dtype, Vec<usize>, &[u8])> = bytes
        .iter()
        .map(|(name, shape, dtype, b)| (name.clone(), *dtype, shape.clone(), b.as_slice()))
        .collect();
    let digest = contents_digest(&state, &mut parts);
    let meta = HashMap::from([
        (STATE_KEY.to_string(), state),
        (DIGEST_KEY.to_string(), digest),
    ]);
    let encoded = safetensors::serialize(views, &Some(meta)).map_err(|e| {
        Error::Failed(format!(
            "cannot encode checkpoint: {}",
            safetensors_error(&e)
        ))
    })?;
    atomic::write(path, &encoded)
}

/// Reads a checkpoint written by [`save`]. Errors say what is wrong with the file.
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let bad = |what: String| Error::Data(format!("{}: {what}", path.display()));
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a checkpoint: {}", safetensors_error(&e))))?;
    let state_json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| bad(format!("no '{STATE_KEY}' metadata")))?;
    let state: LoopState =
        serde_json::from_str(state_json).map_err(|e| bad(format!("bad loop state: {e}")))?;
    if state.format != FORMAT {
        return Err(bad(format!(
            "checkpoint format {} (this runner reads {FORMAT})",
            state.format
        )));
    }
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(safetensors_error(&e)))?;
    if let Some(recorded) = header.metadata().as_ref().and_then(|m| m.get(DIGEST_KEY)) {
        let mut parts: Vec<(String, Dtype, Vec<usize>, &[u8])> = st
            .tensors()
            .into_iter()
            .map(|(name, view)| (name, view.dtype(), view.shape().to_vec(), view.data()))
            .collect();
        if contents_digest(state_json, &mut parts) != *recorded {
            return Err(bad(
                "its contents do not match the digest it records (damaged or edited)".into(),
            ));
        }
    }
    let mut order = None;
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        match (name.as_str(), view.dtype()) {
            (ORDER, Dtype::U32) => {
                order = Some(
                    data.chunks_exact(4)
                        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                        .collect(),
                )
            }
            (_, Dtype::F32) => tensors.push(NamedTensor {
                shape: view.shape().to_vec(),
                data: f32_values(data),
                name,
            }),
            (_, dtype) => return Err(bad(format!("tensor '{name}' has dtype {dtype:?}"))),
        }
    }
    let order = order.ok_or_else(|| bad(format!("no '{ORDER}' tensor")))?;
    Ok(Checkpoint {
        state,
        order,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            state: LoopState {
                format: FORMAT,
                hash: "abc".into(),
                totals: Totals {
                    steps_done: 7,
                    train_time_s: 1.25,
                    wall_time_s: 2.0,
                    checkpoints: 3,
                    checkpoint_time_s: 0.5,
                    final_eval: Some((0.2, 0.95)),
                    best_eval: Some((5, 0.96)),
                    final_val: Some((0.25, 0.94)),
                    best_val: Some(0.95),
                },
                epoch: 1,
                batch_pos: 20,
                rng_seed: "00".repeat(32),
                rng_stream: 1,
                rng_word_pos: u128::MAX.to_string(),
                elapsed_s: 1.5,
                loss_ema: Some(0.1),
                acc_ema: 0.9,
                logs: None,
            },
            order: vec![3, 1, 2, 0, u32::MAX],
            tensors: vec![
                NamedTensor {
                    name: "model.0.weight".into(),
                    shape: vec![2, 3],
                    data: vec![1.0, -0.0, f32::MIN_POSITIVE / 2.0, 4.0, 5.0, f32::MAX],
                },
                NamedTensor {
                    name: "optim.0.weight.m".into(),
                    shape: vec![1],
                    data: vec![0.25],
                },
            ],
        }
    }

    #[test]
    fn round_trips_every_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let ckpt = sample();
        save(&path, &ckpt).unwrap();
        let mut back = load(&path).unwrap();
        back.tensors.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, ckpt);
        assert_eq!(back.tensors[0].data[1].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn take_checks_names_and_lengths() {
        let mut ckpt = sample();
        assert_eq!(ckpt.take("optim.0.weight.m", 1).unwrap(), vec![0.25]);
        assert!(ckpt
            .take("optim.0.weight.m", 1)
            .unwrap_err()
            .contains("missing"));
        let err = ckpt.take("model.0.weight", 5).unwrap_err();
        assert!(err.contains("6 values") && err.contains("needs 5"), "{err}");
    }

    /// Issue 35, finding 3: a float doubled or a loop field changed inside a checkpoint was
    /// resumed from. Now any change to a byte of a tensor or of the loop state is refused.
    #[test]
    fn edited_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &sample()).unwrap();
        let good = std::fs::read(&path).unwrap();
        // The last 4 bytes are data.order's last entry (tensors are stored in name order).
        let mut order = good.clone();
        let n = order.len();
        order[n - 4..].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
        let mut state = good.clone();
        let field = b"batch_pos\\\":20";
        let at = state
            .windows(field.len())
            .position(|w| w == field)
            .expect("the loop state holds batch_pos");
        state[at + field.len() - 1] = b'1';
        assert_ne!(state, good, "the loop state was not found");
        for bad in [order, state] {
            std::fs::write(&path, &bad).unwrap();
            let err = load(&path).unwrap_err().to_string();
            assert!(
                err.contains("c.safetensors") && err.contains("digest"),
                "{err}"
            );
        }
    }

    #[test]
    fn damaged_files_are_reported_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        save(&path, &sample()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, 8, 100, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load(&path).unwrap_err();
            assert!(err.to_string().contains("c.safetensors"), "{err}");
        }
    }
}
