//! Learning without forgetting (Li & Hoiem 2017), as TRACE writes it
//! (`model/Regular/LwF.py`): from the second task on, every batch's loss gains a distillation
//! term towards the model as it was when the task started,
//!
//! ```text
//! loss = CE + w · KD,   KD = F.kl_div(log_softmax(z_prev / T), softmax(z / T), 'batchmean')
//!                          = (1/b) Σ_positions Σ_v p(v) · (log p(v) − log p_prev(v))
//! ```
//!
//! with `p = softmax(z / T)` of the model being trained, `p_prev` of the frozen previous model,
//! T = 2 and w = 1, and no T² factor. The argument order is TRACE's: PyTorch's `kl_div(input,
//! target)` computes KL(target ‖ input), so the *trained* model's distribution is the target
//! and the gradient flows through it — KL(p ‖ p_prev), the reverse of the usual distillation
//! KL(p_prev ‖ p). `b` is the number of sequences in the batch.
//!
//! Departures: the sum runs over real tokens only (TRACE also sums the padding positions),
//! and the previous model's logits are computed on the fly without dropout (TRACE stores them
//! per step, computed with the model in train mode). Under gradient accumulation each
//! micro-batch's loss is weighted by its share of the step's scored tokens, like the
//! cross-entropy (TRACE's DeepSpeed weights micro-batches equally). The loss curve of an `lwf`
//! run is CE + KD (the penalties of EWC, MAS, SI and TIR are not in theirs).
//!
//! Cost: unlike plain training, which sends only scored positions through the output head,
//! KD needs the full `[b, s, V]` logits of both models (V = 49 152 for SmolLM2).

use burn::module::Module;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Int, Tensor};
use llama::model::{Llama, scored_positions};
use llama::train::Batch;

use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, MethodSettings, StageContext};
use crate::invalid::{InvalidValue, check};

/// TRACE's temperature.
pub const DEFAULT_TEMPERATURE: f64 = 2.0;

/// `[method] name = "lwf"` (absent fields take the defaults, TRACE's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LwfConfig {
    /// Distillation temperature T (> 0).
    pub temperature: f64,
    /// Weight of the distillation term (≥ 0).
    pub distill_weight: f64,
}

impl Default for LwfConfig {
    fn default() -> Self {
        Self {
            temperature: DEFAULT_TEMPERATURE,
            distill_weight: 1.0,
        }
    }
}

impl MethodSettings for LwfConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.temperature.is_finite() && self.temperature > 0.0,
            "method.temperature",
            self.temperature,
            "must be positive",
        )?;
        check(
            self.distill_weight.is_finite() && self.distill_weight >= 0.0,
            "method.distill_weight",
            self.distill_weight,
            "must be ≥ 0",
        )
    }

    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Lwf::new(self)))
    }
}

/// LwF's state: the frozen previous model, for the stage being trained.
pub struct Lwf {
    temperature: f64,
    weight: f64,
    teacher: Option<Llama>,
}

impl Lwf {
    /// No teacher before the second task.
    pub fn new(config: &LwfConfig) -> Self {
        Self {
            temperature: config.temperature,
            weight: config.distill_weight,
            teacher: None,
        }
    }
}

/// The mean token cross-entropy of `logits` `[b, s, V]` against the batch's labels (as
/// [`Llama::causal_lm_loss`]). `[1]`.
fn cross_entropy(logits: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1> {
    let [b, s, v] = logits.dims();
    let Some((rows, targets)) = scored_positions(labels) else {
        return Tensor::<1>::full([1], f32::NAN, &logits.device());
    };
    let n = rows.dims()[0];
    let picked = logits.reshape([b * s, v]).select(0, rows);
    log_softmax(picked, 1).gather(1, targets).sum().neg() / n as f64
}

/// TRACE's distillation term `(1/b) Σ_real positions KL(softmax(z/T) ‖ softmax(z_prev/T))`
/// for `logits`, `previous` `[b, s, V]` and `mask` `[b, s]` (1 = real token). `[1]`.
pub fn distillation(
    logits: Tensor<3>,
    previous: Tensor<3>,
    mask: Tensor<2, Int>,
    temperature: f64,
) -> Tensor<1> {
    let [b, s, _] = logits.dims();
    let scaled = logits / temperature;
    let log_p = log_softmax(scaled.clone(), 2);
    let log_prev = log_softmax(previous / temperature, 2);
    let per_position = (softmax(scaled, 2) * (log_p - log_prev)).sum_dim(2);
    (per_position.reshape([b, s]) * mask.float()).sum() / b as f64
}

impl ContinualMethod for Lwf {
    fn begin_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        self.teacher = (stage.stage > 1).then(|| model.valid());
        Ok(model)
    }

    fn loss(&self, model: &Llama, batch: &Batch, hidden: Tensor<3>) -> Tensor<1> {
        let Some(teacher) = &self.teacher else {
            return llama::train::causal_lm_loss(model, batch, hidden);
        };
        let logits = model.logits_of_hidden(hidden);
        let previous = teacher.forward(
            batch.tokens.clone().inner(),
            batch.attention_mask.clone().inner(),
        );
        let kd = distillation(
            logits.clone(),
            Tensor::from_inner(previous),
            batch.attention_mask.clone(),
            self.temperature,
        );
        cross_entropy(logits, batch.labels.clone()) + kd * self.weight
    }

    fn end_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        self.teacher = None;
        Ok(model)
    }
}
