//! Products with a frozen weight kept in its storage format ([`StoredMatrix`]: bf16, f16 or a
//! GGUF block format): `x Wᵀ` for the projection and `dy W` for its input gradient, W being HF
//! `[out, in]`. The weight is never held as f32 as a whole.
//!
//! On the CPU (flex) the weight is dequantised one tile of at most [`TILE_VALUES`] values at a
//! time into a per-thread buffer, which `gemm` multiplies into the output's columns; threads
//! take panels of output columns. A bf16 weight on a CPU with AVX512-BF16 takes
//! [`super::bf16_dot`] instead (activations rounded to bf16, f32 sums) unless
//! [`set_bf16_dot_products`] turned that off. Other backends (wgpu) dequantise the whole
//! weight for each call and use their matmul: correct, with none of the memory saving, and not
//! yet run on a GPU.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "cube")]
use burn::backend::Cube;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, Shape, Tensor, TensorData};
use burn_flex::FlexTensor;
use gemm::Parallelism;
use rayon::prelude::*;

use crate::io::gguf::GgmlType;
use crate::io::stored::StoredMatrix;
use crate::kernels::flex_gemm::{Operand, contiguous_f32, f32_tensor, product_into};

/// Values of W dequantised at once per thread: 256 KiB of f32, within a 1 MiB L2.
const TILE_VALUES: usize = 64 * 1024;
/// Output columns per thread's panel at most.
const PANEL: usize = 256;

static BF16_DOT_OFF: AtomicBool = AtomicBool::new(false);

/// Turns the AVX512-BF16 products of bf16 weights on (the default, where the CPU has the
/// instructions) or off (bf16 weights are then widened to f32 tile by tile, like the other
/// formats). Process-wide; for comparisons and tests.
pub fn set_bf16_dot_products(enabled: bool) {
    BF16_DOT_OFF.store(!enabled, Ordering::Relaxed);
}

/// Whether bf16 weights take AVX512-BF16 dot products: this CPU has them and
/// [`set_bf16_dot_products`] did not turn them off.
pub fn bf16_dot_products() -> bool {
    !BF16_DOT_OFF.load(Ordering::Relaxed) && bf16_dot_available()
}

#[cfg(target_arch = "x86_64")]
fn bf16_dot_available() -> bool {
    super::bf16_dot::available()
}

#[cfg(not(target_arch = "x86_64"))]
fn bf16_dot_available() -> bool {
    false
}

/// Products with a stored weight on every backend the model runs on (`Dispatch` routes to it).
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff)]
pub trait StoredMatmulBackend: Backend {
    /// `x` `[m, in]` times `Wᵀ` for `weight` W `[out, in]` → `[m, out]`.
    fn stored_matmul(x: FloatTensor<Self>, weight: StoredMatrix) -> FloatTensor<Self> {
        dequantized_product::<Self>(x, &weight, Side::Forward)
    }

    /// `dy` `[m, out]` times W `[out, in]` → `[m, in]`: the input gradient of
    /// [`StoredMatmulBackend::stored_matmul`].
    fn stored_matmul_input_grad(dy: FloatTensor<Self>, weight: StoredMatrix) -> FloatTensor<Self> {
        dequantized_product::<Self>(dy, &weight, Side::InputGrad)
    }
}

/// Which product of W a call computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `x Wᵀ`: the reduction runs along W's rows (`in`), the output columns are W's rows.
    Forward,
    /// `dy W`: the reduction runs over W's rows (`out`), the output columns are W's columns.
    InputGrad,
}

/// The product on a backend's own matmul, from the whole weight dequantised to f32.
fn dequantized_product<B: Backend>(
    lhs: FloatTensor<B>,
    weight: &StoredMatrix,
    side: Side,
) -> FloatTensor<B> {
    let device = lhs.device();
    let w = B::float_from_data(TensorData::new(weight.to_f32(), weight.shape()), &device);
    match side {
        Side::Forward => B::float_matmul(lhs, B::float_transpose(w)),
        Side::InputGrad => B::float_matmul(lhs, w),
    }
}

#[cfg(feature = "cube")]
impl StoredMatmulBackend for Cube {}

impl StoredMatmulBackend for Flex {
    fn stored_matmul(x: FlexTensor, weight: StoredMatrix) -> FlexTensor {
        flex_product(x, &weight, Side::Forward)
    }

    fn stored_matmul_input_grad(dy: FlexTensor, weight: StoredMatrix) -> FlexTensor {
        flex_product(dy, &weight, Side::InputGrad)
    }
}

