//! ggml tensor types and their dequantisation to f32, block by block, with the block layouts
//! and arithmetic of llama.cpp's `ggml-quants.c` (`dequantize_row_*`), which the `gguf` Python
//! package's `gguf.quants` mirrors in numpy.
//!
//! All multi-byte fields are little-endian; `d`/`m` scales are IEEE f16.

use std::fmt;

use half::f16;

/// Elements per block of the k-quants (`QK_K`).
const QK_K: usize = 256;

/// A ggml tensor storage type (`enum ggml_type`), with its block size (elements) and block
/// size in bytes from ggml's type traits (as in `gguf.GGML_QUANT_SIZES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)] // ggml's own spelling, as in every GGUF tool's output
pub enum GgmlType {
    /// IEEE f32.
    F32,
    /// IEEE f16.
    F16,
    /// 32 weights: f16 scale d, 16 bytes of 4-bit q; x = d·(q − 8).
    Q4_0,
    /// 32 weights: f16 scale d, f16 min m, 16 bytes of 4-bit q; x = d·q + m.
    Q4_1,
    /// 32 weights: f16 d, 32 high bits, 16 bytes of low nibbles; x = d·(q − 16).
    Q5_0,
    /// 32 weights: f16 d, f16 m, 32 high bits, 16 bytes of low nibbles; x = d·q + m.
    Q5_1,
    /// 32 weights: f16 scale d, 32 × i8 q; x = d·q.
    Q8_0,
    /// 32 weights: scale, sum, 32 × i8 (an activation format).
    Q8_1,
    /// 2-bit k-quant.
    Q2_K,
    /// 3-bit k-quant.
    Q3_K,
    /// 256 weights in 8 sub-blocks of 32 with 6-bit scales and mins.
    Q4_K,
    /// 5-bit k-quant.
    Q5_K,
    /// 256 weights in 16 sub-blocks of 16 with i8 scales; 6-bit q − 32.
    Q6_K,
    /// 8-bit k-quant (an activation format).
    Q8_K,
    /// i8 integers.
    I8,
    /// i16 integers.
    I16,
    /// i32 integers.
    I32,
    /// i64 integers.
    I64,
    /// IEEE f64.
    F64,
    /// bfloat16.
    BF16,
}

impl GgmlType {
    /// The types a frozen weight can be kept in ([`crate::io::stored::StoredMatrix`]):
    /// the dequantisable ones but F32.
    pub const STORABLE: [GgmlType; 9] = [
        Self::F16,
        Self::BF16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q4_K,
        Self::Q6_K,
    ];

    /// The types [`dequantize`] converts: F32 and [`GgmlType::STORABLE`].
    pub const DEQUANTIZABLE: [GgmlType; 10] = {
        let mut types = [Self::F32; 10];
        let mut i = 0;
        while i < Self::STORABLE.len() {
            types[i + 1] = Self::STORABLE[i];
            i += 1;
        }
        types
    };

    /// Every type this reader knows the layout size of.
    pub const ALL: [GgmlType; 20] = [
        Self::F32,
        Self::F16,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q8_0,
        Self::Q8_1,
        Self::Q2_K,
        Self::Q3_K,
        Self::Q4_K,
        Self::Q5_K,
        Self::Q6_K,
        Self::Q8_K,
        Self::I8,
        Self::I16,
        Self::I32,
        Self::I64,
        Self::F64,
        Self::BF16,
    ];

