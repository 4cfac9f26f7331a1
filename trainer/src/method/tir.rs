//! Task-similarity-informed regularisation (TIR, He et al. 2023, "Continual Instruction Tuning
//! for Large Multimodal Models", arXiv 2311.16206, §5): EWC whose per-parameter importance is
//! weakened for parameters that matter to earlier tasks similar to the new one.
//!
//! The paper's method text was not available to us; this follows the TIR code of the
//! authors' CLMM framework as stored (`cl_learner/tir.py`, `task_encoder.py`; the repository's
//! name is not known, so this reading is a departure risk of its own):
//!
//! ```text
//! after task k:      Ω_k = F_k / Σ F_k                      (importance normalised to sum 1)
//!                    Ω ← max(Ω, Ω_k),  Id ← k where Ω_k is the larger,   θ* ← θ
//! before task t:     Ω̃_i = Ω_i · (1 − s(t, Id_i))
//! penalty:           ½ λ Σ Ω̃ ⊙ (θ − θ*)²
//! similarity:        x(t, k) = 1 − W(t, k),   s = σ((x − mean) / std) over every pair of seen
//!                    tasks when there are two or more pairs, else s = clamp(x, 0, 1)
//! ```
//!
//! with `F_k` the empirical Fisher ([`super::ewc::empirical_fisher`]) and `W` InsCL's
//! Wasserstein distance between the tasks' instruction embeddings (the core crate's, with the
//! run's `[strategy.similarity]`). CLMM's `s` multiplies three such terms (image, instruction
//! and answer embeddings, each the inner product of mean BERT/CLIP vectors); with a cosine cost,
//! `1 − W` is the transport-weighted mean cosine similarity of the two tasks' instructions,
//! this trainer's instruction-only analogue, so TIR needs `strategy.similarity.cost = cosine`.
//! `std` is the sample standard deviation (`torch.std`).

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use llama::model::Llama;

use super::ewc::empirical_fisher;
use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::params::ParamTensors;
use super::{
    Anchors, ContinualMethod, MethodSettings, StageContext, add_quadratic_penalty, check_lambda,
    load_anchors, save_anchors,
};
use crate::invalid::InvalidValue;

/// Penalty strength λ when `[method] lambda` is not set. The importance sums to 1 over all
/// trainable parameters, so λ is far larger than EWC's (CLMM's scripts pass 1e2 to 1e8).
pub const DEFAULT_LAMBDA: f64 = 1e6;

/// `[method] name = "tir"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TirConfig {
    /// Penalty strength λ (≥ 0; [`DEFAULT_LAMBDA`]).
    pub lambda: f64,
}

impl Default for TirConfig {
    fn default() -> Self {
        Self {
            lambda: DEFAULT_LAMBDA,
        }
    }
}

impl MethodSettings for TirConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check_lambda(self.lambda)
    }

    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Tir::new(self)))
    }

    fn reads_task_similarity(&self) -> bool {
        true
    }
}

/// TIR's state.
pub struct Tir {
    lambda: f64,
    /// `(Ω, θ*)` and `Id` (as f32 task indices) after the first task.
    state: Option<(ParamTensors, ParamTensors, ParamTensors)>,
    /// `(Ω̃, θ*)` for the stage being trained.
    scaled: Anchors,
}

impl Tir {
    /// No task seen yet.
    pub fn new(config: &TirConfig) -> Self {
        Self {
            lambda: config.lambda,
            state: None,
            scaled: Vec::new(),
        }
    }

    /// `(Ω̃, θ*)` of the stage being trained (empty before the second task).
    pub fn scaled(&self) -> &Anchors {
        &self.scaled
    }
}

/// `s(t, k)` in [0, 1] for the last task `t` of the pairwise distance matrix `distances`
/// (T × T, cosine-cost Wasserstein distances) and each earlier task `k < t`: the single pair's
/// `1 − W` clamped to [0, 1], or with more pairs the sigmoid of its z-score (σ(0) = ½ when
/// every pair is equally similar).
pub fn task_similarity(distances: &[Vec<f64>]) -> Vec<f64> {
    let t = distances.len().saturating_sub(1);
    let pairs: Vec<f64> = (0..distances.len())
        .flat_map(|i| (i + 1..distances.len()).map(move |j| (i, j)))
        .map(|(i, j)| 1.0 - distances[i][j])
        .collect();
    let raw: Vec<f64> = (0..t).map(|k| 1.0 - distances[t][k]).collect();
    if pairs.len() < 2 {
        return raw.iter().map(|x| x.clamp(0.0, 1.0)).collect();
    }
    let n = pairs.len() as f64;
    let mean = pairs.iter().sum::<f64>() / n;
    let std = (pairs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    raw.iter()
        .map(|x| {
            // Every pair equally similar: the z-score's limit, σ(0).
            let z = if std > 1e-12 { (x - mean) / std } else { 0.0 };
            1.0 / (1.0 + (-z).exp())
        })
        .collect()
}

impl ContinualMethod for Tir {
    fn begin_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        self.scaled.clear();
        let Some((importance, anchor, source)) = &self.state else {
            return Ok(model);
        };
        anyhow::ensure!(
            stage.task_distances.len() == stage.stage,
            "TIR needs the Wasserstein distances among the {} seen tasks, got {}",
            stage.stage,
            stage.task_distances.len()
        );
        let similarity = task_similarity(stage.task_distances);
        // 1 − s(t, Id_i) for every parameter element.
        let factor = source.map(|id| {
            similarity
                .iter()
                .enumerate()
                .map(|(k, s)| id.clone().equal_elem(k as f32).float() * (1.0 - s))
                .reduce(|a, b| a + b)
                .unwrap_or_else(|| id.zeros_like())
        });
        self.scaled = vec![(importance.zip(&factor, |w, f| w * f), anchor.clone())];
        Ok(model)
    }

    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        add_quadratic_penalty(model, grads, &self.scaled, 0.5 * self.lambda);
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let fisher = empirical_fisher(&model, &stage.task_batches());
        let total: Tensor<1> = fisher
            .tensors()
            .map(|(_, t)| t.clone().sum())
            .reduce(|a, b| a + b)
            .expect("at least one trainable parameter");
        // A task without gradient signal (all-zero Fisher) adds no importance.
        let total = total.clamp_min(f32::MIN_POSITIVE);
        let normalised = fisher.map(|t| t / total.clone());
        let task = (stage.stage - 1) as f32;
        let theta = ParamTensors::values(&model);
        self.state = Some(match self.state.take() {
            None => {
                let source = normalised.map(|t| t.zeros_like() + task);
                (normalised, theta, source)
            }
            Some((old, _, source)) => {
                let larger = normalised.zip(&old, |n, o| n.greater(o).float());
                let source = source.zip(&larger, |s, l| s.clone() + (s.neg() + task) * l);
                (old.zip(&normalised, Tensor::max_pair), theta, source)
            }
        });
        self.scaled.clear();
        Ok(model)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        match &self.state {
            Some((importance, anchor, source)) => save_anchors(
                dir,
                &vec![(importance.clone(), anchor.clone())],
                &[("source.", source)],
            ),
            None => save_anchors(dir, &Vec::new(), &[]),
        }
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        let (mut anchors, host) = load_anchors(dir, &model)?;
        let file = dir.join(super::STATE_TENSORS);
        self.state = match anchors.pop() {
            Some((importance, anchor)) => Some((
                importance,
                anchor,
                ParamTensors::from_host(&host, "source.", &model, &file)?,
            )),
            None => None,
        };
        Ok(model)
    }
}
