//! A reader for llama.cpp's GGUF checkpoints: header, metadata, tensor directory, and
//! dequantisation of the tensor data to f32.
//!
//! Format (GGUF v2/v3, little-endian, as specified in ggml's `docs/gguf.md`):
//! magic `GGUF`, `u32` version, `u64` tensor count, `u64` metadata count, the metadata
//! key/value pairs, the tensor infos (name, dims `ne[0..n]` with `ne[0]` the fastest-varying,
//! ggml type, offset), then the tensor data, which starts at the next multiple of
//! `general.alignment` (default 32) after the tensor infos.
//!
//! No crates.io reader fitted: `gguf`, `gguf-rs` and `gguf-rs-lib` parse the layout but do not
//! dequantise; `ggus` does (through `ggml-quants`) but brings `regex`, `indexmap` and
//! `num_enum` for what is a few hundred lines here.
//!
//! - [`quants`]: the block dequantisers (llama.cpp's `ggml-quants.c` semantics).
//! - [`llama`]: LLaMA config and HF-named tensors from a GGUF file ([`load_llama`]).

pub mod llama;
pub mod quants;

pub use llama::{
    hf_name, llama_config, load_llama, load_llama_with, unpermute_rows, unpermuted_row_order,
};
pub use quants::GgmlType;

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::io::host::HostTensor;

