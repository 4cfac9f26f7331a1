//! The flex (CPU) kernels of [`crate::kernels::attention`] for f32: the attention output and the
//! attention probabilities of one (batch, head) pair per Rayon task.
//!
//! Two things make them faster than burn-flex's `attention` (below its flash threshold
//! `attention_naive_impl`), which scores every (query, key) pair and exponentiates with libm's
//! scalar `expf`:
//! - Query rows go in blocks of [`ROW_BLOCK`]; a block's scores stop at the last key any of
//!   its rows may attend to, so under a causal mask the products above the diagonal (about
//!   half of Q Kᵀ and of P V) are never computed.
//! - The softmax exponentiates 8 values at a time (`crate::kernels::vector_exp`).
//!
//! The arithmetic is burn's `attention_fallback` (`burn-backend`, `ops/modules/attention.rs`)
//! written per row: scores scaled, blocked scores replaced by −∞, the row maximum subtracted
//! before `exp`, then divided by the row sum; a fully blocked row is all zeros.
//!
//! Keys and values have as many heads as the queries (the model repeats grouped key/value
//! heads first, HF `repeat_kv`), as the autodiff backward pass of [`crate::kernels::attention`] expects.

use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};
use gemm::Parallelism;
use rayon::prelude::*;
use wide::f32x8;

use crate::kernels::flex_gemm::{Operand, f32_tensor, product};
use crate::kernels::vector_exp::exp_shifted_in_place;

/// Query rows per block: small enough that a causal mask skips most of the masked products
/// (32 of 256 rows compute 56 % of the full scores), big enough for efficient products.
const ROW_BLOCK: usize = 32;

/// Multiply-adds of a call from which its heads run in parallel.
const PARALLEL_WORK: usize = 256 * 1024;

/// Where element `[i0, i1, i2, i3]` of a 4-D tensor is in its storage.
#[derive(Debug, Clone, Copy)]
struct Strides4 {
    first: usize,
    strides: [usize; 4],
}

impl Strides4 {
    /// The strides of `tensor`, or `None` when one is negative (a flipped view).
    fn of(tensor: &FlexTensor) -> Option<Self> {
        let layout = tensor.layout();
        let strides = layout.strides();
        let mut out = [0; 4];
        for (o, &s) in out.iter_mut().zip(strides) {
            *o = usize::try_from(s).ok()?;
        }
        Some(Self {
            first: layout.start_offset(),
            strides: out,
        })
    }

    fn at(&self, index: [usize; 4]) -> usize {
        self.first
            + index
                .iter()
                .zip(self.strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()
    }

    /// The matrix of the last two dimensions at `[i0, i1, row, 0]`.
    fn matrix(&self, values: &[f32], [i0, i1, row]: [usize; 3]) -> Operand {
        Operand::strided(
            values,
            self.at([i0, i1, row, 0]),
            self.strides[2] as isize,
            self.strides[3] as isize,
        )
    }
}

/// A tensor as stored, with non-negative strides and, if `unit_rows`, consecutive values in
/// its last dimension (a copy only where the view has neither).
fn readable(tensor: FlexTensor, unit_rows: bool) -> (FlexTensor, Strides4) {
    match Strides4::of(&tensor) {
        Some(strides) if !unit_rows || strides.strides[3] == 1 => (tensor, strides),
        _ => {
            let tensor = tensor.to_contiguous();
            let strides = Strides4::of(&tensor).expect("contiguous strides are positive");
            (tensor, strides)
        }
    }
}

/// Whether the kernels handle these tensors: 4-D f32 (other types take burn's ops).
pub(crate) fn supported(tensors: &[&FlexTensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.layout().num_dims() == 4)
}

/// Query, key and mask of one attention call, read in place.
struct Scores<'a> {
    query: &'a [f32],
    query_at: Strides4,
    key: &'a [f32],
    key_at: Strides4,
    blocked: &'a [u8],
    blocked_at: Strides4,
    /// `[b, h, s, t, d]`.
    dims: [usize; 5],
    scale: f32,
}