    /// The type of ggml id `id` (`ggml_type` value), if known.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// The `ggml_type` value.
    pub fn id(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q4_0 => 2,
            Self::Q4_1 => 3,
            Self::Q5_0 => 6,
            Self::Q5_1 => 7,
            Self::Q8_0 => 8,
            Self::Q8_1 => 9,
            Self::Q2_K => 10,
            Self::Q3_K => 11,
            Self::Q4_K => 12,
            Self::Q5_K => 13,
            Self::Q6_K => 14,
            Self::Q8_K => 15,
            Self::I8 => 24,
            Self::I16 => 25,
            Self::I32 => 26,
            Self::I64 => 27,
            Self::F64 => 28,
            Self::BF16 => 30,
        }
    }

    /// ggml's name (`ggml_type_name`), e.g. `"Q4_1"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::Q4_0 => "Q4_0",
            Self::Q4_1 => "Q4_1",
            Self::Q5_0 => "Q5_0",
            Self::Q5_1 => "Q5_1",
            Self::Q8_0 => "Q8_0",
            Self::Q8_1 => "Q8_1",
            Self::Q2_K => "Q2_K",
            Self::Q3_K => "Q3_K",
            Self::Q4_K => "Q4_K",
            Self::Q5_K => "Q5_K",
            Self::Q6_K => "Q6_K",
            Self::Q8_K => "Q8_K",
            Self::I8 => "I8",
            Self::I16 => "I16",
            Self::I32 => "I32",
            Self::I64 => "I64",
            Self::F64 => "F64",
            Self::BF16 => "BF16",
        }
    }

    /// Elements per block (1 for plain types).
    pub fn block_size(self) -> u64 {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q5_1 | Self::Q8_0 | Self::Q8_1 => 32,
            Self::Q2_K | Self::Q3_K | Self::Q4_K | Self::Q5_K | Self::Q6_K | Self::Q8_K => {
                QK_K as u64
            }
            _ => 1,
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        match self {
            Self::I8 => 1,
            Self::F16 | Self::BF16 | Self::I16 => 2,
            Self::F32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q5_1 => 24,
            Self::Q8_0 => 34,
            Self::Q8_1 => 40,
            Self::Q2_K => 84,
            Self::Q3_K => 110,
            Self::Q4_K => 144,
            Self::Q5_K => 176,
            Self::Q6_K => 210,
            Self::Q8_K => 292,
        }
    }

    /// Whether [`dequantize`] converts this type.
    pub fn is_dequantizable(self) -> bool {
        Self::DEQUANTIZABLE.contains(&self)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Converts `bytes` (whole blocks of `dtype`) to f32 values, `block_size` per block.
///
/// Returns `None` when `dtype` is not one of [`GgmlType::DEQUANTIZABLE`] or `bytes` is not a
/// whole number of blocks.
pub fn dequantize(dtype: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    let type_size = dtype.type_size() as usize;
    if !bytes.len().is_multiple_of(type_size) {
        return None;
    }
    let mut out = vec![0.0; bytes.len() / type_size * dtype.block_size() as usize];
    dequantize_into(dtype, bytes, &mut out)?;
    Some(out)
}

/// [`dequantize`] into `out`, which holds exactly `block_size` values per block of `bytes`:
/// the in-place form the frozen-weight kernels use on one tile at a time. Inlined, so that a
/// caller compiled for a wider instruction set (`#[target_feature]`) vectorises the block
/// loops with it.
///
/// Returns `None` (and leaves `out` unspecified) when `dtype` is not one of
/// [`GgmlType::DEQUANTIZABLE`], `bytes` is not a whole number of blocks or `out` has another
/// length.
#[inline]
pub fn dequantize_into(dtype: GgmlType, bytes: &[u8], out: &mut [f32]) -> Option<()> {
    let type_size = dtype.type_size() as usize;
    let block = dtype.block_size() as usize;
    if !dtype.is_dequantizable()
        || !bytes.len().is_multiple_of(type_size)
        || bytes.len() / type_size * block != out.len()
    {
        return None;
    }
    match dtype {
        GgmlType::F32 => {
            for (y, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (y, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *y = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            // A bf16 is the upper half of the f32 with the same bits.
            for (y, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *y = f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16);
            }
        }
        GgmlType::Q4_0 => blocks(bytes, out, type_size, block, q4_0),
        GgmlType::Q4_1 => blocks(bytes, out, type_size, block, q4_1),
        GgmlType::Q5_0 => blocks(bytes, out, type_size, block, q5_0),
        GgmlType::Q5_1 => blocks(bytes, out, type_size, block, q5_1),
        GgmlType::Q8_0 => blocks(bytes, out, type_size, block, q8_0),
        GgmlType::Q4_K => blocks(bytes, out, type_size, block, q4_k),
        GgmlType::Q6_K => blocks(bytes, out, type_size, block, q6_k),
        _ => unreachable!("checked is_dequantizable"),
    }
    Some(())
}

/// `decode` on every block of `bytes` into its `block` values of `out`.
#[inline(always)]
fn blocks(
    bytes: &[u8],
    out: &mut [f32],
    type_size: usize,
    block: usize,
    decode: impl Fn(&[u8], &mut [f32]),
) {
    for (block_bytes, y) in bytes
        .chunks_exact(type_size)
        .zip(out.chunks_exact_mut(block))
    {
        decode(block_bytes, y);
    }
}

/// The f16 at byte offset `at`, widened.
#[inline(always)]
fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// `block_q4_0 { f16 d; u8 qs[16]; }`: y[j] = (lo(qs[j]) − 8)·d, y[j+16] = (hi(qs[j]) − 8)·d.
#[inline(always)]
fn q4_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        y[j] = (i32::from(q & 0x0F) - 8) as f32 * d;
        y[j + 16] = (i32::from(q >> 4) - 8) as f32 * d;
    }
}