/// The CPU product of `lhs` `[m, k]` (f32; other dtypes take [`dequantized_product`]).
fn flex_product(lhs: FlexTensor, weight: &StoredMatrix, side: Side) -> FlexTensor {
    if lhs.dtype() != DType::F32 {
        return dequantized_product::<Flex>(lhs, weight, side);
    }
    let [m, k] = lhs.layout().shape().dims::<2>();
    let [rows, cols] = weight.shape();
    let width = match side {
        Side::Forward => rows,
        Side::InputGrad => cols,
    };
    assert_eq!(
        k,
        match side {
            Side::Forward => cols,
            Side::InputGrad => rows,
        },
        "inner dimensions of a stored-weight product"
    );
    let lhs = lhs.to_contiguous();
    let out = stored_product(contiguous_f32(&lhs), m, weight, side);
    debug_assert_eq!(out.len(), m * width);
    f32_tensor(out, Shape::new([m, width]))
}

/// `lhs` (`m × k`, row-major) times Wᵀ or W as `side` says, `m × width` row-major.
fn stored_product(lhs: &[f32], m: usize, weight: &StoredMatrix, side: Side) -> Vec<f32> {
    let [rows, cols] = weight.shape();
    let (k, width) = match side {
        Side::Forward => (cols, rows),
        Side::InputGrad => (rows, cols),
    };
    #[cfg(target_arch = "x86_64")]
    if weight.dtype() == GgmlType::BF16 && k.is_multiple_of(2) && bf16_dot_products() {
        return bf16_product(lhs, m, weight, side);
    }
    let mut out = Vec::<f32>::with_capacity(m * width);
    if m == 0 || width == 0 {
        return out;
    }
    if k == 0 {
        out.resize(m * width, 0.0);
        return out;
    }
    let block = weight.block_size();
    // Panels of at most PANEL output columns, a multiple of the thread count of them, the
    // columns of W (`InputGrad`) split only at block boundaries.
    let threads = rayon::current_num_threads().max(1);
    let align = if side == Side::InputGrad { block } else { 16 };
    let panels = width
        .div_ceil(PANEL.max(align))
        .max(threads)
        .next_multiple_of(threads);
    let panel = width.div_ceil(panels).next_multiple_of(align);
    // Reduction chunks of equal length, a tile of `panel × chunk` values within about
    // TILE_VALUES; W's columns (`Forward`) split at block boundaries.
    let chunk_align = if side == Side::Forward { block } else { 1 };
    let chunks = k.div_ceil((TILE_VALUES / panel).max(chunk_align));
    let chunk = k.div_ceil(chunks).next_multiple_of(chunk_align);
    let dst = OutPtr(out.as_mut_ptr());
    (0..width.div_ceil(panel)).into_par_iter().for_each_init(
        || vec![0.0f32; panel * chunk],
        |tile, p| {
            let columns = p * panel..((p + 1) * panel).min(width);
            for (c, first) in (0..k).step_by(chunk).enumerate() {
                let reduction = first..(first + chunk).min(k);
                let (tile_rows, tile_cols): (Range<usize>, Range<usize>) = match side {
                    Side::Forward => (columns.clone(), reduction.clone()),
                    Side::InputGrad => (reduction.clone(), columns.clone()),
                };
                let stride = tile_cols.len();
                weight.dequantize_tile(tile_rows, tile_cols, tile, stride);
                // The tile as the `[reduction, columns]` right-hand side.
                let rhs = match side {
                    Side::Forward => Operand::strided(tile, 0, 1, stride as isize),
                    Side::InputGrad => Operand::strided(tile, 0, stride as isize, 1),
                };
                // SAFETY: `lhs` is `m × k` and the operand reads its columns `reduction`;
                // `rhs` covers `reduction.len() × columns.len()` values of `tile`; the
                // output's columns `columns` (inside `width`) belong to this panel alone and
                // were written by chunk 0 before later chunks add to them.
                unsafe {
                    product_into(
                        dst.ptr().add(columns.start),
                        width,
                        [m, columns.len(), reduction.len()],
                        Operand::strided(lhs, reduction.start, k as isize, 1),
                        rhs,
                        c > 0,
                        Parallelism::None,
                    );
                }
            }
        },
    );
    // SAFETY: every panel wrote its columns of all `m` rows.
    unsafe { out.set_len(m * width) };
    out
}

/// A raw output pointer shared by the threads, each writing its own columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);