impl Scores<'_> {
    /// Whether the heads are worth spreading over threads: handing work to the Rayon pool
    /// costs more than a decoding step's few products (burn-flex's attention draws the line at
    /// the same 256 K multiply-adds).
    fn parallel(&self) -> bool {
        let [b, h, s, t, d] = self.dims;
        b * h > 1 && b * h * s * t * 2 * d >= PARALLEL_WORK
    }

    /// Runs `head(scratch, [bi, hi])` for every (batch, head) pair, on the Rayon pool when
    /// [`Scores::parallel`]; `scratch` is a buffer each thread reuses.
    fn for_each_head(&self, head: impl Fn(&mut Vec<f32>, [usize; 2]) + Sync) {
        let [b, h, ..] = self.dims;
        let task = |scratch: &mut Vec<f32>, i: usize| head(scratch, [i / h, i % h]);
        if self.parallel() {
            (0..b * h).into_par_iter().for_each_init(Vec::new, task);
        } else {
            let mut scratch = Vec::new();
            (0..b * h).for_each(|i| task(&mut scratch, i));
        }
    }

    /// The blocks of query rows of one head: `(first, rows, end)` with `end` one past the last
    /// key any of rows `first..first + rows` may attend to (0 when all are fully blocked).
    fn row_blocks(&self, [bi, hi]: [usize; 2]) -> impl Iterator<Item = [usize; 3]> + '_ {
        let s = self.dims[2];
        (0..s).step_by(ROW_BLOCK).map(move |first| {
            let rows = ROW_BLOCK.min(s - first);
            let end = (first..first + rows)
                .map(|i| {
                    self.blocked_row([bi, hi, i])
                        .iter()
                        .rposition(|&m| m == 0)
                        .map_or(0, |j| j + 1)
                })
                .max()
                .unwrap_or(0);
            [first, rows, end]
        })
    }

    /// The mask row of query `i` of head `(bi, hi)`: `t` bytes, non-zero where it may not
    /// attend.
    fn blocked_row(&self, [bi, hi, i]: [usize; 3]) -> &[u8] {
        let first = self.blocked_at.at([bi, hi, i, 0]);
        &self.blocked[first..first + self.dims[3]]
    }

    /// Writes the probabilities of query rows `first..first + rows` of head `(bi, hi)` over
    /// keys `0..end` into `dst` (`rows × end`, `dst_row_stride` values between rows).
    ///
    /// # Safety
    /// `dst` must be valid for those writes, and `end ≥ 1` no larger than `t`.
    unsafe fn probabilities(
        &self,
        [bi, hi]: [usize; 2],
        [first, rows, end]: [usize; 3],
        dst: *mut f32,
        dst_row_stride: usize,
    ) {
        let d = self.dims[4];
        let query = self.query_at.matrix(self.query, [bi, hi, first]);
        let key = self.key_at.matrix(self.key, [bi, hi, 0]);
        // SAFETY: `query` covers `rows × d` values of the live query, `key` `end × d` of the
        // live key (read transposed; shapes checked in `with_scores`), and the caller vouches
        // for `dst`.
        unsafe {
            product(
                dst,
                dst_row_stride,
                [rows, end, d],
                query,
                key.transposed(),
                Parallelism::None,
            );
        };
        for r in 0..rows {
            // SAFETY: row `r` of `dst` holds `end` values just written.
            let row = unsafe { std::slice::from_raw_parts_mut(dst.add(r * dst_row_stride), end) };
            softmax_row(
                row,
                self.scale,
                &self.blocked_row([bi, hi, first + r])[..end],
            );
        }
    }
}

/// Scales `row`, replaces the entries whose `blocked` byte is non-zero by −∞ and applies
/// softmax in place; a fully blocked row becomes zeros. `blocked` is as long as `row`.
fn softmax_row(row: &mut [f32], scale: f32, blocked: &[u8]) {
    if blocked.iter().all(|&m| m != 0) {
        row.fill(0.0);
        return;
    }
    // All bits set where blocked: the lane mask of `select`.
    let lane = |m: u8| f32::from_bits(if m != 0 { u32::MAX } else { 0 });
    let minus_infinity = f32x8::splat(f32::NEG_INFINITY);
    let mut maxes = minus_infinity;
    let mut chunks = row.chunks_exact_mut(8);
    let mut masks = blocked.chunks_exact(8);
    for (chunk, mask) in (&mut chunks).zip(&mut masks) {
        let values: &mut [f32; 8] = chunk.try_into().expect("chunks of 8");
        let mask: &[u8; 8] = mask.try_into().expect("chunks of 8");
        let v = f32x8::new(mask.map(lane))
            .select(minus_infinity, f32x8::new(*values) * f32x8::splat(scale));
        *values = v.to_array();
        maxes = maxes.max(v);
    }
    let mut max = maxes
        .to_array()
        .into_iter()
        .fold(f32::NEG_INFINITY, f32::max);
    for (v, &m) in chunks.into_remainder().iter_mut().zip(masks.remainder()) {
        *v = if m != 0 {
            f32::NEG_INFINITY
        } else {
            *v * scale
        };
        max = max.max(*v);
    }
    let inv = (1.0 / exp_shifted_in_place(row, max)) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// A raw output pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);

// SAFETY: each task writes only its own (batch, head) rows.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer `offset` values on.
    ///
    /// # Safety
    /// As `pointer::add`.
    unsafe fn add(self, offset: usize) -> *mut f32 {
        // SAFETY: as the caller promises.
        unsafe { self.0.add(offset) }
    }
}