/// `block_q4_1 { f16 d; f16 m; u8 qs[16]; }`: y[j] = lo(qs[j])·d + m, y[j+16] = hi(qs[j])·d + m.
#[inline(always)]
fn q4_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        y[j] = f32::from(q & 0x0F) * d + m;
        y[j + 16] = f32::from(q >> 4) * d + m;
    }
}

/// The 5-bit values of a Q5 block: low nibbles from `qs`, fifth bits from the u32 `qh`
/// (bit j for element j, bit j+16 for element j+16).
#[inline(always)]
fn q5_values(qh: &[u8], qs: &[u8]) -> impl Iterator<Item = (usize, u8, u8)> {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    qs.iter().enumerate().map(move |(j, &q)| {
        let h0 = (((qh >> j) << 4) & 0x10) as u8;
        let h1 = ((qh >> (j + 12)) & 0x10) as u8;
        (j, (q & 0x0F) | h0, (q >> 4) | h1)
    })
}

/// `block_q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }`: y = (q − 16)·d.
#[inline(always)]
fn q5_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (j, x0, x1) in q5_values(&b[2..6], &b[6..22]) {
        y[j] = (i32::from(x0) - 16) as f32 * d;
        y[j + 16] = (i32::from(x1) - 16) as f32 * d;
    }
}

/// `block_q5_1 { f16 d; f16 m; u8 qh[4]; u8 qs[16]; }`: y = q·d + m.
#[inline(always)]
fn q5_1(b: &[u8], y: &mut [f32]) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    for (j, x0, x1) in q5_values(&b[4..8], &b[8..24]) {
        y[j] = f32::from(x0) * d + m;
        y[j + 16] = f32::from(x1) * d + m;
    }
}

/// `block_q8_0 { f16 d; i8 qs[32]; }`: y = q·d.
#[inline(always)]
fn q8_0(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 0);
    for (yj, &q) in y.iter_mut().zip(&b[2..34]) {
        *yj = f32::from(q as i8) * d;
    }
}

/// Scale and min of sub-block `j` (0..8) from Q4_K's 12 packed bytes (`get_scale_min_k4`):
/// 6 bits each; sub-blocks 4..8 keep their low 4 bits in bytes 8..12 and their high 2 bits in
/// the top bits of bytes 0..8.
#[inline(always)]
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// `block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128]; }`: each 64-element chunk takes
/// 32 bytes of `qs`, low nibbles for its first 32 elements (sub-block 2i), high for the next
/// 32 (sub-block 2i+1); y = (d·sc)·q − dmin·m.
#[inline(always)]
fn q4_k(b: &[u8], y: &mut [f32]) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales = &b[4..16];
    for (i, (qs, y)) in b[16..144]
        .chunks_exact(32)
        .zip(y.chunks_exact_mut(64))
        .enumerate()
    {
        let (sc1, m1) = scale_min_k4(2 * i, scales);
        let (sc2, m2) = scale_min_k4(2 * i + 1, scales);
        let (d1, min1) = (d * f32::from(sc1), dmin * f32::from(m1));
        let (d2, min2) = (d * f32::from(sc2), dmin * f32::from(m2));
        for (l, &q) in qs.iter().enumerate() {
            y[l] = d1 * f32::from(q & 0x0F) - min1;
            y[l + 32] = d2 * f32::from(q >> 4) - min2;
        }
    }
}