impl OutPtr {
    /// The pointer (a method, so that closures capture the whole `Sync` wrapper).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: threads write disjoint columns of the output (one panel each).
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// [`stored_product`] of a bf16 weight on AVX512-BF16.
#[cfg(target_arch = "x86_64")]
fn bf16_product(lhs: &[f32], m: usize, weight: &StoredMatrix, side: Side) -> Vec<f32> {
    use super::bf16_dot::{self, NR, PackB, bf16_pairs};

    let [rows, cols] = weight.shape();
    let w = weight.bf16_values().expect("a bf16 weight");
    let (k, width) = match side {
        Side::Forward => (cols, rows),
        Side::InputGrad => (rows, cols),
    };
    let pairs = k / 2;
    let mut a = vec![0u32; m * pairs];
    a.par_chunks_mut(pairs.max(1))
        .zip(lhs.par_chunks(k.max(1)))
        .for_each(|(words, row)| bf16_pairs(row, words));

    /// `x Wᵀ`: pair p of output column c is `(W[c][2p], W[c][2p+1])`, adjacent in W's row.
    struct RowPairs<'a> {
        w: &'a [u16],
        cols: usize,
    }
    impl PackB for RowPairs<'_> {
        fn pack(&self, pairs: Range<usize>, columns: Range<usize>, dst: &mut [u32]) {
            for (j, c) in (columns.start..columns.start + NR).enumerate() {
                for (i, p) in pairs.clone().enumerate() {
                    dst[i * NR + j] = if c < columns.end {
                        let at = c * self.cols + 2 * p;
                        u32::from(self.w[at]) | (u32::from(self.w[at + 1]) << 16)
                    } else {
                        0
                    };
                }
            }
        }
    }
    /// `dy W`: pair q of output column c is `(W[2q][c], W[2q+1][c])`, from two rows of W.
    struct ColumnPairs<'a> {
        w: &'a [u16],
        cols: usize,
    }
    impl PackB for ColumnPairs<'_> {
        fn pack(&self, pairs: Range<usize>, columns: Range<usize>, dst: &mut [u32]) {
            for (i, q) in pairs.enumerate() {
                let (even, odd) = (2 * q * self.cols, (2 * q + 1) * self.cols);
                let out = &mut dst[i * NR..(i + 1) * NR];
                for (j, word) in out.iter_mut().enumerate() {
                    let c = columns.start + j;
                    *word = if c < columns.end {
                        u32::from(self.w[even + c]) | (u32::from(self.w[odd + c]) << 16)
                    } else {
                        0
                    };
                }
            }
        }
    }

    let mut out = vec![0.0f32; m * width];
    match side {
        Side::Forward => {
            bf16_dot::product(&a, m, pairs, width, &RowPairs { w, cols }, &mut out);
        }
        Side::InputGrad => {
            bf16_dot::product(&a, m, pairs, width, &ColumnPairs { w, cols }, &mut out);
        }
    }
    out
}

impl<B: StoredMatmulBackend, C: CheckpointStrategy> StoredMatmulBackend for Autodiff<B, C> {
    /// Differentiable in `x`; the weight is a constant.
    fn stored_matmul(x: FloatTensor<Self>, weight: StoredMatrix) -> FloatTensor<Self> {
        match StoredInputGradient
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::stored_matmul(x.into_primitive(), weight.clone());
                prep.finish(weight, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::stored_matmul(x.into_primitive(), weight)),
        }
    }
}

/// [`stored_matmul`]'s backward step: `dx = dy W`, the stored weight kept as state.
#[derive(Debug)]
struct StoredInputGradient;

impl<B: StoredMatmulBackend> Backward<B, 1> for StoredInputGradient {
    type State = StoredMatrix;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<B>(&ops.node);
        let [x] = ops.parents;
        if let Some(node) = x {
            grads.register::<B>(node.id, B::stored_matmul_input_grad(grad_output, ops.state));
        }
    }
}

