//! Cross-entropy of the output head, computed together with its gradient.
//!
//! A causal LM's loss over n scored positions is Σᵢ −log softmax(hᵢ Wᵀ)[yᵢ] (then divided by n,
//! as HF `LlamaForCausalLM`'s `CrossEntropyLoss`), with hᵢ the final hidden state `[d]`, W the
//! output head `[V, d]` and yᵢ the label. Through burn's ops, the `[n, V]` logits, their
//! log-softmax and, in the backward pass, the gradients of both are tensors of their own:
//! 400 MB each for 2040 positions of SmolLM2's 49152-token vocabulary.
//!
//! [`head_nll_sum`] computes the logits of a block of rows at a time, reduces each row to its
//! loss (log-sum-exp minus the label's logit) and, when training, turns the row in place into
//! softmax(hᵢ Wᵀ) − one_hot(yᵢ), whose product with W is the gradient with respect to hᵢ: the
//! fused linear cross-entropy of Liger Kernel (Hsu et al. 2024, arXiv 2410.10989, §3.2). The
//! loss is a sum, so the upstream gradient is a single scalar and the backward pass only scales
//! the gradient computed here. The head W is a constant: the caller keeps the composed ops
//! when W is trained.

#[cfg(feature = "cube")]
use burn::backend::Cube;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::IndexingUpdateOp;
use burn::tensor::{DType, Int, Shape, Tensor};
use burn_flex::FlexTensor;
use gemm::Parallelism;
use rayon::prelude::*;

use crate::kernels::flex_gemm::{Operand, contiguous_f32, f32_tensor, product};
use crate::kernels::vector_exp::{self, exp_shifted_in_place};

/// Rows of logits computed at once by the flex kernel: at most 128 MiB of them.
const BLOCK_BYTES: usize = 128 << 20;

/// The head loss on every backend the model runs on (`Dispatch` routes to it).
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff)]
pub trait HeadLossBackend: Backend {
    /// Σᵢ −log softmax(hᵢ Wᵀ)[yᵢ] as `[1]`, for `hidden` `[n, d]`, `weight` `[V, d]` and
    /// `targets` `[n, 1]` (each in `0..V`).
    fn head_nll_sum(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        composed::<Self>(hidden, weight, targets, false).0
    }

    /// [`HeadLossBackend::head_nll_sum`] and its gradient with respect to `hidden`, `[n, d]`:
    /// (softmax(hᵢ Wᵀ) − one_hot(yᵢ)) W for every row.
    fn head_nll_sum_and_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (loss, grad) = composed::<Self>(hidden, weight, targets, true);
        (loss, grad.expect("asked for the gradient"))
    }
}

/// The loss (and gradient) from the backend's own ops, for any backend and dtype.
fn composed<B: Backend>(
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    targets: IntTensor<B>,
    with_grad: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let logits = B::float_matmul(hidden, B::float_transpose(weight.clone()));
    let shifted = B::float_sub(logits.clone(), B::float_max_dim(logits, 1));
    let exp = B::float_exp(shifted.clone());
    let row_sum = B::float_sum_dim(exp.clone(), 1);
    let picked = B::float_gather(1, shifted, targets.clone());
    let loss = B::float_sum(B::float_sub(B::float_log(row_sum.clone()), picked.clone()));
    let grad = with_grad.then(|| {
        let softmax = B::float_div(exp, row_sum);
        let device = picked.device();
        let minus_one = B::float_full(
            picked.shape(),
            (-1.0).into(),
            &device,
            picked.dtype().into(),
        );
        let shifted = B::float_scatter(1, softmax, targets, minus_one, IndexingUpdateOp::Add);
        B::float_matmul(shifted, weight)
    });
    (loss, grad)
}

impl HeadLossBackend for Flex {
    fn head_nll_sum(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        flex_head_loss(hidden, weight, targets, false).0
    }

    fn head_nll_sum_and_grad(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (loss, grad) = flex_head_loss(hidden, weight, targets, true);
        (loss, grad.expect("asked for the gradient"))
    }
}

#[cfg(feature = "cube")]
impl HeadLossBackend for Cube {}

impl<B: HeadLossBackend, C: CheckpointStrategy> HeadLossBackend for Autodiff<B, C> {
    /// Differentiable in `hidden` only; `weight` must not be tracked.
    fn head_nll_sum(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        assert!(
            !weight.is_tracked(),
            "head_nll_sum treats the output head as a constant; it needs a gradient here"
        );
        match ScaleHeadGradient
            .prepare::<C>([hidden.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, grad) = B::head_nll_sum_and_grad(
                    hidden.into_primitive(),
                    weight.into_primitive(),
                    targets,
                );
                prep.finish(grad, loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::head_nll_sum(
                hidden.into_primitive(),
                weight.into_primitive(),
                targets,
            )),
        }
    }
}

/// [`head_nll_sum`]'s backward step: the gradient with respect to `hidden`, computed in the
/// forward pass, times the upstream gradient of the summed loss.
#[derive(Debug)]
struct ScaleHeadGradient;

impl<B: Backend> Backward<B, 1> for ScaleHeadGradient {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let upstream = B::float_reshape(grads.consume::<B>(&ops.node), Shape::new([1, 1]));
        let [hidden] = ops.parents;
        if let Some(node) = hidden {
            grads.register::<B>(node.id, B::float_mul(ops.state, upstream));
        }
    }
}

/// The flex kernel, in blocks of at most [`BLOCK_BYTES`] of logits. Other dtypes than f32
/// take [`composed`].
fn flex_head_loss(
    hidden: FlexTensor,
    weight: FlexTensor,
    targets: FlexTensor,
    with_grad: bool,
) -> (FlexTensor, Option<FlexTensor>) {
    if hidden.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return composed::<Flex>(hidden, weight, targets, with_grad);
    }
    let vocab = weight.layout().shape()[0];
    let block = (BLOCK_BYTES / (4 * vocab)).max(1);
    flex_head_loss_in_blocks(hidden, weight, targets, with_grad, block)
}

