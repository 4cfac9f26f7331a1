//! Memory aware synapses (Aljundi et al. 2018), as Avalanche writes it
//! (`training/plugins/mas.py`, `lambda_reg = 1`, `alpha = 0.5`).
//!
//! After task k, with `f(x)` the model's output and `B` batches of the task:
//!
//! ```text
//! Ω_new = (1/B) Σ_batches | ∂ mean_x ‖f(x)‖² / ∂θ |
//! Ω ← Ω_new (first task),  Ω ← α Ω + (1 − α) Ω_new (later),   θ* ← θ
//! penalty while training later tasks:  λ Σ Ω ⊙ (θ − θ*)²     (no ½, as Avalanche)
//! ```
//!
//! Adapted to a language model: Avalanche's `torch.norm(out, p="fro", dim=1).pow(2).mean()`
//! takes one output vector per sample; here each scored (response) token position is a sample
//! and `f(x)` its next-token logits `[V]`.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use llama::model::Llama;
use llama::train::Batch;

use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::params::ParamTensors;
use super::{
    Anchors, ContinualMethod, MethodSettings, StageContext, add_quadratic_penalty, check_lambda,
    load_anchors, mean_gradient_statistic, save_anchors,
};
use crate::invalid::InvalidValue;

/// Avalanche's `lambda_reg`.
pub const DEFAULT_LAMBDA: f64 = 1.0;

/// `[method] name = "mas"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MasConfig {
    /// Penalty strength λ (≥ 0; [`DEFAULT_LAMBDA`]).
    pub lambda: f64,
}

impl Default for MasConfig {
    fn default() -> Self {
        Self {
            lambda: DEFAULT_LAMBDA,
        }
    }
}

impl MethodSettings for MasConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check_lambda(self.lambda)
    }

    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Mas::new(self)))
    }
}
/// Avalanche's `alpha`: the old importance's share when merging.
pub const MERGE_ALPHA: f64 = 0.5;

/// MAS's state: the merged importance and the last task's anchor (at most one entry).
pub struct Mas {
    lambda: f64,
    anchors: Anchors,
}

impl Mas {
    /// No task seen yet.
    pub fn new(config: &MasConfig) -> Self {
        Self {
            lambda: config.lambda,
            anchors: Vec::new(),
        }
    }

    /// `(Ω, θ*)`: the merged importance and the last task's anchor (empty before the first
    /// task ends).
    pub fn anchors(&self) -> &Anchors {
        &self.anchors
    }
}

/// The output-norm loss of a batch from its final hidden states `hidden`: the mean over its
/// scored positions of the squared L2 norm of the next-token logits. `[1]`; NaN without a
/// scored position.
pub fn output_norm_loss(model: &Llama, batch: &Batch, hidden: Tensor<3>) -> Tensor<1> {
    let Some((logits, _)) = model.scored_logits_of_hidden(hidden, batch.labels.clone()) else {
        return Tensor::<1>::full([1], f32::NAN, &batch.tokens.device());
    };
    let n = logits.dims()[0];
    logits.square().sum() / n as f64
}

/// MAS importance over `batches`: the mean of `|∂ output_norm_loss / ∂θ|` per batch.
pub fn importance(model: &Llama, batches: &[Batch]) -> ParamTensors {
    mean_gradient_statistic(model, batches, &output_norm_loss, burn::Tensor::abs)
}

impl ContinualMethod for Mas {
    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        add_quadratic_penalty(model, grads, &self.anchors, self.lambda);
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let new = importance(&model, &stage.task_batches());
        let merged = match self.anchors.pop() {
            Some((old, _)) => old.zip(&new, |o, n| o * MERGE_ALPHA + n * (1.0 - MERGE_ALPHA)),
            None => new,
        };
        self.anchors = vec![(merged, ParamTensors::values(&model))];
        Ok(model)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        save_anchors(dir, &self.anchors, &[])
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        self.anchors = load_anchors(dir, &model)?.0;
        Ok(model)
    }
}
