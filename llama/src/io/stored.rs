//! Frozen weight matrices kept in their checkpoint's storage format (bf16, f16 or a GGUF block
//! format such as Q4_1), which the frozen projections dequantise one tile at a time
//! ([`crate::kernels::stored_matmul`]) instead of holding an f32 copy.
//!
//! A matrix is stored row by row in Hugging Face's `[out, in]` layout: GGUF blocks run along
//! `ne[0]`, the input dimension, so every row is a whole number of blocks and a tile of whole
//! rows, or of block-aligned columns, dequantises on its own.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use half::bf16;
use serde::{Deserialize, Serialize};

use crate::io::gguf::quants::{GgmlType, dequantize_into};

/// The precision the frozen base of a LoRA model is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BasePrecision {
    /// As the checkpoint stores it: bf16 / f16 safetensors, GGUF BF16, F16 and the block
    /// formats ([`GgmlType::STORABLE`]); f32 tensors stay f32.
    #[default]
    Stored,
    /// Every weight dequantised to f32 at load (full fine-tuning always is).
    F32,
    /// Projection weights re-encoded to bf16 (round to nearest even) whatever their storage.
    Bf16,
}

impl BasePrecision {
    /// The name used in configuration files: `stored`, `f32`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

impl fmt::Display for BasePrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BasePrecision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Stored, Self::F32, Self::Bf16]
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown base precision {s:?} (expected stored, f32 or bf16)"))
    }
}

/// Why a matrix cannot be kept in its storage format.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoredError {
    /// The format has no tile dequantiser here.
    #[error("storage type {0} cannot be kept as a frozen matrix (supported: {list})", list = storable_list())]
    UnsupportedType(GgmlType),
    /// A row is not a whole number of blocks.
    #[error("rows of {cols} values are not whole {dtype} blocks of {block}")]
    PartialBlocks {
        /// The format.
        dtype: GgmlType,
        /// Values per row.
        cols: usize,
        /// Values per block.
        block: usize,
    },
    /// The bytes do not hold `rows × cols` values of the format.
    #[error("{rows} × {cols} {dtype} values take {expected} bytes, got {found}")]
    WrongSize {
        /// The format.
        dtype: GgmlType,
        /// Rows.
        rows: usize,
        /// Values per row.
        cols: usize,
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}

fn storable_list() -> String {
    GgmlType::STORABLE.map(GgmlType::name).join(", ")
}

/// A 2-D frozen weight `[rows, cols]` (HF `[out, in]`) in its storage format. Clones share the
/// bytes: every model built from one checkpoint holds one copy.
#[derive(Clone)]
pub struct StoredMatrix {
    dtype: GgmlType,
    rows: usize,
    cols: usize,
    bytes: Arc<Vec<u8>>,
}

impl fmt::Debug for StoredMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StoredMatrix({} [{}, {}])",
            self.dtype, self.rows, self.cols
        )
    }
}

impl StoredMatrix {
    /// `rows × cols` values of `dtype` stored row-major in `bytes`.
    ///
    /// # Errors
    /// [`StoredError::UnsupportedType`] for a type outside [`GgmlType::STORABLE`],
    /// [`StoredError::PartialBlocks`] when a row is not whole blocks,
    /// [`StoredError::WrongSize`] when `bytes` has another length.
    pub fn new(
        dtype: GgmlType,
        rows: usize,
        cols: usize,
        bytes: Vec<u8>,
    ) -> Result<Self, StoredError> {
        if !GgmlType::STORABLE.contains(&dtype) {
            return Err(StoredError::UnsupportedType(dtype));
        }
        let block = dtype.block_size() as usize;
        if !cols.is_multiple_of(block) {
            return Err(StoredError::PartialBlocks { dtype, cols, block });
        }
        let expected = rows * cols / block * dtype.type_size() as usize;
        if bytes.len() != expected {
            return Err(StoredError::WrongSize {
                dtype,
                rows,
                cols,
                expected,
                found: bytes.len(),
            });
        }
        Ok(Self {
            dtype,
            rows,
            cols,
            bytes: Arc::new(bytes),
        })
    }

    /// `values` (`rows × cols`, row-major) rounded to bf16 (nearest, ties to even).
    ///
    /// # Panics
    /// When `values.len() != rows × cols`.
    pub fn bf16_from_f32(rows: usize, cols: usize, values: &[f32]) -> Self {
        assert_eq!(values.len(), rows * cols, "{rows} × {cols} values");
        let bytes = values
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect();
        Self::new(GgmlType::BF16, rows, cols, bytes).expect("bf16 rows are whole values")
    }

    /// The storage type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// `[rows, cols]`: HF `[out, in]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }

    /// Bytes held (shared by every clone).
    pub fn storage_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The stored bytes, row-major: `cols / block_size` blocks per row.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Values per block of the format (1 for bf16 / f16).
    pub fn block_size(&self) -> usize {
        self.dtype.block_size() as usize
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.block_size() * self.dtype.type_size() as usize
    }

