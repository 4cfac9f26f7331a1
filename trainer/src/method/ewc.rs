//! Elastic weight consolidation (Kirkpatrick et al. 2017), as TRACE writes it
//! (`model/Regular/EWC.py`) with Avalanche's online mode (`training/plugins/ewc.py`).
//!
//! After task k, the empirical diagonal Fisher of the task,
//! `F_k = (1/B) Σ_batches (∂L_batch/∂θ)²` with `L_batch` the batch's mean token cross-entropy
//! over its B batches (squared batch gradients, as both sources), and the anchor `θ*_k = θ`.
//! While training a later task the loss gains (TRACE: `0.5 * lambda_ewc * Σ F (θ − θ*)²`,
//! λ = 400)
//!
//! ```text
//! separate:  ½ λ Σ_k Σ F_k ⊙ (θ − θ*_k)²
//! online:    ½ λ Σ F ⊙ (θ − θ*)²,  F ← γ F + F_k,  θ* ← θ at the end of task k
//! ```
//!
//! `separate` keeps one pair too, `(Σ_k F_k, Σ_k F_k θ*_k / Σ_k F_k)`: a sum of quadratics is
//! one quadratic plus a constant, so the gradient is the same while memory and checkpoints do
//! not grow with the tasks (two weight-sized tensors under full fine-tuning, not 2 per task).
//!
//! Departures from TRACE, on purpose: the Fisher is computed in a pass over the task's own
//! examples after training (Avalanche's `after_training_exp`), not accumulated live from the
//! training steps, whose gradients include replayed examples and the penalty itself and grow
//! with the epochs; TRACE has no online mode.

use std::path::Path;

use burn::optim::GradientsParams;
use llama::model::Llama;
use llama::train::{Batch, causal_lm_loss};

use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::params::ParamTensors;
use super::{
    Anchors, ContinualMethod, MethodSettings, StageContext, add_quadratic_penalty, check_lambda,
    load_anchors, mean_gradient_statistic, save_anchors,
};
use crate::invalid::{InvalidValue, check};

/// TRACE's `lambda_ewc`.
pub const DEFAULT_LAMBDA: f64 = 400.0;

/// EWC's penalty over earlier tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EwcMode {
    /// One Fisher and anchor per earlier task.
    Separate,
    /// One decayed running Fisher, anchored at the last task.
    Online,
}

/// `[method] name = "ewc"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EwcConfig {
    /// Penalty strength λ (≥ 0; [`DEFAULT_LAMBDA`]).
    pub lambda: f64,
    /// `separate` | `online`.
    pub ewc_mode: EwcMode,
    /// `online`: decay γ of the old Fisher, in [0, 1].
    pub ewc_decay: f64,
}

impl Default for EwcConfig {
    fn default() -> Self {
        Self {
            lambda: DEFAULT_LAMBDA,
            ewc_mode: EwcMode::Separate,
            ewc_decay: 0.9,
        }
    }
}

impl MethodSettings for EwcConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check_lambda(self.lambda)?;
        check(
            (0.0..=1.0).contains(&self.ewc_decay),
            "method.ewc_decay",
            self.ewc_decay,
            "must be in [0, 1]",
        )
    }

    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Ewc::new(self)))
    }
}

/// EWC's state: one (Fisher, anchor) pair, which holds every earlier task's penalty exactly
/// (`separate`) or the decayed running one (`online`).
pub struct Ewc {
    lambda: f64,
    mode: EwcMode,
    decay: f64,
    anchors: Anchors,
}

impl Ewc {
    /// No task seen yet.
    pub fn new(config: &EwcConfig) -> Self {
        Self {
            lambda: config.lambda,
            mode: config.ewc_mode,
            decay: config.ewc_decay,
            anchors: Vec::new(),
        }
    }

    /// `(F, θ*)`: at most one pair (see [`Ewc`]).
    pub fn anchors(&self) -> &Anchors {
        &self.anchors
    }
}

/// The empirical diagonal Fisher over `batches`: the mean of the squared gradients of each
/// batch's mean token cross-entropy.
pub fn empirical_fisher(model: &Llama, batches: &[Batch]) -> ParamTensors {
    mean_gradient_statistic(model, batches, &causal_lm_loss, |g| g.clone() * g)
}

impl ContinualMethod for Ewc {
    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        add_quadratic_penalty(model, grads, &self.anchors, 0.5 * self.lambda);
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let fisher = empirical_fisher(&model, &stage.task_batches());
        let theta = ParamTensors::values(&model);
        let merged = match (self.mode, self.anchors.pop()) {
            (_, None) => (fisher, theta),
            (EwcMode::Online, Some((old, _))) => {
                let decay = self.decay;
                (old.zip(&fisher, |o, f| o * decay + f), theta)
            }
            (EwcMode::Separate, Some((old, anchor))) => {
                let sum = old.zip(&fisher, |o, f| o + f);
                // Σ_k F_k (θ − θ*_k)² = (Σ F_k)(θ − θ̄*)² + const with θ̄* = Σ F_k θ*_k / Σ F_k:
                // the same gradient from two tensors however many tasks came before.
                let weighted = old
                    .zip(&anchor, |o, a| o * a)
                    .zip(&fisher.zip(&theta, |f, t| f * t), |a, b| a + b);
                let mean = weighted.zip(&sum, |w, s| w / s.clamp_min(f32::MIN_POSITIVE));
                (sum, mean)
            }
        };
        self.anchors = vec![merged];
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
