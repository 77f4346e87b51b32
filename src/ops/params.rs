//! Reading and writing a module's parameters by name, for checkpoints and weight digests.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::*;
use sha2::{Digest, Sha256};

/// A source of tensor values: given a tensor's name and length, its values or why it has none.
pub type Take<'a> = dyn FnMut(&str, usize) -> Result<Vec<f32>, String> + 'a;

/// A named f32 tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// SHA-256 of the values as little-endian f32 bytes (what a safetensors file stores).
    pub fn sha256(&self) -> String {
        let mut h = Sha256::new();
        for x in &self.data {
            h.update(x.to_le_bytes());
        }
        crate::config::hex(&h.finalize())
    }
}

/// Every tensor of `model`, named as in its safetensors file.
pub fn read<M: TensorCollection<f32, Cpu>>(model: &M) -> Vec<NamedTensor> {
    read_with(model, true)
}

/// The name and shape of every tensor of `model`, without copying its values.
pub fn shapes<M: TensorCollection<f32, Cpu>>(model: &M) -> Vec<(String, Vec<usize>)> {
    read_with(model, false)
        .into_iter()
        .map(|t| (t.name, t.shape))
        .collect()
}

/// Every tensor of `model`, its values copied when `values`.
fn read_with<M: TensorCollection<f32, Cpu>>(model: &M, values: bool) -> Vec<NamedTensor> {
    struct Reader(Vec<NamedTensor>, bool);
    impl TensorVisitor<f32, Cpu> for Reader {
        type Viewer = (ViewTensorRef, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Cpu;
        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, Cpu>,
            (t, name): (&Tensor<S, f32, Cpu>, String),
        ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
            self.0.push(NamedTensor {
                name,
                shape: t.shape().concrete().into_iter().collect(),
                data: if self.1 { t.as_vec() } else { Vec::new() },
            });
            Ok(None)
        }
    }
    let mut reader = Reader(Vec::new(), values);
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut reader,
    })
    .expect("reading tensors cannot fail");
    reader.0
}

/// Overwrites every tensor of `model` with the values `take` returns for its name and length.
pub fn write<M: TensorCollection<f32, Cpu>>(model: &mut M, take: &mut Take) -> Result<(), String> {
    struct Writer<'a> {
        take: &'a mut Take<'a>,
        failure: Option<String>,
    }
    impl TensorVisitor<f32, Cpu> for Writer<'_> {
        type Viewer = (ViewTensorMut, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Cpu;
        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, Cpu>,
            (t, name): (&mut Tensor<S, f32, Cpu>, String),
        ) -> Result<Option<Tensor<S, f32, Cpu>>, CpuError> {
            match (self.take)(&name, t.shape().num_elements()) {
                Ok(values) => t.copy_from(&values),
                Err(e) => {
                    self.failure.get_or_insert(e);
                }
            }
            Ok(None)
        }
    }
    let mut writer = Writer {
        take,
        failure: None,
    };
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut writer,
    })
    .map_err(|e| format!("{e:?}"))?;
    writer.failure.map_or(Ok(()), Err)
}

/// A safetensors error in words (its `Display` prints the variant's debug form, e.g.
/// `IoError(Os { code: 28, .. })`).
pub fn safetensors_error(e: &::safetensors::tensor::SafeTensorError) -> String {
    use ::safetensors::tensor::SafeTensorError as E;
    match e {
        E::IoError(io) => io.to_string(),
        E::JsonError(json) => format!("its header is not valid JSON ({json})"),
        E::InvalidHeader | E::InvalidHeaderStart | E::InvalidHeaderDeserialization => {
            "its header is not a safetensors header".into()
        }
        E::HeaderTooLarge | E::HeaderTooSmall | E::InvalidHeaderLength => {
            "its header length is impossible (truncated or not a safetensors file)".into()
        }
        E::TensorNotFound(name) => format!("it has no tensor '{name}'"),
        E::InvalidOffset(name) => format!("tensor '{name}' has offsets outside the file"),
        E::TensorInvalidInfo | E::InvalidTensorView(..) | E::ValidationOverflow => {
            "a tensor's shape, type and size disagree".into()
        }
        E::MetadataIncompleteBuffer => "its tensors do not cover the file (truncated?)".into(),
    }
}
