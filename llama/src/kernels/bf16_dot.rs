//! Products with bf16 weights on CPUs with AVX512-BF16 (`vdpbf16ps`: 16 lanes, each adding
//! the two products of a pair of bf16 values to an f32 accumulator), as oneDNN's bf16 GEMM
//! does for PyTorch: the activations are rounded to bf16 (nearest, ties to even), the sums
//! stay f32.
//!
//! The product `out [m, width] = a [m, k] · B [k, width]` walks panels of [`NR`] output
//! columns, split across threads. Per panel and block of [`KC`] pairs along k, the caller's
//! packer lays B out as the instruction reads it (for pair p, the 32-bit words
//! `(B[2p][c], B[2p+1][c])` of the panel's columns side by side); the kernel then keeps
//! [`MR`] rows × [`NR`] columns of sums in registers while it walks the pairs. Detection at run
//! time: [`available`].

use std::arch::x86_64::{
    __m512, __m512bh, __m512i, _mm512_dpbf16_ps, _mm512_loadu_si512, _mm512_mask_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_set1_epi32, _mm512_setzero_ps,
};
use std::sync::OnceLock;

use half::bf16;
use rayon::prelude::*;

/// Output columns per panel: two 16-lane registers.
pub(crate) const NR: usize = 32;
/// Rows whose sums stay in registers (2·MR of the 32 vector registers).
const MR: usize = 8;
/// Pairs along k per packed block: `KC × NR` words = 32 KiB, an L1 data cache.
pub(crate) const KC: usize = 256;

/// Whether this CPU runs AVX512-BF16 (checked once).
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    })
}

/// `values` (even length) rounded to bf16, two per little-endian 32-bit word: element 2i in
/// the low half of word i.
pub(crate) fn bf16_pairs(values: &[f32], out: &mut [u32]) {
    for (word, pair) in out.iter_mut().zip(values.chunks_exact(2)) {
        let lo = bf16::from_f32(pair[0]).to_bits();
        let hi = bf16::from_f32(pair[1]).to_bits();
        *word = u32::from(lo) | (u32::from(hi) << 16);
    }
}

/// Lays out pairs `pairs` × columns `columns` of B for the kernel: word
/// `(B[2p][c], B[2p+1][c])` at `dst[(p − pairs.start) · NR + (c − columns.start)]`, zeros for
/// the columns past the panel's end.
pub(crate) trait PackB: Sync {
    /// Fills `dst` (`pairs.len() × NR` words).
    fn pack(&self, pairs: std::ops::Range<usize>, columns: std::ops::Range<usize>, dst: &mut [u32]);
}

/// A raw output pointer shared by the threads, each writing its own columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);

impl Out {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: threads write disjoint columns of the output (one panel each).
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// `out` (`m × width`, row-major) = `a` · B with `a` given as bf16 pairs (`m × pairs` words,
/// [`bf16_pairs`] of each row) and B (`2·pairs × width`) by `b`.
///
/// # Panics
/// When [`available`] is false or a slice is short.
pub(crate) fn product(
    a: &[u32],
    m: usize,
    pairs: usize,
    width: usize,
    b: &dyn PackB,
    out: &mut [f32],
) {
    assert!(available(), "AVX512-BF16 checked by the caller");
    assert!(a.len() >= m * pairs && out.len() >= m * width);
    let dst = Out(out.as_mut_ptr());
    let panels = width.div_ceil(NR);
    (0..panels).into_par_iter().for_each_init(
        || vec![0u32; KC * NR],
        |packed, panel| {
            let columns = panel * NR..((panel + 1) * NR).min(width);
            for first in (0..pairs).step_by(KC) {
                let block = first..(first + KC).min(pairs);
                let packed = &mut packed[..block.len() * NR];
                b.pack(block.clone(), columns.clone(), packed);
                for row in (0..m).step_by(MR) {
                    let rows = MR.min(m - row);
                    // SAFETY: rows `row..row + rows` of `a` from pair `block.start` hold
                    // `block.len()` words each; `packed` holds `block.len() × NR`; the output
                    // rows hold `columns` (inside `width`) of this thread's panel.
                    unsafe {
                        let a = a.as_ptr().add(row * pairs + block.start);
                        let out = dst.ptr().add(row * width + columns.start);
                        let tile = Tile {
                            a,
                            a_stride: pairs,
                            b: packed.as_ptr(),
                            pairs: block.len(),
                            out,
                            out_stride: width,
                            columns: columns.len(),
                            accumulate: first > 0,
                        };
                        match rows {
                            8 => tile.run::<8>(),
                            7 => tile.run::<7>(),
                            6 => tile.run::<6>(),
                            5 => tile.run::<5>(),
                            4 => tile.run::<4>(),
                            3 => tile.run::<3>(),
                            2 => tile.run::<2>(),
                            _ => tile.run::<1>(),
                        }
                    }
                }
            }
        },
    );
}

/// One register tile: up to [`MR`] rows × [`NR`] columns over one packed block.
struct Tile {
    a: *const u32,
    a_stride: usize,
    b: *const u32,
    pairs: usize,
    out: *mut f32,
    out_stride: usize,
    /// Valid output columns (≤ [`NR`]).
    columns: usize,
    /// Add to the output instead of overwriting it.
    accumulate: bool,
}

impl Tile {
    /// # Safety
    /// The pointers cover `R` rows of `pairs` words of `a`, `pairs × NR` words of `b` and `R`
    /// rows of `columns` values of `out`; the CPU has AVX512-BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn run<const R: usize>(&self) {
        let lanes = |n: usize| -> u16 { if n >= 16 { u16::MAX } else { (1u16 << n) - 1 } };
        let masks = [lanes(self.columns), lanes(self.columns.saturating_sub(16))];
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        // SAFETY: as the caller promises.
        unsafe {
            if self.accumulate {
                for (r, sums) in acc.iter_mut().enumerate() {
                    let row = self.out.add(r * self.out_stride);
                    sums[0] = _mm512_mask_loadu_ps(_mm512_setzero_ps(), masks[0], row);
                    sums[1] = _mm512_mask_loadu_ps(_mm512_setzero_ps(), masks[1], row.add(16));
                }
            }
            for p in 0..self.pairs {
                let b0: __m512bh = bh(_mm512_loadu_si512(self.b.add(p * NR).cast()));
                let b1: __m512bh = bh(_mm512_loadu_si512(self.b.add(p * NR + 16).cast()));
                for (r, sums) in acc.iter_mut().enumerate() {
                    let a = bh(_mm512_set1_epi32(*self.a.add(r * self.a_stride + p) as i32));
                    sums[0] = _mm512_dpbf16_ps(sums[0], a, b0);
                    sums[1] = _mm512_dpbf16_ps(sums[1], a, b1);
                }
            }
            for (r, sums) in acc.iter().enumerate() {
                let row = self.out.add(r * self.out_stride);
                store(row, masks[0], sums[0]);
                store(row.add(16), masks[1], sums[1]);
            }
        }
    }
}

/// The 32 bf16 lanes of an integer vector.
#[inline(always)]
fn bh(v: __m512i) -> __m512bh {
    // SAFETY: both are 512 bits of plain data.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
}

/// Stores the lanes of `mask`.
///
/// # Safety
/// `dst` is valid for the masked lanes; the CPU has AVX-512F.
#[inline(always)]
unsafe fn store(dst: *mut f32, mask: u16, v: __m512) {
    if mask != 0 {
        // SAFETY: as the caller promises.
        unsafe { _mm512_mask_storeu_ps(dst, mask, v) };
    }
}
