//! LCIA's adaptive exponential moving average of the trainable weights (Qiao et al. 2024,
//! *Large Continual Instruction Assistant*), as JingyangQiao/CoIN writes it
//! (`peft/tuners/lora.py`, `ema_update` after every optimiser step, `ema_replace` at the end
//! of training). For each trainable tensor, after step t with gradient `g_t` (the clipped
//! gradient the optimiser used):
//!
//! ```text
//! α = 2 (1 + ‖g_t‖₁) / (‖θ_t − θ_ema‖₁ · ‖g_t − g_{t−1}‖₁),   α ← 0.01 unless 0 < α < 1
//! θ_ema ← (1 − α) θ_ema + α θ_t
//! ```
//!
//! On the first step (no `g_{t−1}`) α = 0.01 with `θ_ema = θ_1` (CoIN's fallback after copying
//! the parameter). At the stage's end the parameters take their EMA values. CoIN trains each
//! task in a fresh process, so the EMA starts again at every stage and nothing is carried
//! between stages. The three L1 norms of every tensor come back in one host read per step.

use burn::tensor::Tensor;
use llama::model::Llama;

use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::params::ParamTensors;
use super::{ContinualMethod, MethodSettings, StageContext};

/// `[method] name = "ema"`: no settings (CoIN's coefficients are fixed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {}

impl MethodSettings for EmaConfig {
    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Ema::new()))
    }
}

/// CoIN's fallback coefficient.
pub const FALLBACK_ALPHA: f64 = 0.01;

/// The EMA of the stage being trained.
#[derive(Default)]
pub struct Ema {
    /// `θ_ema` and `g_{t−1}` after the first step.
    state: Option<(ParamTensors, ParamTensors)>,
    /// α of every tensor (in path order) at every step of the stage.
    alphas: Vec<Vec<f64>>,
}

impl Ema {
    /// Before the first step.
    pub fn new() -> Self {
        Self::default()
    }

    /// α of every tensor (in path order) at each step of the stage so far.
    pub fn alphas(&self) -> &[Vec<f64>] {
        &self.alphas
    }

    /// The current EMA weights.
    pub fn average(&self) -> Option<&ParamTensors> {
        self.state.as_ref().map(|(ema, _)| ema)
    }
}

/// CoIN's coefficient from the three L1 norms.
pub fn adaptive_alpha(theta_minus_ema: f64, grad: f64, grad_change: f64) -> f64 {
    let alpha = 2.0 * (1.0 + grad) / (theta_minus_ema * grad_change);
    if alpha > 0.0 && alpha < 1.0 {
        alpha
    } else {
        FALLBACK_ALPHA
    }
}

impl ContinualMethod for Ema {
    fn begin_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        *self = Self::default();
        Ok(model)
    }

    fn observes_steps(&self) -> bool {
        true
    }

    fn after_step(&mut self, _before: &ParamTensors, clipped: &ParamTensors, model: &Llama) {
        let theta = ParamTensors::values(model);
        let Some((ema, previous)) = self.state.take() else {
            self.alphas
                .push(vec![FALLBACK_ALPHA; theta.tensors().count()]);
            self.state = Some((theta, clipped.clone()));
            return;
        };
        let norms: Vec<Tensor<1>> = theta
            .tensors()
            .zip(ema.tensors())
            .zip(clipped.tensors().zip(previous.tensors()))
            .flat_map(|(((_, t), (_, e)), ((_, g), (_, p)))| {
                [
                    (t.clone() - e.clone()).abs().sum(),
                    g.clone().abs().sum(),
                    (g.clone() - p.clone()).abs().sum(),
                ]
            })
            .collect();
        let norms = Tensor::cat(norms, 0)
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .expect("f64 norms");
        let alphas: Vec<f64> = norms
            .chunks_exact(3)
            .map(|n| adaptive_alpha(n[0], n[1], n[2]))
            .collect();
        let mut next = alphas.iter();
        let blended = ema.zip(&theta, |e, t| {
            let alpha = *next.next().expect("one alpha per tensor");
            e * (1.0 - alpha) + t * alpha
        });
        self.alphas.push(alphas);
        self.state = Some((blended, clipped.clone()));
    }

    fn end_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        Ok(match self.state.take() {
            Some((ema, _)) => ema.assign_to(model),
            None => model,
        })
    }
}
