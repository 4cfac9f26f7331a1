//! Continually self-regularised LoRA (C-LoRA; Smith et al., *Continual Diffusion: Continual
//! Customization of Text-to-Image Diffusion with C-LoRA*, TMLR 2024, arXiv 2304.06027, Sec. 4).
//! Each task trains a fresh LoRA adapter; the finished tasks' adapters are frozen and folded into
//! the base weight ([`super::frozen`]), so the weight the task sees is
//! `W_t = W_init + Σ_{t' ≤ t} ΔW_{t'}` with `ΔW = s · A B` (`s = lora_alpha / r`). The loss gains
//! the self-regulariser
//!
//! ```text
//! λ · Σ_projections ‖ (Σ_{t' < t} ΔW_{t'}) ⊙ ΔW_t ‖²_F
//! ```
//!
//! (`⊙` elementwise, `‖·‖_F` Frobenius): an update is penalised where earlier tasks already
//! moved the weight, and is free where they did not. It is zero on the first task.
//!
//! The gradient is added analytically once per optimiser step (the step's mean loss plus the
//! penalty, as the paper's per-step objective): with `P = Σ_{t'<t} ΔW_{t'}` and
//! `G = 2λ · P ⊙ P ⊙ ΔW_t`, `∂/∂A = s · G Bᵀ` and `∂/∂B = s · Aᵀ G` (burn's `[in, r]`, `[r, out]`
//! layouts; the penalty is the same in PEFT's transposed layout). `P ⊙ P` is computed once per
//! stage from the frozen factors. `tools/reference/methods_reference.py` checks the penalty
//! and its gradient against torch autograd.
//!
//! Departures from the paper:
//! - **Where.** The paper adapts the key and value projections of Stable Diffusion's
//!   cross-attention; here the adapted projections are `training.lora_targets` of a causal LM
//!   (q, k, v, o by default).
//! - **No new tokens.** The paper also learns a new, randomly initialised token embedding per
//!   concept (its "customization prompts"); instruction tasks need none.
//! - **λ.** The paper's λ is set for Stable Diffusion's weights; the default here, `1e5`, is
//!   set for SmolLM2-135M with the default adapter (r 8, α 16, 16 steps of lr 5e-4 a task): there
//!   the summed update of four tasks has elements of 5.6e-4 rms (6.2e-3 at most; measured on a
//!   no-replay run's last adapter), so `‖P ⊙ ΔW‖²` is of order 1e-6 to 1e-5 and its gradient
//!   `2λ P² ΔW` reaches the cross-entropy gradient's scale (≈1e-4 an element under clip norm 1)
//!   only for λ of order 1e5. Tune it per model, as the README says of EWC, MAS and SI.
//!   Measure before comparing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use llama::lora::LoraConfig;
use llama::model::Llama;
use serde::{Deserialize, Serialize};

use super::frozen::{Current, FrozenAdapters, add_gradient, current_adapters};
use super::{ContinualMethod, MethodSettings, StageContext, check_lambda};
use crate::invalid::InvalidValue;

/// The default λ (see the module's notes on λ).
pub const DEFAULT_LAMBDA: f64 = 1e5;

/// `[method] name = "clora"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CLoraConfig {
    /// Penalty strength λ (≥ 0; [`DEFAULT_LAMBDA`]).
    pub lambda: f64,
}

impl Default for CLoraConfig {
    fn default() -> Self {
        Self {
            lambda: DEFAULT_LAMBDA,
        }
    }
}

impl MethodSettings for CLoraConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check_lambda(self.lambda)
    }

    fn build(&self, lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        let lora = lora.context("clora trains LoRA adapters: set training.method = \"lora\"")?;
        Ok(Box::new(CLora::new(self, lora)))
    }

    fn trains_adapters(&self) -> bool {
        true
    }
}

/// C-LoRA's state: the finished adapters and, per adapted projection, `P ⊙ P` of their summed
/// update `P`.
pub struct CLora {
    lambda: f64,
    frozen: FrozenAdapters,
    past_squared: BTreeMap<String, Tensor<2>>,
}

impl CLora {
    /// No finished adapter yet.
    pub fn new(config: &CLoraConfig, lora: &LoraConfig) -> Self {
        Self {
            lambda: config.lambda,
            frozen: FrozenAdapters::new(lora),
            past_squared: BTreeMap::new(),
        }
    }

    /// Rank of the finished adapters of each projection (`r` × finished tasks).
    pub fn frozen_rank(&self) -> Option<usize> {
        self.frozen.rank()
    }

    /// The penalty `λ Σ ‖P ⊙ ΔW‖²` at `model`'s current adapters (0 before a finished task).
    pub fn penalty(&self, model: &Llama) -> f64 {
        let mut sum = 0.0;
        for current in current_adapters(model) {
            if let Some(past_squared) = self.past_squared.get(&current.key) {
                let update = update(&current);
                let value = (past_squared.clone() * update.square()).sum().into_scalar::<f32>();
                sum += f64::from(value);
            }
        }
        self.lambda * sum
    }

    /// `P ⊙ P` per projection from the finished factors (`P = s · A_stack B_stack`, the sum of
    /// their updates), the scale read from `model`'s current adapters.
    fn refresh(&mut self, model: &Llama) {
        self.past_squared = current_adapters(model)
            .into_iter()
            .filter_map(|current| {
                let frozen = self.frozen.get(&current.key)?;
                let past = frozen.a.clone().matmul(frozen.b.clone()) * current.scale;
                Some((current.key, past.square()))
            })
            .collect();
    }
}

/// `ΔW = s · A B`, `[in, out]`, of a current adapter.
fn update(current: &Current) -> Tensor<2> {
    current.a.1.clone().matmul(current.b.1.clone()) * current.scale
}

impl ContinualMethod for CLora {
    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        for current in current_adapters(model) {
            let Some(past_squared) = self.past_squared.get(&current.key) else {
                continue;
            };
            let penalty_grad = past_squared.clone() * update(&current) * (2.0 * self.lambda);
            let Current {
                a: (a_id, a),
                b: (b_id, b),
                scale,
                ..
            } = current;
            add_gradient(
                grads,
                a_id,
                penalty_grad.clone().matmul(b.transpose()) * scale,
            );
            add_gradient(grads, b_id, a.transpose().matmul(penalty_grad) * scale);
        }
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let model = self.frozen.freeze(model, stage.seed)?;
        self.refresh(&model);
        Ok(model)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.frozen.save(dir)
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        let model = self.frozen.load(dir, model)?;
        self.refresh(&model);
        Ok(model)
    }
}
