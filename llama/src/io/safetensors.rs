//! Hugging Face checkpoint directories: `config.json` plus `model.safetensors`, or shards listed
//! in `model.safetensors.index.json` (`{"weight_map": {tensor name: shard file}}`), as written by
//! `transformers`' `save_pretrained`. Tensors stored as F32, F16 or BF16 become f32
//! [`HostTensor`]s in HF names and layouts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ::safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::config::LlamaConfig;
use crate::io::host::{HostTensor, HostTensors};

/// Errors while reading an HF checkpoint directory.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// A file could not be read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// A file could not be written (e.g. a full disk).
    #[error("cannot write {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// `config.json` or the shard index is not valid JSON of the expected form.
    #[error("invalid JSON in {path}: {error}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source`).
        error: serde_json::Error,
    },
    /// A `.safetensors` file is malformed.
    #[error("invalid safetensors file {path}: {error}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source`).
        error: ::safetensors::SafeTensorError,
    },
    /// A tensor has a dtype other than F32, F16 or BF16.
    #[error("tensor `{name}` has unsupported dtype {dtype:?} (supported: F32, F16, BF16)")]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// Its dtype.
        dtype: Dtype,
    },
    /// Neither `model.safetensors` nor `model.safetensors.index.json` exists.
    #[error("{0} has neither model.safetensors nor model.safetensors.index.json")]
    NoWeights(PathBuf),
}

fn read(path: &Path) -> Result<Vec<u8>, SafetensorsError> {
    std::fs::read(path).map_err(|error| SafetensorsError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, SafetensorsError> {
    serde_json::from_slice(&read(path)?).map_err(|error| SafetensorsError::Json {
        path: path.to_path_buf(),
        error,
    })
}

/// Loads `dir/config.json` and all weights of an HF LLaMA checkpoint directory.
///
/// # Errors
/// See [`SafetensorsError`].
pub fn load_llama(dir: impl AsRef<Path>) -> Result<(LlamaConfig, HostTensors), SafetensorsError> {
    let dir = dir.as_ref();
    let config = json(&dir.join("config.json"))?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if single.exists() {
        vec![single]
    } else if index.exists() {
        shard_files(&index)?
            .into_iter()
            .map(|f| dir.join(f))
            .collect()
    } else {
        return Err(SafetensorsError::NoWeights(dir.to_path_buf()));
    };
    let mut tensors = HostTensors::new();
    for file in files {
        read_file_into(&file, &mut tensors)?;
    }
    Ok((config, tensors))
}

/// The distinct shard files named by a `model.safetensors.index.json` (the values of its
/// `weight_map`), sorted.
///
/// # Errors
/// [`SafetensorsError::Io`] or [`SafetensorsError::Json`] naming the index.
pub fn shard_files(index: &Path) -> Result<Vec<String>, SafetensorsError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let index: Index = json(index)?;
    let shards: BTreeSet<String> = index.weight_map.into_values().collect();
    Ok(shards.into_iter().collect())
}

/// Reads every tensor of one `.safetensors` file into `tensors` as f32.
///
/// # Errors
/// [`SafetensorsError::Io`], [`SafetensorsError::Format`], [`SafetensorsError::UnsupportedDtype`].
pub fn read_file_into(path: &Path, tensors: &mut HostTensors) -> Result<(), SafetensorsError> {
    let bytes = read(path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|error| SafetensorsError::Format {
        path: path.to_path_buf(),
        error,
    })?;
    for (name, view) in st.iter() {
        let raw = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            dtype => {
                return Err(SafetensorsError::UnsupportedDtype {
                    name: name.to_string(),
                    dtype,
                });
            }
        };
        tensors.insert(
            name.to_string(),
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok(())
}

/// Writes `tensors` as one F32 `.safetensors` file (e.g. LoRA adapters for PEFT's
/// `adapter_model.safetensors`, or full weights for `model.safetensors`).
///
/// # Errors
/// [`SafetensorsError::Format`] when a tensor's data does not match its shape,
/// [`SafetensorsError::Write`] when the file cannot be written.
pub fn save_host_tensors(path: &Path, tensors: &HostTensors) -> Result<(), SafetensorsError> {
    let format = |error| SafetensorsError::Format {
        path: path.to_path_buf(),
        error,
    };
    let bytes: Vec<(&String, Vec<u8>, &HostTensor)> = tensors
        .iter()
        .map(|(name, t)| {
            (
                name,
                t.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
                t,
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, t)| {
            Ok((
                name.as_str(),
                TensorView::new(Dtype::F32, t.shape.clone(), raw)?,
            ))
        })
        .collect::<Result<Vec<_>, ::safetensors::SafeTensorError>>()
        .map_err(format)?;
    let serialized = ::safetensors::serialize(views, None).map_err(format)?;
    std::fs::write(path, serialized).map_err(|error| SafetensorsError::Write {
        path: path.to_path_buf(),
        error,
    })
}