    /// The values of `rows × columns` into `out` (row-major, `out_stride` values between its
    /// rows). `columns` starts at a block boundary and ends at one or at `cols`. Runs the
    /// AVX-512 or AVX2 build of the block decoders where the CPU has them (the same
    /// arithmetic, so the same values).
    ///
    /// # Panics
    /// When a range is outside the matrix, `columns` is not block-aligned or `out` is short.
    pub fn dequantize_tile(
        &self,
        rows: Range<usize>,
        columns: Range<usize>,
        out: &mut [f32],
        out_stride: usize,
    ) {
        let block = self.block_size();
        assert!(
            rows.end <= self.rows && columns.end <= self.cols,
            "tile inside the matrix"
        );
        assert!(
            columns.start.is_multiple_of(block) && columns.end.is_multiple_of(block),
            "columns {columns:?} on {block}-value block boundaries"
        );
        assert!(
            rows.is_empty() || out.len() >= (rows.len() - 1) * out_stride + columns.len(),
            "room for the tile"
        );
        let tile = Tile {
            matrix: self,
            rows,
            columns,
            out_stride,
        };
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX-512F, BW and VL, FMA and F16C, all the function needs.
            return unsafe { tile.decode_avx512(out) };
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU has AVX2, FMA and F16C, all the function needs.
            return unsafe { tile.decode_avx2(out) };
        }
        tile.decode(out);
    }

    /// Every value as f32, row-major `[rows, cols]` (the dequantise-then-f32 reference, and
    /// what a backend without a kernel of its own multiplies by).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0; self.rows * self.cols];
        self.dequantize_tile(0..self.rows, 0..self.cols, &mut out, self.cols);
        out
    }

    /// The same matrix with its rows reordered: row `i` of the result is row `source[i]`.
    ///
    /// # Panics
    /// When `source` is not `rows` indices below `rows`.
    pub fn with_rows_from(&self, source: &[usize]) -> Self {
        assert_eq!(source.len(), self.rows, "one source row per row");
        let width = self.row_bytes();
        let mut bytes = Vec::with_capacity(self.bytes.len());
        for &row in source {
            bytes.extend_from_slice(&self.bytes[row * width..(row + 1) * width]);
        }
        Self {
            bytes: Arc::new(bytes),
            ..self.clone()
        }
    }

    /// The bf16 values of a [`GgmlType::BF16`] matrix, row-major; `None` for other types.
    ///
    /// # Panics
    /// When the storage is not 2-byte aligned (the allocator gives a `Vec<u8>` more).
    pub fn bf16_values(&self) -> Option<&[u16]> {
        (self.dtype == GgmlType::BF16).then(|| {
            // SAFETY: any bit pattern is a u16; the alignment is checked, not assumed (the
            // system allocator gives a `Vec<u8>` of this size 16-aligned storage).
            let (head, values, tail) = unsafe { self.bytes.align_to::<u16>() };
            assert!(
                head.is_empty() && tail.is_empty(),
                "bf16 storage is 2-aligned"
            );
            values
        })
    }
}

/// One tile of [`StoredMatrix::dequantize_tile`].
struct Tile<'a> {
    matrix: &'a StoredMatrix,
    rows: Range<usize>,
    columns: Range<usize>,
    out_stride: usize,
}

impl Tile<'_> {
    /// Decodes the tile into `out`, row by row ([`dequantize_into`] inlined).
    #[inline(always)]
    fn decode(&self, out: &mut [f32]) {
        let m = self.matrix;
        let (block, type_size) = (m.block_size(), m.dtype.type_size() as usize);
        let (first, last) = (
            self.columns.start / block * type_size,
            self.columns.end / block * type_size,
        );
        let width = self.columns.len();
        for (i, row) in self.rows.clone().enumerate() {
            let start = row * m.row_bytes();
            let at = i * self.out_stride;
            dequantize_into(
                m.dtype,
                &m.bytes[start + first..start + last],
                &mut out[at..at + width],
            )
            .expect("whole blocks of a storable type");
        }
    }

    /// [`Tile::decode`] compiled for AVX-512 (16-lane block loops).
    ///
    /// # Safety
    /// The CPU has AVX-512F, BW and VL, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,fma,f16c")]
    unsafe fn decode_avx512(&self, out: &mut [f32]) {
        self.decode(out);
    }

    /// [`Tile::decode`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and F16C.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn decode_avx2(&self, out: &mut [f32]) {
        self.decode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_round_trip_and_tiles() {
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let m = StoredMatrix::bf16_from_f32(4, 6, &values);
        assert_eq!(m.to_f32(), values); // halves of small integers are exact in bf16
        let mut tile = vec![0.0; 2 * 3];
        m.dequantize_tile(1..3, 2..5, &mut tile, 3);
        assert_eq!(
            tile,
            [
                values[8], values[9], values[10], values[14], values[15], values[16]
            ]
        );
        let reordered = m.with_rows_from(&[3, 0, 2, 1]);
        assert_eq!(&reordered.to_f32()[..6], &values[18..24]);
    }

    #[test]
    fn block_rows_are_checked() {
        let err = StoredMatrix::new(GgmlType::Q4_1, 2, 48, vec![0; 60]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rows of 48 values are not whole Q4_1 blocks of 32"
        );
        let err = StoredMatrix::new(GgmlType::Q4_1, 2, 64, vec![0; 60]).unwrap_err();
        assert_eq!(err.to_string(), "2 × 64 Q4_1 values take 80 bytes, got 60");
        let err = StoredMatrix::new(GgmlType::F32, 1, 1, vec![0; 4]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("storage type F32 cannot be kept")
        );
    }
}