/// `x Wᵀ` for `x` `[…, in]` and a frozen `weight` W `[out, in]` kept in its storage format →
/// `[…, out]`. Under autodiff, differentiable in `x`.
///
/// # Panics
/// When `x`'s last dimension is not `in`.
pub fn stored_matmul<const D: usize>(x: Tensor<D>, weight: &StoredMatrix) -> Tensor<D> {
    let dims = x.dims();
    let [out, input] = weight.shape();
    assert_eq!(
        dims[D - 1],
        input,
        "input features of a stored weight {:?}",
        weight
    );
    let mut out_dims = dims;
    out_dims[D - 1] = out;
    let rows = x.reshape([dims[..D - 1].iter().product(), input]);
    Tensor::<2>::from_dispatch(Dispatch::stored_matmul(
        rows.into_dispatch(),
        weight.clone(),
    ))
    .reshape(out_dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use half::f16;

    fn values(len: usize, step: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32) * step).sin()).collect()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// `lhs · Wᵀ` (or `· W`) in f64 from the dequantised weight.
    fn reference(lhs: &[f32], m: usize, w: &StoredMatrix, side: Side) -> Vec<f32> {
        let [rows, cols] = w.shape();
        let dense = w.to_f32();
        let (k, width) = match side {
            Side::Forward => (cols, rows),
            Side::InputGrad => (rows, cols),
        };
        let mut out = vec![0.0; m * width];
        for i in 0..m {
            for j in 0..width {
                let sum: f64 = (0..k)
                    .map(|t| {
                        let wv = match side {
                            Side::Forward => dense[j * cols + t],
                            Side::InputGrad => dense[t * cols + j],
                        };
                        f64::from(lhs[i * k + t]) * f64::from(wv)
                    })
                    .sum();
                out[i * width + j] = sum as f32;
            }
        }
        out
    }

    fn f16_matrix(rows: usize, cols: usize, step: f32) -> StoredMatrix {
        let bytes = values(rows * cols, step)
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect();
        StoredMatrix::new(GgmlType::F16, rows, cols, bytes).unwrap()
    }

    /// Several panels and reduction chunks (tiles smaller than the weight in both directions),
    /// odd sizes, both sides, against an f64 product of the dequantised weight.
    #[test]
    fn tiles_cover_the_product_on_both_sides() {
        for (m, rows, cols) in [(3, 5, 7), (17, 300, 520), (1, 600, 40)] {
            let w = f16_matrix(rows, cols, 0.37);
            for side in [Side::Forward, Side::InputGrad] {
                let k = if side == Side::Forward { cols } else { rows };
                let lhs = values(m * k, 0.11);
                let found = stored_product(&lhs, m, &w, side);
                let expected = reference(&lhs, m, &w, side);
                let error = max_abs_diff(&found, &expected);
                assert!(error < 1e-4, "{m}×{rows}×{cols} {side:?}: {error}");
            }
        }
    }

    /// The AVX512-BF16 products against f64 sums of the bf16-rounded operands, which they
    /// compute up to the order of the f32 sums: 1e-4 relative to Σ|x w|. The pairs need an
    /// even reduction length; an odd one ([`stored_product`] with 33 rows) takes the f32 tiles.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn bf16_dot_products_match_rounded_operands() {
        if !bf16_dot_available() {
            eprintln!(
                "skipped: llama::kernels::stored_matmul::tests::bf16_dot_products_match_rounded_operands (no AVX512-BF16 on this CPU)"
            );
            return;
        }
        let round = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .map(|&x| half::bf16::from_f32(x).to_f32())
                .collect()
        };
        for (m, rows, cols) in [(1, 34, 64), (9, 70, 530), (20, 64, 1040)] {
            let w = StoredMatrix::bf16_from_f32(rows, cols, &values(rows * cols, 0.29));
            for side in [Side::Forward, Side::InputGrad] {
                let k = if side == Side::Forward { cols } else { rows };
                let lhs = values(m * k, 0.13);
                let found = bf16_product(&lhs, m, &w, side);
                let expected = reference(&round(&lhs), m, &w, side);
                let error = max_abs_diff(&found, &expected);
                assert!(
                    error < 1e-4 * k as f32,
                    "{m}×{rows}×{cols} {side:?}: {error}"
                );
            }
        }
        let w = StoredMatrix::bf16_from_f32(33, 64, &values(33 * 64, 0.29));
        let lhs = values(2 * 33, 0.13);
        let found = stored_product(&lhs, 2, &w, Side::InputGrad);
        let error = max_abs_diff(&found, &reference(&lhs, 2, &w, Side::InputGrad));
        assert!(error < 1e-4, "odd reduction: {error}");
    }

    /// Output and input gradient under autodiff against burn's matmul of the dequantised
    /// weight.
    #[test]
    fn autodiff_gives_the_input_gradient() {
        let device = Device::default().autodiff();
        let (b, s, input, out) = (2, 3, 8, 5);
        let w = f16_matrix(out, input, 0.9);
        let dense = Tensor::<2>::from_data(TensorData::new(w.to_f32(), [out, input]), &device);
        let x = || {
            Tensor::<3>::from_data(
                TensorData::new(values(b * s * input, 0.3), [b, s, input]),
                &device,
            )
            .require_grad()
        };
        let (x1, x2) = (x(), x());
        let upstream = Tensor::<3>::from_data(
            TensorData::new(values(b * s * out, 0.7), [b, s, out]),
            &device,
        );
        let ours = stored_matmul(x1.clone(), &w);
        let reference = x2.clone().matmul(dense.transpose().unsqueeze());
        let g1 = (ours.clone() * upstream.clone()).sum().backward();
        let g2 = (reference.clone() * upstream).sum().backward();
        let host = |t: Tensor<3>| t.into_data().try_into_vec::<f32>().unwrap();
        assert!(max_abs_diff(&host(ours), &host(reference)) < 1e-5);
        assert!(max_abs_diff(&host(x1.grad(&g1).unwrap()), &host(x2.grad(&g2).unwrap())) < 1e-5);
    }
}
