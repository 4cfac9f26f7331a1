//! The product of activations with a frozen weight, `x W`, written straight into its output.
//!
//! A LoRA-adapted or inference-only projection never needs the gradient of its weight, and
//! burn's CPU backend (flex) allocates every matmul result by zeroing a buffer and copying it
//! into an aligned one before `gemm` overwrites it: two extra passes over every projection's
//! output, forward and backward. [`frozen_matmul`] calls `gemm` on flex into a buffer it
//! allocates itself, and its autodiff backward pass is the one product the input needs,
//! `dx = dy Wᵀ`, the same way.

#[cfg(feature = "cube")]
use burn::backend::Cube;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use burn_flex::FlexTensor;
use gemm::Parallelism;
use rayon::prelude::*;

use crate::kernels::flex_gemm::{Operand, contiguous_f32, f32_tensor, product};

/// `x W` with a constant `W`, on every backend the model runs on (`Dispatch` routes to it).
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff)]
pub trait FrozenMatmulBackend: Backend {
    /// `x` `[m, k]` times `weight` `[k, n]` (any strides) → `[m, n]`.
    fn frozen_matmul(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, weight)
    }
}

#[cfg(feature = "cube")]
impl FrozenMatmulBackend for Cube {}

impl FrozenMatmulBackend for Flex {
    fn frozen_matmul(x: FlexTensor, weight: FlexTensor) -> FlexTensor {
        let [m, k] = x.layout().shape().dims::<2>();
        let n = weight.layout().shape()[1];
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || k == 0 {
            return Self::float_matmul(x, weight);
        }
        let x = x.to_contiguous();
        let x = contiguous_f32(&x);
        let w = Operand::of(&weight);
        let mut out = Vec::<f32>::with_capacity(m * n);
        // One product of `rows` rows of `x` from `first` into `dst` (`rows × n`).
        let rows_product = |dst: *mut f32, first: usize, rows: usize, parallelism| {
            // SAFETY: rows `first..first + rows` of `x` (`m × k`) are read, `w` is the live
            // `[k, n]` weight, and `dst` holds room for `rows × n` values.
            unsafe {
                product(
                    dst,
                    n,
                    [rows, n, k],
                    Operand::rows(x, first, k),
                    w,
                    parallelism,
                );
            }
        };
        // Enough rows: one single-threaded product per thread, as flex does for a batch of
        // matrices (faster on few cores than one product split inside `gemm`). Few rows
        // (decoding): one product, split inside `gemm`.
        let threads = rayon::current_num_threads();
        let rows_per_thread = m.div_ceil(threads);
        if threads > 1 && rows_per_thread >= MIN_ROWS_PER_THREAD {
            out.spare_capacity_mut()
                .par_chunks_mut(rows_per_thread * n)
                .enumerate()
                .for_each(|(i, dst)| {
                    let rows = dst.len() / n;
                    rows_product(
                        dst.as_mut_ptr().cast(),
                        i * rows_per_thread,
                        rows,
                        Parallelism::None,
                    );
                });
        } else {
            rows_product(out.as_mut_ptr(), 0, m, Parallelism::Rayon(0));
        }
        // SAFETY: every one of the `m × n` values was written above.
        unsafe { out.set_len(m * n) };
        f32_tensor(out, Shape::new([m, n]))
    }
}

/// Rows below which a product is not split across threads by rows.
const MIN_ROWS_PER_THREAD: usize = 64;

impl<B: FrozenMatmulBackend, C: CheckpointStrategy> FrozenMatmulBackend for Autodiff<B, C> {
    /// Differentiable in `x` only; `weight` must not be tracked.
    fn frozen_matmul(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        assert!(
            !weight.is_tracked(),
            "frozen_matmul treats the weight as a constant; it needs a gradient here"
        );
        let weight = weight.into_primitive();
        match InputGradient
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::frozen_matmul(x.into_primitive(), weight.clone());
                prep.finish(weight, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::frozen_matmul(x.into_primitive(), weight)),
        }
    }
}

/// [`frozen_matmul`]'s backward step: `dx = dy Wᵀ`, the weight kept as state.
#[derive(Debug)]
struct InputGradient;