/// The logits of `block` rows at a time through `gemm`, each row reduced (and turned into
/// softmax − one-hot) in place, in parallel, then multiplied by the head for the gradient.
fn flex_head_loss_in_blocks(
    hidden: FlexTensor,
    weight: FlexTensor,
    targets: FlexTensor,
    with_grad: bool,
    block: usize,
) -> (FlexTensor, Option<FlexTensor>) {
    let hidden = hidden.to_contiguous();
    let h = contiguous_f32(&hidden);
    let [vocab, d] = weight.layout().shape().dims::<2>();
    let w = Operand::of(&weight);
    let n = h.len() / d;
    let targets = targets
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("integer targets");
    assert_eq!(targets.len(), n, "one target per hidden row");
    if let Some(bad) = targets.iter().find(|&&y| y < 0 || y as usize >= vocab) {
        panic!("head_nll_sum: target {bad} is outside the vocabulary 0..{vocab}");
    }

    let block = block.clamp(1, n.max(1));
    let mut logits = vec![0.0f32; block * vocab];
    let mut grad = if with_grad {
        vec![0.0f32; n * d]
    } else {
        Vec::new()
    };
    let mut loss = 0.0f64;
    let parallel = Parallelism::Rayon(0);
    for first in (0..n).step_by(block) {
        let rows = block.min(n - first);
        let logits = &mut logits[..rows * vocab];
        let h_rows = Operand::rows(h, first, d);
        // SAFETY: rows `first..first + rows` of `h` (`n × d`) are read, `w` is the live head
        // `[V, d]` read as its transpose, and `logits` holds `rows × V` values.
        unsafe {
            product(
                logits.as_mut_ptr(),
                vocab,
                [rows, vocab, d],
                h_rows,
                w.transposed(),
                parallel,
            );
        };
        loss += logits
            .par_chunks_mut(vocab)
            .zip(&targets[first..first + rows])
            .map(|(row, &y)| row_loss(row, y as usize, with_grad))
            .sum::<f64>();
        if with_grad {
            let out = grad[first * d..].as_mut_ptr();
            let logits = Operand::rows(logits, 0, vocab);
            // SAFETY: `logits` holds the `rows × V` gradients of the logits, `w` is the live
            // head `[V, d]`, and `grad` has rows `first..first + rows` of `[n, d]` left.
            unsafe { product(out, d, [rows, d, vocab], logits, w, parallel) };
        }
    }
    let loss = f32_tensor(vec![loss as f32], Shape::new([1]));
    let grad = with_grad.then(|| f32_tensor(grad, Shape::new([n, d])));
    (loss, grad)
}

/// −log softmax(`row`)[`target`] (log-sum-exp from the row maximum; the sum as
/// [`exp_shifted_in_place`] accumulates it). The row is overwritten either way.
/// With `into_grad` the row becomes softmax(`row`) − one_hot(`target`), the loss's gradient
/// with respect to the logits.
fn row_loss(row: &mut [f32], target: usize, into_grad: bool) -> f64 {
    let max = vector_exp::max(row);
    let picked = row[target];
    let sum = exp_shifted_in_place(row, max);
    if into_grad {
        let inv = (1.0 / sum) as f32;
        for p in row.iter_mut() {
            *p *= inv;
        }
        row[target] -= 1.0;
    }
    f64::from(max) + sum.ln() - f64::from(picked)
}

/// Σᵢ −log softmax(hᵢ Wᵀ)[yᵢ] for `hidden` `[n, d]`, the output head `weight` `[V, d]` and
/// `targets` `[n, 1]`, as `[1]`. Under autodiff, differentiable in `hidden`; `weight` must not
/// require a gradient.
///
/// # Panics
/// When a target is outside `0..V`, or `weight` is tracked by autodiff.
pub fn head_nll_sum(hidden: Tensor<2>, weight: Tensor<2>, targets: Tensor<2, Int>) -> Tensor<1> {
    Tensor::from_dispatch(Dispatch::head_nll_sum(
        hidden.into_dispatch(),
        weight.into_dispatch(),
        targets.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    fn flex_tensor(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    /// Blocks of 1, 2 and 3 rows (the last one short) give the loss and gradient of a single
    /// block: the block loop, the row offsets into `hidden` and `grad`.
    #[test]
    fn blocks_of_rows_give_the_single_block_result() {
        let (n, d, vocab) = (5, 3, 11);
        let values = |len: usize, step: f32| (0..len).map(|i| ((i as f32) * step).sin()).collect();
        let hidden = flex_tensor(values(n * d, 0.7), [n, d]);
        let weight = flex_tensor(values(vocab * d, 1.3), [vocab, d]);
        let targets = FlexTensor::from_data(TensorData::new(vec![0i64, 10, 3, 3, 7], [n, 1]));
        let run = |block| {
            let (loss, grad) = flex_head_loss_in_blocks(
                hidden.clone(),
                weight.clone(),
                targets.clone(),
                true,
                block,
            );
            let host = |t: FlexTensor| t.into_data().try_into_vec::<f32>().unwrap();
            (host(loss), host(grad.unwrap()))
        };
        let whole = run(n);
        for block in 1..=3 {
            let (loss, grad) = run(block);
            assert!(
                (loss[0] - whole.0[0]).abs() < 1e-5,
                "block {block}: {loss:?}"
            );
            assert!(
                grad.iter().zip(&whole.1).all(|(a, b)| (a - b).abs() < 1e-6),
                "block {block}"
            );
        }
    }
}
