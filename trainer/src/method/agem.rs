//! Averaged gradient episodic memory (Chaudhry et al. 2019), as Avalanche writes it
//! (`training/plugins/agem.py`).
//!
//! After each task, `memory_per_task` of its training examples, drawn at random, join an
//! episodic memory kept apart from replay. At every later step, `g_ref` is the gradient of the
//! mean token cross-entropy on a memory batch of `memory_batch` examples, drawn evenly from the
//! stored tasks (Avalanche's `GroupBalancedInfiniteDataLoader` with `sample_size // tasks` per
//! task), at the current θ; over all trainable parameters flattened,
//!
//! ```text
//! if ⟨g, g_ref⟩ < 0:   g ← g − (⟨g, g_ref⟩ / ⟨g_ref, g_ref⟩) · g_ref
//! ```
//!
//! before clipping and the optimiser step. burn has no `retain_graph`, so `g_ref` costs a
//! second forward and backward pass per step.

use std::path::Path;

use anyhow::Context;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use llama::model::Llama;
use llama::train::{Encoded, accumulate_gradients, causal_lm_loss, collate};
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use llama::lora::LoraConfig;

use super::params::ParamTensors;
use super::{ContinualMethod, MethodSettings, STATE_JSON, StageContext};
use crate::invalid::{InvalidValue, check};

/// Salt of the stream that draws each step's reference batch from the memory
/// ([`inscl::seed::salted`]).
const REFERENCE_BATCH_SALT: u64 = 0xA6E3;

/// Salt of the stream that chooses a finished task's examples for the memory.
const MEMORY_SALT: u64 = 0x3E3;

/// `[method] name = "agem"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgemConfig {
    /// Training examples stored per task, apart from replay (≥ 1).
    pub memory_per_task: usize,
    /// Examples per reference batch (≥ 1); `None` = `training.batch_size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_batch: Option<usize>,
}

impl Default for AgemConfig {
    fn default() -> Self {
        Self {
            memory_per_task: 16,
            memory_batch: None,
        }
    }
}

impl MethodSettings for AgemConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.memory_per_task >= 1,
            "method.memory_per_task",
            self.memory_per_task,
            "must be at least 1",
        )?;
        check(
            self.memory_batch.is_none_or(|b| b >= 1),
            "method.memory_batch",
            self.memory_batch.unwrap_or_default(),
            "must be at least 1",
        )
    }

    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Agem::new(self)))
    }
}

/// A-GEM's episodic memory and the stage's sampling stream.
pub struct Agem {
    memory_per_task: usize,
    memory_batch: Option<usize>,
    /// Stored examples per earlier task.
    memory: Vec<Vec<StoredExample>>,
    /// Memory batch size, stream and device of the stage being trained.
    sampling: Option<(usize, ChaCha8Rng, Device)>,
}

/// One stored example, encoded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredExample {
    tokens: Vec<u32>,
    labels: Vec<i64>,
}

impl Agem {
    /// An empty memory.
    pub fn new(config: &AgemConfig) -> Self {
        Self {
            memory_per_task: config.memory_per_task,
            memory_batch: config.memory_batch,
            memory: Vec::new(),
            sampling: None,
        }
    }

    /// Draws a memory batch: `size / tasks` examples (at least one) from each stored task.
    fn draw_memory_batch(&mut self) -> Option<(Vec<Encoded>, &Device)> {
        let (size, rng, device) = self.sampling.as_mut()?;
        if self.memory.is_empty() {
            return None;
        }
        let per_task = (*size / self.memory.len()).max(1);
        let batch = self
            .memory
            .iter()
            .flat_map(|task| {
                task.choose_multiple(rng, per_task.min(task.len()))
                    .map(|e| Encoded {
                        tokens: e.tokens.clone(),
                        labels: e.labels.clone(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        Some((batch, device))
    }
}

/// A-GEM's projection of `g` given the reference gradient `g_ref`:
/// `g − (⟨g, g_ref⟩ / ⟨g_ref, g_ref⟩) · g_ref` when `⟨g, g_ref⟩ < 0`, `None` (keep `g`)
/// otherwise. One host sync.
///
/// # Panics
/// When `g_ref` lacks a parameter of `g` (both come from one model), or the backend cannot read the products back.
pub fn project(g: &ParamTensors, g_ref: &ParamTensors) -> Option<ParamTensors> {
    let dots = Tensor::cat(vec![g.dot(g_ref), g_ref.dot(g_ref)], 0)
        .into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .expect("f64 dot products");
    let (dot, norm) = (dots[0], dots[1]);
    (dot < 0.0 && norm > 0.0).then(|| g.zip(g_ref, |g, r| g - r * (dot / norm)))
}

impl ContinualMethod for Agem {
    fn begin_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        self.sampling = Some((
            self.memory_batch.unwrap_or(stage.batch_size),
            ChaCha8Rng::seed_from_u64(inscl::seed::salted(stage.seed, REFERENCE_BATCH_SALT)),
            stage.device.clone(),
        ));
        Ok(model)
    }

    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        let Some((batch, device)) = self.draw_memory_batch() else {
            return;
        };
        let batch = collate(&batch.iter().collect::<Vec<_>>(), device);
        if batch.n_scored == 0 {
            return;
        }
        let g_ref = ParamTensors::gradients(
            model,
            &accumulate_gradients(model, &[batch], &causal_lm_loss).grads,
        );
        let g = ParamTensors::gradients(model, grads);
        if let Some(projected) = project(&g, &g_ref) {
            projected.write_gradients(model, grads);
        }
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let mut rng = ChaCha8Rng::seed_from_u64(inscl::seed::salted(stage.seed, MEMORY_SALT));
        let mut chosen: Vec<&Encoded> = stage.task.iter().collect();
        chosen.shuffle(&mut rng);
        chosen.truncate(self.memory_per_task);
        self.memory.push(
            chosen
                .into_iter()
                .map(|e| StoredExample {
                    tokens: e.tokens.clone(),
                    labels: e.labels.clone(),
                })
                .collect(),
        );
        self.sampling = None;
        Ok(model)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let path = dir.join(STATE_JSON);
        std::fs::write(&path, serde_json::to_string(&self.memory)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        let path = dir.join(STATE_JSON);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        self.memory = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected the A-GEM memory, a list per task of {{tokens, labels}}",
                path.display()
            )
        })?;
        Ok(model)
    }
}
