//! Synaptic intelligence (Zenke et al. 2017), as Avalanche writes it
//! (`training/plugins/synaptic_intelligence.py`, `eps = 1e-7`, and `update_ewc_data(..., 0.001,
//! ..., 1, eps)`: `clip_to = 0.001`, `c = 1`).
//!
//! ```text
//! each step:        ω ← ω + g ⊙ (θ_after − θ_before)        (ω reset at each task's start)
//! end of task k:    C ← C + c · ω / ((θ_end − θ_start)² + ξ)  (C kept across tasks)
//!                   Ω = min(−C, clip_to),  θ* ← θ_end
//! penalty:          (λ/2) Σ Ω ⊙ (θ − θ*)²
//! ```
//!
//! `g` is the gradient the optimiser used (after this trainer's global-norm clipping; Avalanche
//! reads `p.grad` after the step and does not clip). The path integral of a descent step is
//! negative, hence the sign flip; Avalanche clamps only from above, so negative importances
//! survive.

use std::path::Path;

use burn::optim::GradientsParams;
use llama::model::Llama;

use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::params::ParamTensors;
use super::{
    Anchors, ContinualMethod, MethodSettings, StageContext, add_quadratic_penalty, check_lambda,
    load_anchors, save_anchors,
};
use crate::invalid::{InvalidValue, check};

/// Penalty strength λ when `[method] lambda` is not set (Avalanche's `si_lambda` has no
/// default).
pub const DEFAULT_LAMBDA: f64 = 1.0;

/// `[method] name = "si"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiConfig {
    /// Penalty strength λ (≥ 0; [`DEFAULT_LAMBDA`]).
    pub lambda: f64,
    /// Damping ξ of the importance's denominator (> 0; Avalanche's `eps`).
    pub si_xi: f64,
}

impl Default for SiConfig {
    fn default() -> Self {
        Self {
            lambda: DEFAULT_LAMBDA,
            si_xi: 1e-7,
        }
    }
}

impl MethodSettings for SiConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check_lambda(self.lambda)?;
        check(
            self.si_xi.is_finite() && self.si_xi > 0.0,
            "method.si_xi",
            self.si_xi,
            "must be positive",
        )
    }

    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Si::new(self)))
    }
}
/// Avalanche's `clip_to`: the importance's upper bound.
pub const CLIP_TO: f64 = 0.001;
/// Avalanche's `c` in `update_ewc_data`.
pub const SCALE: f64 = 1.0;

/// SI's state.
pub struct Si {
    lambda: f64,
    xi: f64,
    /// `(Ω, θ*)` after the first task.
    anchors: Anchors,
    /// `C`, accumulated over the tasks.
    cumulative: Option<ParamTensors>,
    /// This stage's `ω` and `θ_start`.
    trajectory: Option<(ParamTensors, ParamTensors)>,
}

impl Si {
    /// No task seen yet.
    pub fn new(config: &SiConfig) -> Self {
        Self {
            lambda: config.lambda,
            xi: config.si_xi,
            anchors: Vec::new(),
            cumulative: None,
            trajectory: None,
        }
    }

    /// This stage's path integral `ω` so far.
    pub fn trajectory(&self) -> Option<&ParamTensors> {
        self.trajectory.as_ref().map(|(omega, _)| omega)
    }

    /// `C`, the importance before the sign flip and the clamp, summed over the finished tasks.
    pub fn cumulative(&self) -> Option<&ParamTensors> {
        self.cumulative.as_ref()
    }

    /// The importance `Ω` and anchor `θ*` of the last finished task.
    pub fn importance(&self) -> Option<&(ParamTensors, ParamTensors)> {
        self.anchors.first()
    }
}

impl ContinualMethod for Si {
    fn begin_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        self.trajectory = Some((
            ParamTensors::zeros_like(&model),
            ParamTensors::values(&model),
        ));
        Ok(model)
    }

    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        add_quadratic_penalty(model, grads, &self.anchors, self.lambda / 2.0);
    }

    fn observes_steps(&self) -> bool {
        true
    }

    fn after_step(&mut self, before: &ParamTensors, clipped: &ParamTensors, model: &Llama) {
        let Some((omega, _)) = &mut self.trajectory else {
            return;
        };
        let step = ParamTensors::values(model).zip(before, |after, before| after - before);
        let contribution = clipped.zip(&step, |g, d| g * d);
        *omega = omega.zip(&contribution, |w, c| w + c);
    }

    fn end_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let Some((omega, start)) = self.trajectory.take() else {
            return Ok(model);
        };
        let end = ParamTensors::values(&model);
        let xi = self.xi;
        let moved = end.zip(&start, |e, s| (e - s).square() + xi);
        let added = omega.zip(&moved, |w, m| w / m * SCALE);
        let cumulative = match self.cumulative.take() {
            Some(c) => c.zip(&added, |c, a| c + a),
            None => added,
        };
        let importance = cumulative.map(|c| c.neg().clamp_max(CLIP_TO));
        self.anchors = vec![(importance, end)];
        self.cumulative = Some(cumulative);
        Ok(model)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let extra: Vec<(&str, &ParamTensors)> =
            self.cumulative.iter().map(|c| ("cumulative.", c)).collect();
        save_anchors(dir, &self.anchors, &extra)
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        let (anchors, host) = load_anchors(dir, &model)?;
        let file = dir.join(super::STATE_TENSORS);
        self.cumulative = (!anchors.is_empty())
            .then(|| ParamTensors::from_host(&host, "cumulative.", &model, &file))
            .transpose()?;
        self.anchors = anchors;
        Ok(model)
    }
}