/// `block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }`: each 128-element half takes
/// 64 bytes of `ql` (low nibbles), 32 of `qh` (2 high bits each for four elements) and 8
/// scales (one per 16 elements); y = (d·sc)·(q − 32).
#[inline(always)]
fn q6_k(b: &[u8], y: &mut [f32]) {
    let d = f16_at(b, 208);
    for n in 0..2 {
        let ql = &b[64 * n..64 * n + 64];
        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
        let sc = &b[192 + 8 * n..192 + 8 * n + 8];
        let y = &mut y[128 * n..128 * n + 128];
        for l in 0..32 {
            let is = l / 16;
            let q = [
                (ql[l] & 0x0F) | ((qh[l] & 3) << 4),
                (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4),
                (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4),
            ];
            for (k, &qk) in q.iter().enumerate() {
                let scale = d * f32::from(sc[is + 2 * k] as i8);
                y[l + 32 * k] = scale * f32::from(qk as i8 - 32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(x: f32) -> [u8; 2] {
        f16::from_f32(x).to_le_bytes()
    }

    #[test]
    fn plain_types() {
        let f32s: Vec<u8> = [1.5f32, -2.25]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(dequantize(GgmlType::F32, &f32s), Some(vec![1.5, -2.25]));
        let f16s = [f16_bytes(0.5), f16_bytes(-3.0)].concat();
        assert_eq!(dequantize(GgmlType::F16, &f16s), Some(vec![0.5, -3.0]));
        // bf16 1.0 = 0x3F80, -2.0 = 0xC000
        assert_eq!(
            dequantize(GgmlType::BF16, &[0x80, 0x3F, 0x00, 0xC0]),
            Some(vec![1.0, -2.0])
        );
    }

    #[test]
    fn q4_0_block() {
        let mut b = f16_bytes(0.5).to_vec();
        // qs[j] = lo j, hi 15 − j
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q4_0, &b).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], (j as f32 - 8.0) * 0.5);
            assert_eq!(y[j + 16], (7.0 - j as f32) * 0.5);
        }
    }

    #[test]
    fn q4_1_block() {
        let mut b = [f16_bytes(0.25), f16_bytes(-1.0)].concat();
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let y = dequantize(GgmlType::Q4_1, &b).unwrap();
        for j in 0..16 {
            assert_eq!(y[j], j as f32 * 0.25 - 1.0);
            assert_eq!(y[j + 16], (15 - j) as f32 * 0.25 - 1.0);
        }
    }

    #[test]
    fn q5_blocks() {
        // Fifth bit set for elements 0, 3 (low half) and 16, 31 (high half).
        let qh: u32 = 1 | 1 << 3 | 1 << 16 | 1 << 31;
        let qs: Vec<u8> = (0..16u8).map(|j| j | ((15 - j) << 4)).collect();
        let expect = |j: usize| -> f32 {
            let lo = if j < 16 {
                j as u32
            } else {
                15 - (j as u32 - 16)
            };
            (lo | ((qh >> j) & 1) << 4) as f32
        };
        let b0 = [&f16_bytes(2.0)[..], &qh.to_le_bytes(), &qs].concat();
        let y0 = dequantize(GgmlType::Q5_0, &b0).unwrap();
        let b1 = [&f16_bytes(2.0)[..], &f16_bytes(0.5), &qh.to_le_bytes(), &qs].concat();
        let y1 = dequantize(GgmlType::Q5_1, &b1).unwrap();
        for j in 0..32 {
            assert_eq!(y0[j], (expect(j) - 16.0) * 2.0, "Q5_0 element {j}");
            assert_eq!(y1[j], expect(j) * 2.0 + 0.5, "Q5_1 element {j}");
        }
        assert_eq!(y0[0], 0.0); // nibble 0 with the fifth bit: 16 − 16
        assert_eq!(y1[31], 16.0 * 2.0 + 0.5); // nibble 0 with the fifth bit
    }

    #[test]
    fn q8_0_block() {
        let mut b = f16_bytes(-0.125).to_vec();
        b.extend((0..32).map(|j: i32| (j * 8 - 128) as i8 as u8));
        let y = dequantize(GgmlType::Q8_0, &b).unwrap();
        for (j, &v) in y.iter().enumerate() {
            assert_eq!(v, (j as f32 * 8.0 - 128.0) * -0.125, "element {j}");
        }
    }

    #[test]
    fn q4_k_block() {
        // Sub-block s has scale s + 1 and min 2s (6-bit, packed as get_scale_min_k4 reads).
        let (sc, mn): (Vec<u8>, Vec<u8>) = (0..8u8).map(|s| (s + 1, 2 * s)).unzip();
        let mut scales = [0u8; 12];
        for j in 0..4 {
            scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
            scales[j + 4] = mn[j] | ((mn[j + 4] >> 4) << 6);
            scales[j + 8] = (sc[j + 4] & 0x0F) | ((mn[j + 4] & 0x0F) << 4);
        }
        for s in 0..8 {
            assert_eq!(scale_min_k4(s, &scales), (sc[s], mn[s]));
        }
        let qs: Vec<u8> = (0..128u32)
            .map(|i| ((i % 16) | ((15 - i % 16) << 4)) as u8)
            .collect();
        let b = [&f16_bytes(0.5)[..], &f16_bytes(0.25), &scales, &qs].concat();
        let y = dequantize(GgmlType::Q4_K, &b).unwrap();
        for (e, &v) in y.iter().enumerate() {
            let (chunk, within) = (e / 64, e % 64);
            let byte = qs[chunk * 32 + within % 32];
            let (s, q) = if within < 32 {
                (2 * chunk, byte & 15)
            } else {
                (2 * chunk + 1, byte >> 4)
            };
            let want = 0.5 * f32::from(sc[s]) * f32::from(q) - 0.25 * f32::from(mn[s]);
            assert_eq!(v, want, "element {e}");
        }
    }

    #[test]
    fn q6_k_block() {
        // Element e of a half: q = e % 64 (6 bits), scale of its 16-group = group index − 8.
        let mut ql = [0u8; 128];
        let mut qh = [0u8; 64];
        let q_of = |e: usize| (e % 64) as u8;
        for n in 0..2 {
            for l in 0..32 {
                for k in 0..4 {
                    let q = q_of(128 * n + l + 32 * k);
                    let (lo, hi) = (q & 15, q >> 4);
                    let ql_at = 64 * n + l + if k % 2 == 1 { 32 } else { 0 };
                    ql[ql_at] |= if k < 2 { lo } else { lo << 4 };
                    qh[32 * n + l] |= hi << (2 * k);
                }
            }
        }
        let scales: Vec<u8> = (0..16).map(|g| (g as i8 - 8) as u8).collect();
        let b = [&ql[..], &qh, &scales, &f16_bytes(0.75)].concat();
        let y = dequantize(GgmlType::Q6_K, &b).unwrap();
        for (e, &v) in y.iter().enumerate() {
            let want = 0.75 * ((e / 16) as f32 - 8.0) * (f32::from(q_of(e)) - 32.0);
            assert_eq!(v, want, "element {e}");
        }
    }

    #[test]
    fn rejects_partial_blocks_and_unsupported_types() {
        assert_eq!(dequantize(GgmlType::Q4_1, &[0; 21]), None);
        assert_eq!(dequantize(GgmlType::Q2_K, &[0; 84]), None);
    }

    #[test]
    fn type_ids_round_trip() {
        for t in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(t.id()), Some(t));
        }
        assert_eq!(GgmlType::from_id(4), None); // removed Q4_2
    }
}
