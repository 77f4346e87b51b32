//! The bridge between statically typed dfdx networks and the run loop: `Trainable` is
//! object safe, so everything outside the registry is compiled once, not per architecture.

use super::init;
use super::layers::{Configure, LayerSettings};
use crate::config::Init;
use crate::data::mnist::{CLASSES, IMAGE_PIXELS};
use crate::error::{Error, Result};
use crate::ops::params::{self, NamedTensor, Take};
use crate::optim::Optimizer;
use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

pub use crate::ops::tensors::{Images, Logits, Taped};

/// What a network type must provide to be trained here: parameters visible to dfdx, and a
/// forward pass from flat images to logits with and without a gradient tape.
pub trait Network:
    BuildModule<Cpu, f32>
    + Module<Images<Taped>, Output = Logits<Taped>, Error = CpuError>
    + Module<Images, Output = Logits, Error = CpuError>
    + Configure
    + Sync
    + 'static
{
}

impl<M> Network for M where
    M: BuildModule<Cpu, f32>
        + Module<Images<Taped>, Output = Logits<Taped>, Error = CpuError>
        + Module<Images, Output = Logits, Error = CpuError>
        + Configure
        + Sync
        + 'static
{
}

/// How a network is built and trained beyond its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Setup {
    pub init: Init,
    pub layers: LayerSettings,
    /// Training targets: (1 - s) on the label, s / 10 on every class.
    pub label_smoothing: f32,
}

/// Loss and accuracy of one batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    /// Mean softmax cross-entropy over the batch.
    pub loss: f64,
    /// Number of correctly classified examples.
    pub correct: usize,
}

/// A network behind an object-safe interface. It computes; the training loop owns the
/// optimizer and lends it to each step, which applies it to the statically typed parameters.
pub trait Trainable: Sync {
    /// Training step `step` (from 1) on a batch (`images` is `labels.len() * 784` values in
    /// [0, 1]): forward, backward, and `opt`'s update of the parameters. The loss is the
    /// training loss (label smoothing included).
    fn train_step(
        &mut self,
        opt: &mut Optimizer,
        step: u64,
        images: Vec<f32>,
        labels: &[u8],
    ) -> Result<BatchStats>;
    /// Loss and accuracy of a batch without updating anything.
    fn evaluate(&self, images: Vec<f32>, labels: &[u8]) -> Result<BatchStats>;
    /// Writes the weights as safetensors.
    fn save(&self, path: &Path) -> Result<()>;
    /// Name and shape of every parameter tensor, in safetensors naming.
    fn parameters(&self) -> Vec<(String, Vec<usize>)>;
    /// The parameters' values, in safetensors naming.
    fn weights(&self) -> Vec<NamedTensor>;
    /// Everything a resumed run needs: parameters (`model.<name>`) and `opt`'s state for them
    /// (`optim.<name>.<slot>`).
    fn export_state(&mut self, opt: &mut Optimizer) -> Result<Vec<NamedTensor>>;
    /// Restores what [`Trainable::export_state`] wrote after `steps` optimizer updates, into the
    /// network and `opt`; `take` returns a tensor's values given its name and length.
    fn import_state(&mut self, opt: &mut Optimizer, steps: u64, take: &mut Take) -> Result<()>;
}

pub const MODEL_PREFIX: &str = "model.";
pub const OPTIM_PREFIX: &str = "optim.";

pub struct Net<M> {
    dev: Cpu,
    model: M,
    grads: Option<Gradients<f32, Cpu>>,
    setup: Setup,
}

fn dfdx_err(e: CpuError) -> Error {
    Error::Failed(format!("tensor operation failed: {e:?}"))
}

impl<M: Network> Net<M> {
    pub fn new(setup: Setup, rng: &mut ChaCha8Rng) -> Result<Self> {
        let dev = Cpu::default();
        let mut model: M = init::build(&dev, setup.init, rng).map_err(dfdx_err)?;
        model.configure(&setup.layers, &mut 0);
        let grads = Some(model.try_alloc_grads().map_err(dfdx_err)?);
        Ok(Net {
            dev,
            model,
            grads,
            setup,
        })
    }

    /// The batch as tensors: images, and the targets as probabilities over the classes (one-hot
    /// but for label smoothing).
    fn inputs(
        &self,
        images: Vec<f32>,
        labels: &[u8],
        label_smoothing: f32,
    ) -> Result<(Images, Logits)> {
        let b = labels.len();
        let x = self
            .dev
            .try_tensor_from_vec(images, (b, Const::<IMAGE_PIXELS>))
            .map_err(dfdx_err)?;
        let y = self
            .dev
            .try_tensor_from_vec(targets(labels, label_smoothing), (b, Const::<CLASSES>))
            .map_err(dfdx_err)?;
        Ok((x, y))
    }
}

/// Target probabilities, row by row: one-hot, or with label smoothing `s`, `1 - s + s/10` on the
/// label and `s/10` elsewhere, which makes cross-entropy against them PyTorch's
/// `CrossEntropyLoss(label_smoothing=s)`.
pub fn targets(labels: &[u8], label_smoothing: f32) -> Vec<f32> {
    let mut probs = vec![0.0f32; labels.len() * CLASSES];
    for (i, &l) in labels.iter().enumerate() {
        probs[i * CLASSES + l as usize] = 1.0;
    }
    if label_smoothing > 0.0 {
        let (keep, spread) = (1.0 - label_smoothing, label_smoothing / CLASSES as f32);
        for p in &mut probs {
            *p = *p * keep + spread;
        }
    }
    probs
}