/// `"GGUF"` read as a little-endian `u32`.
const MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section when `general.alignment` is absent (ggml's `GGUF_DEFAULT_ALIGNMENT`).
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions (`GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Arrays of arrays deeper than this are refused: each level is read by a recursive call,
/// and a file of nested array headers (12 bytes a level) would otherwise overflow the stack.
const MAX_ARRAY_DEPTH: usize = 8;

/// Errors of reading a GGUF file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The operating system failed to open or read the file.
    #[error("{path}: {source}")]
    Io {
        /// The GGUF file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with `GGUF`.
    #[error("{path}: not a GGUF file (starts with {magic:?}, expected \"GGUF\")")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// Its first four bytes.
        magic: [u8; 4],
    },
    /// A GGUF version other than 2 or 3 (v1 used 32-bit lengths; a big-endian file reads as a huge version).
    #[error("{path}: unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version field.
        version: u32,
    },
    /// The file ends (or a length field points) before the end of a structure.
    #[error("{path}: truncated: {what} needs bytes up to {needed}, but the file has {len}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: String,
        /// Byte offset the structure would end at.
        needed: u64,
        /// File length in bytes.
        len: u64,
    },
    /// A metadata value type id outside GGUF's 0..=12.
    #[error("{path}: metadata key {key:?} has unknown value type {type_id}")]
    BadValueType {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The type id.
        type_id: u32,
    },
    /// A string that is not UTF-8.
    #[error("{path}: {what} is not valid UTF-8")]
    Utf8 {
        /// The file.
        path: PathBuf,
        /// Which string.
        what: String,
    },
    /// A tensor whose ggml type id is not one this reader knows the block size of.
    #[error("{path}: tensor {tensor:?} has unknown ggml type id {type_id}")]
    UnknownType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The type id.
        type_id: u32,
    },
    /// A tensor info that is inconsistent (too many dims, rows not a whole number of blocks,
    /// misaligned offset).
    #[error("{path}: tensor {tensor:?}: {reason}")]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is wrong, with the values.
        reason: String,
    },
    /// A tensor of a type that [`quants::dequantize`] does not handle.
    #[error("{path}: tensor {tensor:?} has type {dtype}, which cannot be dequantised (supported: {supported})", supported = GgmlType::DEQUANTIZABLE.map(quants::GgmlType::name).join(", "))]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its type.
        dtype: GgmlType,
    },
    /// No tensor of that name.
    #[error("{path}: no tensor named {tensor:?}")]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The name looked for.
        tensor: String,
    },
    /// No metadata of that key.
    #[error("{path}: missing metadata key {key:?}")]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// A metadata value of the wrong type or out of range for its use.
    #[error("{path}: metadata key {key:?} = {value}: {reason}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value found (abbreviated for arrays).
        value: String,
        /// What was expected.
        reason: String,
    },
}

/// A metadata value (GGUF value types 0..=12).
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// `UINT8`.
    U8(u8),
    /// `INT8`.
    I8(i8),
    /// `UINT16`.
    U16(u16),
    /// `INT16`.
    I16(i16),
    /// `UINT32`.
    U32(u32),
    /// `INT32`.
    I32(i32),
    /// `FLOAT32`.
    F32(f32),
    /// `BOOL` (one byte, 0 or 1).
    Bool(bool),
    /// `STRING` (u64 length + UTF-8 bytes).
    String(String),
    /// `ARRAY` (element type, u64 length, elements; all elements share one type).
    Array(Vec<GgufValue>),
    /// `UINT64`.
    U64(u64),
    /// `INT64`.
    I64(i64),
    /// `FLOAT64`.
    F64(f64),
}

impl GgufValue {
    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, if it is an integer that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::I8(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float, if it is a float (f32 widened exactly) or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            // Integer metadata (e.g. an integral rope base) is accepted where a float is asked for.
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The value as a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string slice.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(v) => Some(v),
            _ => None,
        }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            Self::Array(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for GgufValue {
    /// Scalars as themselves, strings quoted, arrays by length and first elements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::U8(v) => write!(f, "{v}"),
            Self::I8(v) => write!(f, "{v}"),
            Self::U16(v) => write!(f, "{v}"),
            Self::I16(v) => write!(f, "{v}"),
            Self::U32(v) => write!(f, "{v}"),
            Self::I32(v) => write!(f, "{v}"),
            Self::U64(v) => write!(f, "{v}"),
            Self::I64(v) => write!(f, "{v}"),
            Self::F32(v) => write!(f, "{v}"),
            Self::F64(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::String(v) => write!(f, "{v:?}"),
            Self::Array(items) => {
                write!(f, "[{} items:", items.len())?;
                for item in items.iter().take(3) {
                    write!(f, " {item}")?;
                }
                if items.len() > 3 {
                    write!(f, " ...")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// One entry of the tensor directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// GGUF name (llama.cpp naming, e.g. `blk.0.attn_q.weight`).
    pub name: String,
    /// GGUF dims `ne`, fastest-varying first (an HF `[out, in]` weight has `ne = [in, out]`).
    pub dims: Vec<u64>,
    /// Storage type.
    pub dtype: GgmlType,
    /// Byte offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Row-major shape, outermost first: `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Number of elements (product of the dims).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Size of the data in bytes: whole blocks of `dtype`.
    pub fn n_bytes(&self) -> u64 {
        self.n_elements() / self.dtype.block_size() * self.dtype.type_size()
    }
}

/// An opened GGUF file: metadata and tensor directory in memory; tensor data is read on demand.
#[derive(Debug, Clone)]
pub struct GgufFile {
    path: PathBuf,
    version: u32,
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<TensorInfo>,
    data_offset: u64,
}

impl GgufFile {
    /// Reads the header, metadata and tensor infos of `path` and checks that every tensor's
    /// data lies inside the file.
    ///
    /// # Errors
    /// [`GgufError::Io`], [`GgufError::BadMagic`], [`GgufError::UnsupportedVersion`],
    /// [`GgufError::Truncated`], [`GgufError::BadValueType`], [`GgufError::Utf8`],
    /// [`GgufError::UnknownType`], [`GgufError::BadTensor`], [`GgufError::BadValue`]
    /// (a `general.alignment` that is not a positive power of two).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GgufError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| GgufError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut r = HeaderReader {
            inner: BufReader::new(file),
            path: &path,
            pos: 0,
            len,
        };

        let magic: [u8; 4] = r.array("magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic { path, magic });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { path, version });
        }
        let n_tensors = r.u64("tensor count")?;
        let n_kv = r.u64("metadata count")?;

        // Each entry takes at least 12 bytes (empty key + type + smallest value), so a count
        // beyond the file size is a corrupt header, caught before any allocation.
        r.check_count(n_kv, 13, "metadata")?;
        let mut metadata = Vec::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let key = r.string(&format!("key of metadata entry {i}"))?;
            let type_id = r.u32(&format!("type of metadata key {key:?}"))?;
            let value = r.value(type_id, &key, 0)?;
            metadata.push((key, value));
        }

        r.check_count(n_tensors, 24, "tensor infos")?;
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            tensors.push(r.tensor_info(i)?);
        }
        let header_end = r.pos;

        let mut file = Self {
            version,
            metadata,
            tensors,
            data_offset: 0,
            path,
        };
        let alignment = match file.metadata("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| file.bad_value("general.alignment", v, "expected a power of two"))?,
        };
        file.data_offset = header_end.next_multiple_of(alignment);
        file.check_tensors(alignment, len)?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Absolute byte offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// All metadata in file order.
    pub fn metadata_entries(&self) -> &[(String, GgufValue)] {
        &self.metadata
    }

    /// The value of metadata `key`, if present.
    pub fn metadata(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor directory in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of tensor `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Metadata `key` as an unsigned integer.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`]; [`GgufError::BadValue`] when it is not a non-negative integer.
    pub fn get_u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        v.as_u64()
            .ok_or_else(|| self.bad_value(key, v, "expected a non-negative integer"))
    }

    /// Metadata `key` as a `usize` (see [`Self::get_u64`]).
    ///
    /// # Errors
    /// As [`Self::get_u64`], and [`GgufError::BadValue`] when it exceeds `usize`.
    pub fn get_usize(&self, key: &str) -> Result<usize, GgufError> {
        let v = self.get_u64(key)?;
        usize::try_from(v)
            .map_err(|_| self.bad_value(key, &GgufValue::U64(v), "too large for usize"))
    }

    /// Metadata `key` as a float (integers accepted).
    ///
    /// # Errors
    /// [`GgufError::MissingKey`]; [`GgufError::BadValue`] when it is not a number.
    pub fn get_f64(&self, key: &str) -> Result<f64, GgufError> {
        let v = self.require(key)?;
        v.as_f64()
            .ok_or_else(|| self.bad_value(key, v, "expected a number"))
    }

    /// Metadata `key` as a bool.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`]; [`GgufError::BadValue`] when it is not a bool.
    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool()
            .ok_or_else(|| self.bad_value(key, v, "expected a bool"))
    }

    /// Metadata `key` as a string.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`]; [`GgufError::BadValue`] when it is not a string.
    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str()
            .ok_or_else(|| self.bad_value(key, v, "expected a string"))
    }

    /// Metadata `key` as an array.
    ///
    /// # Errors
    /// [`GgufError::MissingKey`]; [`GgufError::BadValue`] when it is not an array.
    pub fn get_array(&self, key: &str) -> Result<&[GgufValue], GgufError> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| self.bad_value(key, v, "expected an array"))
    }

    /// Metadata `key` as an array of strings.
    ///
    /// # Errors
    /// As [`Self::get_array`], and [`GgufError::BadValue`] when an element is not a string.
    pub fn get_str_array(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let items = self.get_array(key)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| self.bad_value(key, v, &format!("element {i} is not a string")))
            })
            .collect()
    }

    /// The raw bytes of tensor `name` (`info.n_bytes()` bytes from the data section).
    ///
    /// # Errors
    /// [`GgufError::MissingTensor`]; [`GgufError::Io`] when reading fails.
    pub fn tensor_bytes(&self, name: &str) -> Result<Vec<u8>, GgufError> {
        let info = self.require_tensor(name)?;
        let io = |source| GgufError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(self.data_offset + info.offset))
            .map_err(io)?;
        let mut bytes = vec![0; info.n_bytes() as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        Ok(bytes)
    }

    /// Tensor `name` converted to f32, in row-major order with shape `info.shape()`
    /// (GGUF dims reversed): blocks run along `ne[0]`, so the dequantised stream is already
    /// row-major for the reversed shape.
    ///
    /// # Errors
    /// [`GgufError::MissingTensor`], [`GgufError::UnsupportedType`], [`GgufError::Io`].
    ///
    /// # Panics
    /// Never: the tensor type is checked to be dequantizable and its bytes whole blocks before.
    pub fn dequantize(&self, name: &str) -> Result<HostTensor, GgufError> {
        let info = self.require_tensor(name)?;
        if !info.dtype.is_dequantizable() {
            return Err(GgufError::UnsupportedType {
                path: self.path.clone(),
                tensor: name.to_owned(),
                dtype: info.dtype,
            });
        }
        let bytes = self.tensor_bytes(name)?;
        let data = quants::dequantize(info.dtype, &bytes)
            .expect("type checked dequantizable and bytes are whole blocks");
        Ok(HostTensor {
            shape: info.shape(),
            data,
        })
    }

    fn require(&self, key: &str) -> Result<&GgufValue, GgufError> {
        self.metadata(key).ok_or_else(|| GgufError::MissingKey {
            path: self.path.clone(),
            key: key.to_owned(),
        })
    }

    fn require_tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_owned(),
        })
    }

    fn bad_value(&self, key: &str, value: &GgufValue, reason: &str) -> GgufError {
        GgufError::BadValue {
            path: self.path.clone(),
            key: key.to_owned(),
            value: value.to_string(),
            reason: reason.to_owned(),
        }
    }

    /// Offsets aligned (ggml requires it) and data inside the file.
    fn check_tensors(&self, alignment: u64, len: u64) -> Result<(), GgufError> {
        for t in &self.tensors {
            if !t.offset.is_multiple_of(alignment) {
                return Err(GgufError::BadTensor {
                    path: self.path.clone(),
                    tensor: t.name.clone(),
                    reason: format!(
                        "data offset {} is not a multiple of the alignment {alignment}",
                        t.offset
                    ),
                });
            }
            let end = self
                .data_offset
                .checked_add(t.offset)
                .and_then(|start| start.checked_add(t.n_bytes()));
            if end.is_none_or(|end| end > len) {
                return Err(GgufError::Truncated {
                    path: self.path.clone(),
                    what: format!("data of tensor {:?} (offset {})", t.name, t.offset),
                    needed: end.unwrap_or(u64::MAX),
                    len,
                });
            }
        }
        Ok(())
    }
}