/// Runs `f` with the scores of one call.
///
/// # Panics
/// Unless `key` is `[b, h, t, d]` and `blocked` `[b, h, s, t]` for `query` `[b, h, s, d]`.
fn with_scores<R>(
    query: FlexTensor,
    key: FlexTensor,
    blocked: FlexTensor,
    scale: f64,
    f: impl FnOnce(&Scores<'_>) -> R,
) -> R {
    let (query, query_at) = readable(query, false);
    let (key, key_at) = readable(key, false);
    let (blocked, blocked_at) = readable(blocked, true);
    let [b, h, s, d] = query.layout().shape().dims::<4>();
    let t = key.layout().shape()[2];
    assert_eq!(
        key.layout().shape().dims::<4>(),
        [b, h, t, d],
        "attention: the key is [b, h, t, d] for a [b, h, s, d] query"
    );
    assert_eq!(
        blocked.layout().shape().dims::<4>(),
        [b, h, s, t],
        "attention: the mask is [b, h, s, t]"
    );
    f(&Scores {
        query: query.storage::<f32>(),
        query_at,
        key: key.storage::<f32>(),
        key_at,
        blocked: blocked.bytes(),
        blocked_at,
        dims: [b, h, s, t, d],
        scale: scale as f32,
    })
}

/// softmax(scale · Q Kᵀ, blocked at −∞) V: `query` `[b, h, s, d]`, `key` `[b, h, t, d]`,
/// `value` `[b, h, t, dv]`, `blocked` `[b, h, s, t]`. Returns `[b, h, s, dv]`, stored as
/// `[b, s, h, dv]` (the layout the output projection reads).
///
/// # Panics
/// For inputs that [`supported`] rejects, or shapes other than these.
pub(crate) fn attention(
    query: FlexTensor,
    key: FlexTensor,
    value: FlexTensor,
    blocked: FlexTensor,
    scale: f64,
) -> FlexTensor {
    assert!(
        supported(&[&query, &key, &value]),
        "attention: 4-D f32 inputs"
    );
    let (value, value_at) = readable(value, false);
    let [vb, vh, vt, dv] = value.layout().shape().dims::<4>();
    let v = value.storage::<f32>();
    with_scores(query, key, blocked, scale, |scores| {
        let [b, h, s, t, _] = scores.dims;
        assert_eq!(
            [vb, vh, vt],
            [b, h, t],
            "attention: the value is [b, h, t, dv]"
        );
        let row_stride = h * dv;
        let mut out = Vec::<f32>::with_capacity(b * s * row_stride);
        let dst = Shared(out.as_mut_ptr());
        scores.for_each_head(|probs, [bi, hi]| {
            let value = value_at.matrix(v, [bi, hi, 0]);
            for [first, rows, end] in scores.row_blocks([bi, hi]) {
                // SAFETY: row `i` of head (bi, hi) is `dv` values at `(bi·s + i)·h·dv + hi·dv`
                // of the `b·s·h·dv` output, written by this task only.
                let out_rows = unsafe { dst.add((bi * s + first) * row_stride + hi * dv) };
                if end == 0 {
                    for r in 0..rows {
                        // SAFETY: as above.
                        unsafe { std::ptr::write_bytes(out_rows.add(r * row_stride), 0, dv) };
                    }
                    continue;
                }
                probs.resize(rows * end, 0.0);
                // SAFETY: `probs` holds `rows × end` values; `1 ≤ end ≤ t`. `value` covers
                // `end × dv` values of the live value tensor (its shape checked above).
                unsafe {
                    scores.probabilities([bi, hi], [first, rows, end], probs.as_mut_ptr(), end);
                    product(
                        out_rows,
                        row_stride,
                        [rows, dv, end],
                        Operand::rows(probs, 0, end),
                        value,
                        Parallelism::None,
                    );
                }
            }
        });
        // SAFETY: every (batch, head, row) wrote its `dv` values above.
        unsafe { out.set_len(b * s * row_stride) };
        let strides = [s * row_stride, dv, row_stride, 1].map(|x| x as isize);
        let layout = Layout::new(Shape::new([b, h, s, dv]), strides.to_vec(), 0);
        FlexTensor::new(Bytes::from_elems(out), layout, DType::F32)
    })
}

/// softmax(scale · Q Kᵀ, blocked at −∞), `[b, h, s, t]` contiguous, for the inputs of
/// [`attention`].
///
/// # Panics
/// As [`attention`].
pub(crate) fn probabilities(
    query: FlexTensor,
    key: FlexTensor,
    blocked: FlexTensor,
    scale: f64,
) -> FlexTensor {
    assert!(supported(&[&query, &key]), "attention: 4-D f32 inputs");
    with_scores(query, key, blocked, scale, |scores| {
        let [b, h, s, t, _] = scores.dims;
        // Zeros: what blocks leave unwritten (keys past `end`, fully blocked blocks) stays 0.
        let mut out = vec![0.0f32; b * h * s * t];
        let dst = Shared(out.as_mut_ptr());
        scores.for_each_head(|_, [bi, hi]| {
            for [first, rows, end] in scores.row_blocks([bi, hi]) {
                if end > 0 {
                    // SAFETY: rows `first..first + rows` of head (bi, hi)'s `s × t` block of
                    // the `[b, h, s, t]` output, `end ≤ t` of each row's values, written by
                    // this task only.
                    unsafe {
                        let rows_start = dst.add(((bi * h + hi) * s + first) * t);
                        scores.probabilities([bi, hi], [first, rows, end], rows_start, t);
                    };
                }
            }
        });
        f32_tensor(out, Shape::new([b, h, s, t]))
    })
}