/// Number of rows whose largest logit is at the label (first maximum wins on ties).
pub fn count_correct(logits: &[f32], labels: &[u8]) -> usize {
    logits
        .chunks_exact(CLASSES)
        .zip(labels)
        .filter(|(row, &label)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |best, (i, &v)| if v > row[best] { i } else { best });
            best == label as usize
        })
        .count()
}

impl<M: Network> Trainable for Net<M> {
    fn train_step(
        &mut self,
        opt: &mut Optimizer,
        step: u64,
        images: Vec<f32>,
        labels: &[u8],
    ) -> Result<BatchStats> {
        if self.setup.layers.dropout > 0.0 {
            let layers = LayerSettings {
                step,
                ..self.setup.layers
            };
            self.model.configure(&layers, &mut 0);
        }
        let (x, y) = self.inputs(images, labels, self.setup.label_smoothing)?;
        let grads = self
            .grads
            .take()
            .expect("gradients are returned after every step");
        let logits = self.model.try_forward(x.traced(grads)).map_err(dfdx_err)?;
        let correct = count_correct(&logits.as_vec(), labels);
        let loss = cross_entropy_with_logits_loss(logits, y);
        let loss_value = loss.array() as f64;
        let mut grads = loss.try_backward().map_err(dfdx_err)?;
        opt.update(&mut self.model, &mut grads)
            .map_err(|e| Error::Failed(format!("optimizer update failed: {e:?}")))?;
        self.grads = Some(grads);
        Ok(BatchStats {
            loss: loss_value,
            correct,
        })
    }

    fn evaluate(&self, images: Vec<f32>, labels: &[u8]) -> Result<BatchStats> {
        let (x, y) = self.inputs(images, labels, 0.0)?;
        let logits = self.model.try_forward(x).map_err(dfdx_err)?;
        let correct = count_correct(&logits.as_vec(), labels);
        let loss = cross_entropy_with_logits_loss(logits, y).array() as f64;
        Ok(BatchStats { loss, correct })
    }

    fn save(&self, path: &Path) -> Result<()> {
        self.model.save_safetensors(path).map_err(|e| match e {
            // A full disk or a file-size limit: an I/O error (exit 4), as for every other file.
            ::safetensors::tensor::SafeTensorError::IoError(io) => {
                Error::io("write weights to", path, io)
            }
            other => Error::Failed(format!(
                "cannot write weights to {}: {}",
                path.display(),
                crate::ops::params::safetensors_error(&other)
            )),
        })
    }

    fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        params::shapes(&self.model)
    }

    fn weights(&self) -> Vec<NamedTensor> {
        params::read(&self.model)
    }

    fn export_state(&mut self, opt: &mut Optimizer) -> Result<Vec<NamedTensor>> {
        let mut out: Vec<NamedTensor> = params::read(&self.model)
            .into_iter()
            .map(|t| NamedTensor {
                name: format!("{MODEL_PREFIX}{}", t.name),
                ..t
            })
            .collect();
        let state = opt.export(&self.model).map_err(dfdx_err)?;
        out.extend(state.into_iter().map(|t| NamedTensor {
            name: format!("{OPTIM_PREFIX}{}", t.name),
            ..t
        }));
        Ok(out)
    }

    fn import_state(&mut self, opt: &mut Optimizer, steps: u64, take: &mut Take) -> Result<()> {
        let bad = |e: String| Error::Failed(format!("checkpoint does not fit the network: {e}"));
        params::write(&mut self.model, &mut |name, len| {
            take(&format!("{MODEL_PREFIX}{name}"), len)
        })
        .map_err(bad)?;
        opt.import(&self.model, steps, &mut |name, len| {
            take(&format!("{OPTIM_PREFIX}{name}"), len)
        })
        .map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against PyTorch 2.15 in f64: `torch.nn.CrossEntropyLoss(label_smoothing=s)(logits,
    /// labels)` with `logits[i][j] = ((i * 10 + j) * 37 % 23) / 5 - 2` and labels 3, 0, 9, 5.
    #[test]
    fn label_smoothing_is_torchs_cross_entropy() {
        let dev = Cpu::default();
        let logits: Vec<f32> = (0..40)
            .map(|k| ((k * 37) % 23) as f32 / 5.0 - 2.0)
            .collect();
        let labels = [3u8, 0, 9, 5];
        for (s, torch) in [
            (0.0, 3.054_352_677_318_070_3),
            (0.1, 3.053_352_677_318_070_4),
            (0.3, 3.051_352_677_318_07),
        ] {
            let x = dev.tensor_from_vec(logits.clone(), (4, Const::<CLASSES>));
            let y = dev.tensor_from_vec(targets(&labels, s), (4, Const::<CLASSES>));
            let loss = cross_entropy_with_logits_loss(x, y).array() as f64;
            assert!(
                (loss - torch).abs() < 2e-6,
                "smoothing {s}: {loss} vs {torch}"
            );
        }
    }

    #[test]
    fn count_correct_takes_the_first_maximum() {
        let mut logits = vec![0.0f32; 20];
        logits[3] = 1.0; // row 0 predicts 3
        logits[10 + 5] = 2.0;
        logits[10 + 7] = 2.0; // row 1 ties 5 and 7: predicts 5
        assert_eq!(count_correct(&logits, &[3, 5]), 2);
        assert_eq!(count_correct(&logits, &[3, 7]), 1);
    }
}