/// Sequential little-endian reads of the header with position tracking, so that a short file
/// is reported as [`GgufError::Truncated`] with the structure being read.
struct HeaderReader<'a> {
    inner: BufReader<File>,
    path: &'a Path,
    pos: u64,
    len: u64,
}

impl HeaderReader<'_> {
    fn truncated(&self, what: &str, n: u64) -> GgufError {
        GgufError::Truncated {
            path: self.path.to_path_buf(),
            what: what.to_owned(),
            needed: self.pos.saturating_add(n),
            len: self.len,
        }
    }

    /// Fails unless `n` more bytes are left in the file.
    fn ensure(&self, n: u64, what: &str) -> Result<(), GgufError> {
        if self.pos.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(self.truncated(what, n));
        }
        Ok(())
    }

    /// Rejects an element count that cannot fit in the rest of the file at `min_size` bytes each.
    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<(), GgufError> {
        self.ensure(count.saturating_mul(min_size), &format!("{count} {what}"))
    }

    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, GgufError> {
        self.ensure(n, what)?;
        let mut buf = vec![0; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|source| GgufError::Io {
                path: self.path.to_path_buf(),
                source,
            })?;
        self.pos += n;
        Ok(buf)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let bytes = self.bytes(N as u64, what)?;
        Ok(bytes.try_into().expect("read exactly N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let n = self.u64(what)?;
        let bytes = self.bytes(n, what)?;
        String::from_utf8(bytes).map_err(|_| GgufError::Utf8 {
            path: self.path.to_path_buf(),
            what: what.to_owned(),
        })
    }

    /// One value of GGUF type `type_id` (`gguf_type` in ggml: 0 u8, 1 i8, 2 u16, 3 i16,
    /// 4 u32, 5 i32, 6 f32, 7 bool, 8 string, 9 array, 10 u64, 11 i64, 12 f64).
    /// `depth`: how many arrays enclose the value.
    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<GgufValue, GgufError> {
        let what = || format!("value of metadata key {key:?}");
        Ok(match type_id {
            0 => GgufValue::U8(u8::from_le_bytes(self.array(&what())?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(&what())?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(&what())?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(&what())?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(&what())?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(&what())?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(&what())?)),
            7 => GgufValue::Bool(self.array::<1>(&what())?[0] != 0),
            8 => GgufValue::String(self.string(&what())?),
            9 if depth == MAX_ARRAY_DEPTH => {
                return Err(GgufError::BadValue {
                    path: self.path.to_path_buf(),
                    key: key.to_owned(),
                    value: format!("arrays nested more than {MAX_ARRAY_DEPTH} deep"),
                    reason: format!("at most {MAX_ARRAY_DEPTH} levels are read"),
                });
            }
            9 => {
                let elem_type = self.u32(&what())?;
                let n = self.u64(&what())?;
                // Every element takes at least one byte.
                self.check_count(n, 1, &format!("array elements of metadata key {key:?}"))?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem_type, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(u64::from_le_bytes(self.array(&what())?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(&what())?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(&what())?)),
            _ => {
                return Err(GgufError::BadValueType {
                    path: self.path.to_path_buf(),
                    key: key.to_owned(),
                    type_id,
                });
            }
        })
    }

    fn tensor_info(&mut self, index: u64) -> Result<TensorInfo, GgufError> {
        let name = self.string(&format!("name of tensor {index}"))?;
        let what = format!("info of tensor {name:?}");
        let bad = |reason: String| GgufError::BadTensor {
            path: self.path.to_path_buf(),
            tensor: name.clone(),
            reason,
        };
        let n_dims = self.u32(&what)?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(bad(format!(
                "{n_dims} dimensions (expected 1 to {MAX_DIMS})"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(&what)?);
        }
        let type_id = self.u32(&what)?;
        let dtype = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownType {
            path: self.path.to_path_buf(),
            tensor: name.clone(),
            type_id,
        })?;
        let offset = self.u64(&what)?;
        let n_bytes = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .and_then(|n| (n / dtype.block_size()).checked_mul(dtype.type_size()));
        if n_bytes.is_none() {
            return Err(bad(format!("byte size of {dtype} dims {dims:?} overflows")));
        }
        if dims
            .first()
            .is_some_and(|ne0| !ne0.is_multiple_of(dtype.block_size()))
        {
            return Err(bad(format!(
                "row length ne[0] = {} is not a multiple of the {dtype} block size {}",
                dims[0],
                dtype.block_size()
            )));
        }
        Ok(TensorInfo {
            name,
            dims,
            dtype,
            offset,
        })
    }
}
