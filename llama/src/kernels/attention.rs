//! Masked scaled dot-product attention whose backward pass recomputes the attention
//! probabilities instead of keeping them.
//!
//! burn's `attention` op is differentiated through its decomposed form: under autodiff every
//! `[b, h, s, t]` intermediate (scores, masked scores, their exponentials, the probabilities) is
//! a tensor of its own, and those the backward pass needs stay alive from the forward pass to
//! the backward pass, 30 layers at a time. [`masked_attention`] runs one fused forward pass
//! (on flex for f32 the kernel of `flex_attention`, which skips the products of keys no query
//! in a block may attend to; elsewhere the backend's `attention` op) and keeps only Q, K, V and
//! the mask; its backward pass rebuilds the probabilities P of one layer at a time
//! ([`MaskedAttentionBackend::masked_attention_probabilities`]), the recomputation of
//! FlashAttention (Dao et al. 2022, §3.1, "Recomputation"), with whole-row softmax instead of
//! tiles.
//!
//! With O = P V and P = softmax(scale · Q Kᵀ, masked), the gradients from dO are (Dao et al.
//! 2022, Algorithm 4, written with whole matrices):
//! - dV = Pᵀ dO
//! - dP = dO Vᵀ
//! - dS = P ⊙ (dP − rowsum(P ⊙ dP))
//! - dQ = scale · dS K,  dK = scale · dSᵀ Q

#[cfg(feature = "cube")]
use burn::backend::Cube;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Tensor};

use crate::kernels::flex_attention;

/// The attention operation on every backend the model runs on (`Dispatch` routes to it).
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff)]
pub trait MaskedAttentionBackend: Backend {
    /// softmax(scale · Q Kᵀ, with `blocked` scores at −∞) V: by default the backend's own
    /// `attention` op. `query` `[b, h, s, d]`, `key` and `value` `[b, h, t, d]`, `blocked`
    /// `[b, h, s, t]` (true = may not attend); returns `[b, h, s, d]`. A fully blocked row
    /// gives zeros.
    fn masked_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        blocked: BoolTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        backend_attention::<Self>(query, key, value, blocked, scale)
    }

    /// P = softmax(scale · Q Kᵀ, with `blocked` scores at −∞), `[b, h, s, t]`, for the
    /// inputs of [`MaskedAttentionBackend::masked_attention`]: what its backward pass
    /// recomputes. A fully blocked row is all zeros.
    fn masked_attention_probabilities(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        blocked: BoolTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        attention_probabilities::<Self>(query, key, blocked, scale)
    }
}

/// f32 through [`crate::kernels::flex_attention`]'s kernels, other types through burn-flex's ops.
impl MaskedAttentionBackend for Flex {
    fn masked_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        blocked: BoolTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        if flex_attention::supported(&[&query, &key, &value]) {
            flex_attention::attention(query, key, value, blocked, scale)
        } else {
            backend_attention::<Self>(query, key, value, blocked, scale)
        }
    }

    fn masked_attention_probabilities(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        blocked: BoolTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        if flex_attention::supported(&[&query, &key]) {
            flex_attention::probabilities(query, key, blocked, scale)
        } else {
            attention_probabilities::<Self>(query, key, blocked, scale)
        }
    }
}

#[cfg(feature = "cube")]
impl MaskedAttentionBackend for Cube {}

impl<B: MaskedAttentionBackend, C: CheckpointStrategy> MaskedAttentionBackend for Autodiff<B, C> {
    fn masked_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        blocked: BoolTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        match RecomputedAttention
            .prepare::<C>([query.node(), key.node(), value.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let inputs = [&query, &key, &value].map(|tensor| prep.checkpoint(tensor));
                let output = B::masked_attention(
                    query.into_primitive(),
                    key.into_primitive(),
                    value.into_primitive(),
                    blocked.clone(),
                    scale,
                );
                prep.finish((inputs, blocked, scale), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::masked_attention(
                query.into_primitive(),
                key.into_primitive(),
                value.into_primitive(),
                blocked,
                scale,
            )),
        }
    }
}

