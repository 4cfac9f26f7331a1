//! Hugging Face checkpoint directories: `config.json` plus `model.safetensors`, or shards listed
//! in `model.safetensors.index.json` (`{"weight_map": {tensor name: shard file}}`), as written by
//! `transformers`' `save_pretrained`. Tensors stored as F32, F16 or BF16 become f32
//! [`HostTensor`]s in HF names and layouts, or, for the projection weights under a
//! [`BasePrecision`] other than f32, [`StoredMatrix`]es. A file's header is parsed alone and
//! its tensors read one at a time, so loading holds at most one tensor twice.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ::safetensors::tensor::{Metadata, TensorView};
use ::safetensors::{Dtype, SafeTensorError};

use crate::config::LlamaConfig;
use crate::io::gguf::GgmlType;
use crate::io::host::{CheckpointTensors, HostTensor, HostTensors, Keep};
use crate::io::stored::{BasePrecision, StoredMatrix};

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

/// Loads `dir/config.json` and all weights of an HF LLaMA checkpoint directory, as f32.
///
/// # Errors
/// See [`SafetensorsError`].
pub fn load_llama(dir: impl AsRef<Path>) -> Result<(LlamaConfig, HostTensors), SafetensorsError> {
    let (config, tensors) = load_llama_with(dir, BasePrecision::F32)?;
    Ok((config, tensors.dense))
}

/// Loads `dir/config.json` and all weights of an HF LLaMA checkpoint directory for
/// `precision`: under [`BasePrecision::Stored`] bf16 and f16 projection weights keep their
/// storage, under [`BasePrecision::Bf16`] every projection weight is bf16; every other
/// tensor is f32.
///
/// # Errors
/// See [`SafetensorsError`].
pub fn load_llama_with(
    dir: impl AsRef<Path>,
    precision: BasePrecision,
) -> Result<(LlamaConfig, CheckpointTensors), SafetensorsError> {
    let dir = dir.as_ref();
    let config = json(&dir.join("config.json"))?;
    let mut tensors = CheckpointTensors::default();
    for file in weight_files(dir)? {
        read_file_with(&file, precision, &mut tensors)?;
    }
    Ok((config, tensors))
}

/// The safetensors files of a checkpoint directory: `model.safetensors`, or the shards of
/// `model.safetensors.index.json`.
///
/// # Errors
/// [`SafetensorsError::NoWeights`] when neither exists, and the errors of [`shard_files`].
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, SafetensorsError> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    if single.exists() {
        Ok(vec![single])
    } else if index.exists() {
        Ok(shard_files(&index)?
            .into_iter()
            .map(|f| dir.join(f))
            .collect())
    } else {
        Err(SafetensorsError::NoWeights(dir.to_path_buf()))
    }
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
    let mut all = CheckpointTensors::default();
    read_file_with(path, BasePrecision::F32, &mut all)?;
    tensors.append(&mut all.dense);
    Ok(())
}

/// The header of a `.safetensors` file: its tensor directory and where the data starts.
///
/// # Errors
/// [`SafetensorsError::Io`]; [`SafetensorsError::Format`] for a header that is not valid, or
/// tensors that reach past the end of the file or do not fill their byte range.
pub fn read_header(path: &Path) -> Result<(Metadata, u64), SafetensorsError> {
    let io = |error| SafetensorsError::Io {
        path: path.to_path_buf(),
        error,
    };
    let format = |error| SafetensorsError::Format {
        path: path.to_path_buf(),
        error,
    };
    let mut file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut n = [0u8; 8];
    file.read_exact(&mut n)
        .map_err(|_| format(SafeTensorError::HeaderTooSmall))?;
    let n = u64::from_le_bytes(n);
    if n > file_len.saturating_sub(8) {
        return Err(format(SafeTensorError::InvalidHeaderLength));
    }
    let mut header = vec![0; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let metadata: Metadata = serde_json::from_slice(&header)
        .map_err(|e| format(SafeTensorError::InvalidHeaderDeserialization(e)))?;
    let data_start = 8 + n;
    for (_, info) in metadata.tensors() {
        let (start, end) = info.data_offsets;
        let values: usize = info.shape.iter().product();
        if start > end
            || data_start + end as u64 > file_len
            || (end - start) * 8 != values * info.dtype.bitsize()
        {
            return Err(format(SafeTensorError::MetadataIncompleteBuffer));
        }
    }
    Ok((metadata, data_start))
}

/// Reads every tensor of one `.safetensors` file into `tensors` for `precision` (see
/// [`load_llama_with`]), one tensor at a time.
///
/// # Errors
/// [`SafetensorsError::Io`], [`SafetensorsError::Format`], [`SafetensorsError::UnsupportedDtype`].
///
/// # Panics
/// Never: [`read_header`] checked that each tensor's bytes fill its shape.
pub fn read_file_with(
    path: &Path,
    precision: BasePrecision,
    tensors: &mut CheckpointTensors,
) -> Result<(), SafetensorsError> {
    let io = |error| SafetensorsError::Io {
        path: path.to_path_buf(),
        error,
    };
    let (metadata, data_start) = read_header(path)?;
    let mut file = File::open(path).map_err(io)?;
    // In file order: one forward sweep through the data.
    let mut entries: Vec<_> = metadata.tensors().into_iter().collect();
    entries.sort_by_key(|(_, info)| info.data_offsets.0);
    for (name, info) in entries {
        let dtype = match info.dtype {
            Dtype::F32 => GgmlType::F32,
            Dtype::F16 => GgmlType::F16,
            Dtype::BF16 => GgmlType::BF16,
            dtype => return Err(SafetensorsError::UnsupportedDtype { name, dtype }),
        };
        let (start, end) = info.data_offsets;
        let mut raw = vec![0; end - start];
        file.seek(SeekFrom::Start(data_start + start as u64))
            .map_err(io)?;
        file.read_exact(&mut raw).map_err(io)?;
        let shape = info.shape.clone();
        match (Keep::choose(precision, &name, dtype), &shape[..]) {
            (Keep::Stored, &[rows, cols]) => {
                let matrix = StoredMatrix::new(dtype, rows, cols, raw)
                    .expect("bf16 and f16 rows are whole values");
                tensors.stored.insert(name, matrix);
            }
            (Keep::Bf16, &[rows, cols]) => {
                let matrix = StoredMatrix::bf16_from_f32(rows, cols, &to_f32(dtype, &raw));
                tensors.stored.insert(name, matrix);
            }
            _ => {
                let data = to_f32(dtype, &raw);
                tensors.dense.insert(name, HostTensor { shape, data });
            }
        }
    }
    Ok(())
}

/// Little-endian F32, F16 or BF16 bytes as f32 values.
fn to_f32(dtype: GgmlType, raw: &[u8]) -> Vec<f32> {
    crate::io::gguf::quants::dequantize(dtype, raw).expect("whole values of a plain type")
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
