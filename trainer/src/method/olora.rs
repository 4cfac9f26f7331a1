//! Orthogonal subspace learning for language models (O-LoRA, Wang et al. 2023), as
//! cmnfriend/O-LoRA writes it (`src/uie_trainer_lora.py`, `training_step`; TRACE `O_LoRA.py`).
//! Each task trains a fresh LoRA adapter while the earlier tasks' adapters stay frozen; the loss
//! gains
//!
//! ```text
//! λ1 · Σ_modules Σ | A_old · A_newᵀ |  +  λ2 · Σ_new factors ‖θ‖₂
//! ```
//!
//! with `A_old` `[r_sum, in]` the earlier adapters' down-projections stacked (PEFT layout),
//! `A_new` `[r, in]` the current one's, `|·|` elementwise and `‖·‖₂` the unsquared Frobenius
//! norm of each new factor (`lamda_1 = 0.5`, `lamda_2 = 0`, added once per optimiser step as
//! in `training_step`). After a task, its adapter joins the frozen ones and a fresh adapter
//! (PEFT's initialisation) is attached.
//!
//! The frozen adapters act as `W + s · Σ_k B_k A_k`, so they are folded into the frozen base
//! weight ([`super::frozen`]; the same function: O-LoRA computes them unmerged, sharing the new adapter's dropout
//! mask, so the two differ only with `lora_dropout > 0`), and their `A`s are kept apart for the
//! penalty. The penalty's gradient is added analytically: with burn's `[in, r]` layout,
//! `∂/∂A_new Σ|A_oldᵀ A_new| = A_old · sign(A_oldᵀ A_new)`, `∂‖θ‖₂/∂θ = θ / ‖θ‖₂` (0 at θ = 0,
//! as PyTorch's subgradient, so a fresh adapter's `B = 0` stays finite).

use std::path::Path;

use anyhow::Context;
use burn::optim::GradientsParams;
use llama::lora::LoraConfig;
use llama::model::Llama;
use serde::{Deserialize, Serialize};

use super::frozen::{Current, FrozenAdapters, add_gradient, current_adapters};
use super::{ContinualMethod, MethodSettings, StageContext};
use crate::invalid::{InvalidValue, check};

/// `[method] name = "olora"` (absent fields take the defaults, O-LoRA's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OLoraConfig {
    /// λ1, weight of the orthogonality penalty (≥ 0).
    pub orthogonal_weight: f64,
    /// λ2, weight of the new adapter's L2 norm (≥ 0).
    pub l2_weight: f64,
}

impl Default for OLoraConfig {
    fn default() -> Self {
        Self {
            orthogonal_weight: 0.5,
            l2_weight: 0.0,
        }
    }
}

impl MethodSettings for OLoraConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        for (value, field) in [
            (self.orthogonal_weight, "method.orthogonal_weight"),
            (self.l2_weight, "method.l2_weight"),
        ] {
            check(value.is_finite() && value >= 0.0, field, value, "must be ≥ 0")?;
        }
        Ok(())
    }

    fn build(&self, lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        let lora = lora.context("olora trains LoRA adapters: set training.method = \"lora\"")?;
        Ok(Box::new(OLora::new(self, lora)))
    }

    fn trains_adapters(&self) -> bool {
        true
    }
}

/// O-LoRA's state: the frozen adapters.
pub struct OLora {
    orthogonal_weight: f64,
    l2_weight: f64,
    frozen: FrozenAdapters,
}

impl OLora {
    /// No frozen adapter yet.
    pub fn new(config: &OLoraConfig, lora: &LoraConfig) -> Self {
        Self {
            orthogonal_weight: config.orthogonal_weight,
            l2_weight: config.l2_weight,
            frozen: FrozenAdapters::new(lora),
        }
    }

    /// Rank of the frozen adapters of each projection (`r` × finished tasks).
    pub fn frozen_rank(&self) -> Option<usize> {
        self.frozen.rank()
    }
}

impl ContinualMethod for OLora {
    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        for Current {
            key,
            a: (a_id, a),
            b: (b_id, b),
            ..
        } in current_adapters(model)
        {
            if let Some(frozen) = self.frozen.get(&key) {
                let overlap = frozen.a.clone().transpose().matmul(a.clone()).sign();
                add_gradient(
                    grads,
                    a_id,
                    frozen.a.clone().matmul(overlap) * self.orthogonal_weight,
                );
            }
            if self.l2_weight > 0.0 {
                for (id, theta) in [(a_id, a), (b_id, b)] {
                    // A fresh adapter's B is 0: PyTorch's norm has gradient 0 there.
                    let norm = theta
                        .clone()
                        .square()
                        .sum()
                        .sqrt()
                        .clamp_min(f32::MIN_POSITIVE)
                        .unsqueeze::<2>();
                    add_gradient(grads, id, theta / norm * self.l2_weight);
                }
            }
        }
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        self.frozen.freeze(model, stage.seed)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.frozen.save(dir)
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        self.frozen.load(dir, model)
    }
}