/// [`masked_attention`]'s backward step: Q, K, V (by node), the mask and the scale.
#[derive(Debug)]
struct RecomputedAttention;

impl<B: MaskedAttentionBackend> Backward<B, 3> for RecomputedAttention {
    type State = ([NodeId; 3], BoolTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let ([query, key, value], blocked, scale) = ops.state;
        let [query, key, value]: [FloatTensor<B>; 3] =
            [query, key, value].map(|id| checkpointer.retrieve_node_output(id));
        let grad_output = grads.consume::<B>(&ops.node);
        let probabilities =
            B::masked_attention_probabilities(query.clone(), key.clone(), blocked, scale);
        let [query_node, key_node, value_node] = ops.parents;

        if let Some(node) = value_node {
            let grad = B::float_matmul(
                B::float_transpose(probabilities.clone()),
                grad_output.clone(),
            );
            grads.register::<B>(node.id, grad);
        }
        if query_node.is_none() && key_node.is_none() {
            return;
        }
        let grad_probabilities = B::float_matmul(grad_output, B::float_transpose(value));
        let row_dot = B::float_sum_dim(
            B::float_mul(probabilities.clone(), grad_probabilities.clone()),
            3,
        );
        let grad_scores = B::float_mul_scalar(
            B::float_mul(probabilities, B::float_sub(grad_probabilities, row_dot)),
            scale.into(),
        );
        if let Some(node) = query_node {
            let grad = B::float_matmul(grad_scores.clone(), key);
            grads.register::<B>(node.id, grad);
        }
        if let Some(node) = key_node {
            let grad = B::float_matmul(B::float_transpose(grad_scores), query);
            grads.register::<B>(node.id, grad);
        }
    }
}

/// P = softmax(scale · Q Kᵀ) with `blocked` scores at −∞, `[b, h, s, t]`. A fully blocked row
/// is all zeros, as in burn's `attention_fallback` (`burn-backend`,
/// `ops/modules/attention.rs`): the row maximum is clamped to the least finite value and the
/// row sum to the least positive normal one.
fn attention_probabilities<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    blocked: BoolTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let scores = B::float_mul_scalar(
        B::float_matmul(query, B::float_transpose(key)),
        scale.into(),
    );
    let scores = B::float_mask_fill(scores, blocked, f32::NEG_INFINITY.into());
    let finfo = scores.dtype().finfo().expect("attention scores are floats");
    let row_max = B::float_clamp_min(B::float_max_dim(scores.clone(), 3), finfo.min.into());
    let exp = B::float_exp(B::float_sub(scores, row_max));
    let row_sum = B::float_clamp_min(B::float_sum_dim(exp.clone(), 3), finfo.min_positive.into());
    B::float_div(exp, row_sum)
}

/// The backend's own `attention` op with the mask and scale of
/// [`MaskedAttentionBackend::masked_attention`].
fn backend_attention<B: Backend>(
    query: FloatTensor<B>,
    key: FloatTensor<B>,
    value: FloatTensor<B>,
    blocked: BoolTensor<B>,
    scale: f64,
) -> FloatTensor<B> {
    let options = AttentionModuleOptions {
        scale: Some(scale),
        softcap: None,
        is_causal: false,
    };
    B::attention(query, key, value, Some(blocked), None, options)
}

/// softmax(scale · Q Kᵀ, with `blocked` scores at −∞) V for `query` `[b, h, s, d]`, `key` and
/// `value` `[b, h, t, d]` and `blocked` `[b, h, s, t]` (true = may not attend), returning
/// `[b, h, s, d]`. A fully blocked row (a padding query of a left-padded batch) gives zeros.
///
/// The forward pass is one fused operation (see the module docs). Under autodiff only Q, K, V
/// and the mask are kept for the backward pass, which recomputes the probabilities.
pub fn masked_attention(
    query: Tensor<4>,
    key: Tensor<4>,
    value: Tensor<4>,
    blocked: Tensor<4, Bool>,
    scale: f64,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::masked_attention(
        query.into_dispatch(),
        key.into_dispatch(),
        value.into_dispatch(),
        blocked.into_dispatch(),
        scale,
    ))
}
