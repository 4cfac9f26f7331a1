//! Activation checkpointing per decoder layer (Chen et al. 2016, "Training Deep Nets with
//! Sublinear Memory Cost", arXiv 1604.06174; PyTorch's `torch.utils.checkpoint` around each
//! layer, as HF `gradient_checkpointing_enable` does): the backward pass keeps only each
//! layer's input and recomputes the layer's activations when it reaches it, so the activations
//! held at once are one layer's (plus one `[b, s, d]` input per layer) instead of all layers'.
//!
//! The gradient of one micro-batch is taken in three steps, each its own autodiff graph:
//! 1. the layers run forward without gradient tracking, keeping their inputs;
//! 2. the loss (final norm, head and the caller's [`LossFn`]) is differentiated with respect
//!    to the last layer's output, and to the norm's and head's parameters when they train;
//! 3. from the last layer down, each layer is run again from its input and differentiated
//!    through `Σ (layer(x) ⊙ g)` with g the gradient of its output, which gives the gradient of
//!    its input (the next layer's g) and of its parameters; then the embedding, when it trains.
//!
//! The gradients equal those of one graph up to the order of floating-point sums. With LoRA
//! dropout, each layer's random stream is seeded before both of its forward passes (seeds drawn
//! from the device stream once per micro-batch), so the recomputation draws the same masks;
//! the masks then differ from an uncheckpointed run's.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Distribution, Tensor};

use crate::model::Llama;
use crate::train::{Batch, LossFn};

/// The loss of `batch` scaled by `weight`, as a number, and the gradient of the scaled loss
/// with respect to every trainable parameter of `model`, the layers recomputed one at a time.
pub(crate) fn layerwise_gradients(
    model: &Llama,
    batch: &Batch,
    loss: &LossFn<'_>,
    weight: f64,
) -> (f64, GradientsParams) {
    let device = batch.tokens.device();
    let untracked = model.clone().no_grad();
    let seeds = model.adapter_dropout_active().then(|| {
        Tensor::<1>::random(
            [model.layers.len()],
            Distribution::Uniform(0.0, 1.0),
            &device,
        )
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 draws")
        .into_iter()
        .map(|u| (f64::from(u) * f64::from(1u32 << 24)) as u64)
        .collect::<Vec<_>>()
    });
    let seed_layer = |i: usize| {
        if let Some(seeds) = &seeds {
            device.seed(seeds[i]);
        }
    };

    // 1. Forward without a graph, keeping each layer's input.
    let (mut h, pos) = untracked.trunk_inputs(batch.tokens.clone(), batch.attention_mask.clone());
    let mut inputs = Vec::with_capacity(model.layers.len());
    for i in 0..model.layers.len() {
        seed_layer(i);
        inputs.push(h.clone());
        h = untracked.layer_forward(i, h, &pos);
    }

    // 2. The loss, differentiated back to the last layer's output.
    let mut accumulator = GradientsAccumulator::<Llama>::new();
    let top = h.detach().require_grad();
    let scaled = loss(model, batch, model.norm.forward(top.clone())).mul_scalar(weight);
    let value = f64::from(scaled.clone().into_scalar::<f32>());
    let mut grads = scaled.backward();
    let mut upstream = top.grad(&grads).map(Tensor::from_inner);
    accumulator.accumulate(model, GradientsParams::from_grads(grads, model));

    // 3. Each layer again, from the top, differentiated through Σ layer(x) ⊙ g.
    for i in (0..model.layers.len()).rev() {
        let Some(g) = upstream else { break };
        seed_layer(i);
        let x = inputs.pop().expect("one input per layer").require_grad();
        let surrogate = (model.layer_forward(i, x.clone(), &pos) * g).sum();
        grads = surrogate.backward();
        upstream = x.grad(&grads).map(Tensor::from_inner);
        accumulator.accumulate(model, GradientsParams::from_grads(grads, model));
    }
    if let Some(g) = upstream
        && model.embed_tokens.weight.val().is_require_grad()
    {
        let surrogate = (model.embed_tokens.forward(batch.tokens.clone()) * g).sum();
        accumulator.accumulate(
            model,
            GradientsParams::from_grads(surrogate.backward(), model),
        );
    }
    (value, accumulator.grads())
}