impl<B: FrozenMatmulBackend> Backward<B, 1> for InputGradient {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_output = grads.consume::<B>(&ops.node);
        let [x] = ops.parents;
        if let Some(node) = x {
            let grad = B::frozen_matmul(grad_output, B::float_transpose(ops.state));
            grads.register::<B>(node.id, grad);
        }
    }
}

/// `x W` for `x` `[…, k]` and a weight `[k, n]` that needs no gradient (any strides, e.g. a
/// transposed view) → `[…, n]`. Under autodiff, differentiable in `x`.
///
/// # Panics
/// When `weight` is tracked by autodiff.
pub fn frozen_matmul<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    in_rows(x, weight.dims()[1], |rows| {
        Tensor::from_dispatch(Dispatch::frozen_matmul(
            rows.into_dispatch(),
            weight.into_dispatch(),
        ))
    })
}

/// `x W` for `x` `[…, k]` and `weight` `[k, n]` → `[…, n]`: [`frozen_matmul`] when autodiff
/// does not track the weight (inference, LoRA's base weights), else burn's matmul, which also
/// differentiates the weight. Either way one 2-D product: burn's `linear` on a 3-D input
/// broadcasts the weight, which costs a copy of a transposed one (≈ 130 ms per call for
/// SmolLM2's 49152 × 576 output head on flex).
pub fn project<const D: usize>(x: Tensor<D>, weight: Tensor<2>) -> Tensor<D> {
    if weight.is_tracked() {
        in_rows(x, weight.dims()[1], |rows| rows.matmul(weight))
    } else {
        frozen_matmul(x, weight)
    }
}

/// Applies `f` to `x` `[…, k]` seen as rows `[m, k]`, and gives its `[m, n]` result `x`'s
/// leading dimensions back.
fn in_rows<const D: usize>(
    x: Tensor<D>,
    n: usize,
    f: impl FnOnce(Tensor<2>) -> Tensor<2>,
) -> Tensor<D> {
    let dims = x.dims();
    let k = dims[D - 1];
    let mut out_dims = dims;
    out_dims[D - 1] = n;
    f(x.reshape([dims[..D - 1].iter().product(), k])).reshape(out_dims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    fn values(len: usize, step: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32) * step).sin()).collect()
    }

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(found: &[f32], expected: &[f32], what: &str) {
        assert_eq!(found.len(), expected.len(), "{what}");
        let error = found
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(error < 1e-5, "{what}: max error {error}");
    }

    /// Output and input gradient against burn's own matmul under autodiff, for a weight given
    /// as `[k, n]` and as the transposed view of an `[n, k]` tensor.
    #[test]
    fn output_and_input_gradient_match_burns_matmul() {
        let device = Device::default().autodiff();
        let (b, s, k, n) = (2, 3, 5, 4);
        let input = || {
            Tensor::<3>::from_data(TensorData::new(values(b * s * k, 0.37), [b, s, k]), &device)
                .require_grad()
        };
        let upstream =
            Tensor::<3>::from_data(TensorData::new(values(b * s * n, 0.91), [b, s, n]), &device);
        let weight = Tensor::<2>::from_data(TensorData::new(values(k * n, 1.3), [k, n]), &device);
        let n_by_k = Tensor::<2>::from_data(weight.clone().transpose().into_data(), &device);
        for (weight, layout) in [
            (weight, "[k, n]"),
            (n_by_k.transpose(), "transposed [n, k]"),
        ] {
            let (x, x_reference) = (input(), input());
            let ours = frozen_matmul(x.clone(), weight.clone());
            let reference = x_reference.clone().matmul(weight.unsqueeze());
            let grads = (ours.clone() * upstream.clone()).sum().backward();
            let grads_reference = (reference.clone() * upstream.clone()).sum().backward();
            assert_close(&host(ours), &host(reference), &format!("output, {layout}"));
            assert_close(
                &host(x.grad(&grads).unwrap()),
                &host(x_reference.grad(&grads_reference).unwrap()),
                &format!("input gradient, {layout}"),
            );
        }
    }

    #[test]
    #[should_panic(expected = "needs a gradient")]
    fn a_trained_weight_is_refused() {
        let device = Device::default().autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(values(6, 0.5), [2, 3]), &device);
        let weight =
            Tensor::<2>::from_data(TensorData::new(values(6, 0.7), [3, 2]), &device).require_grad();
        let _ = frozen_matmul(x, weight);
    }
}
