//! Per-task adapter expansion with instruction routing: EProj (task-specific expansion, He et
//! al. 2023, arXiv 2311.16206) in LCIA's retrain-or-expand form (JingyangQiao/CoIN
//! `instruct/LoRASelect.py`).
//!
//! Each adapter (an *expert*) has a key: the mean base-model embedding of the instructions it
//! was trained on. Before a task, its own key is compared with every expert's by cosine
//! similarity; at or above `expand_threshold` the most similar expert is trained further (its
//! key then averages the instructions of all its tasks), otherwise a fresh adapter (PEFT's
//! initialisation) joins the bank. At evaluation every test instance goes to the expert whose
//! key is most similar to its instruction's embedding, and the stage records how often that
//! expert is one that trained the instance's task (the routing accuracy).
//!
//! LCIA scores instructions by TF-IDF cosine (threshold 0.9 for instruction codebooks); this
//! is the task-embedding variant: the same base-model embeddings InsCL's Wasserstein distances
//! use (`[embedding]`). Mean-pooled hidden states are anisotropic (the first three InsCL16
//! categories are 0.93–0.98 apart with SmolLM2), so the default threshold is 1: one adapter
//! per task, as EProj; lower it to let similar tasks share one.

use std::path::Path;

use anyhow::Context;
use llama::io::host::HostTensors;
use llama::lora::LoraConfig;
use llama::model::Llama;
use llama::peft::{apply_lora, load_peft_adapter, peft_adapter_tensors};
use serde::{Deserialize, Serialize};

use super::routing::{Expert, cosine, nearest_key};
use super::{
    ContinualMethod, MethodSettings, STATE_JSON, STATE_TENSORS, StageContext, read_tensors,
};
use crate::invalid::{InvalidValue, check};

/// Salt of the seed that initialises a new expert's adapter ([`inscl::seed::salted`]).
const NEW_EXPERT_SALT: u64 = 0xE7_9A_4D;

/// `[method] name = "expand"` (absent fields take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExpandConfig {
    /// Cosine similarity of a task's instruction embedding to an adapter's key at which that
    /// adapter is trained further instead of a new one, in [-1, 1]; 1 = one adapter per task
    /// (EProj).
    pub expand_threshold: f64,
}

impl Default for ExpandConfig {
    fn default() -> Self {
        Self {
            expand_threshold: 1.0,
        }
    }
}

impl MethodSettings for ExpandConfig {
    fn validate(&self) -> Result<(), InvalidValue> {
        check(
            (-1.0..=1.0).contains(&self.expand_threshold),
            "method.expand_threshold",
            self.expand_threshold,
            "must be in [-1, 1]",
        )
    }

    fn build(&self, lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        let lora = lora.context("expand trains LoRA adapters: set training.method = \"lora\"")?;
        Ok(Box::new(Expansion::new(self, lora)))
    }

    fn trains_adapters(&self) -> bool {
        true
    }
}

#[derive(Serialize, Deserialize)]
struct ExpertRecord {
    key: Vec<f32>,
    tasks: Vec<String>,
    instructions: usize,
}

/// The adapter bank.
pub struct Expansion {
    threshold: f64,
    lora: LoraConfig,
    experts: Vec<Expert>,
    /// The expert trained at this stage (`None` = a new one), and the stage's task key.
    training: Option<(Option<usize>, Vec<f32>, usize)>,
}

impl Expansion {
    /// An empty bank.
    pub fn new(config: &ExpandConfig, lora: &LoraConfig) -> Self {
        Self {
            threshold: config.expand_threshold,
            lora: lora.clone(),
            experts: Vec::new(),
            training: None,
        }
    }

    /// The bank.
    pub fn experts(&self) -> &[Expert] {
        &self.experts
    }
}


impl ContinualMethod for Expansion {
    fn routes(&self) -> Option<&[Expert]> {
        Some(&self.experts)
    }

    fn begin_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let (key, instructions) = stage
            .task_key
            .clone()
            .context("expansion needs the task's instruction embedding")?;
        let keys: Vec<Vec<f32>> = self.experts.iter().map(|e| e.key.clone()).collect();
        let reuse = nearest_key(&keys, &key).filter(|&k| cosine(&keys[k], &key) >= self.threshold);
        let model = match reuse {
            Some(k) => load_peft_adapter(model, &self.lora, &self.experts[k].adapter)?,
            // The first task trains the adapter the model was created with.
            None if self.experts.is_empty() => model,
            None => apply_lora(model, &self.lora, inscl::seed::salted(stage.seed, NEW_EXPERT_SALT))?,
        };
        self.training = Some((reuse, key, instructions));
        Ok(model)
    }

    fn end_stage(&mut self, model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        let (reuse, key, instructions) = self
            .training
            .take()
            .context("end of a stage that did not begin")?;
        let adapter = peft_adapter_tensors(&model);
        match reuse {
            Some(k) => {
                let expert = &mut self.experts[k];
                let (old, new) = (expert.instructions as f32, instructions as f32);
                for (e, n) in expert.key.iter_mut().zip(&key) {
                    *e = (*e * old + n * new) / (old + new);
                }
                expert.instructions += instructions;
                expert.tasks.extend(stage.trained_tasks.iter().cloned());
                expert.adapter = adapter;
            }
            None => self.experts.push(Expert {
                key,
                tasks: stage.trained_tasks.to_vec(),
                adapter,
                instructions,
            }),
        }
        Ok(model)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let mut host = HostTensors::new();
        for (k, expert) in self.experts.iter().enumerate() {
            host.extend(
                expert
                    .adapter
                    .iter()
                    .map(|(name, t)| (format!("expert.{k}.{name}"), t.clone())),
            );
        }
        llama::io::safetensors::save_host_tensors(&dir.join(STATE_TENSORS), &host)?;
        let records: Vec<ExpertRecord> = self
            .experts
            .iter()
            .map(|e| ExpertRecord {
                key: e.key.clone(),
                tasks: e.tasks.clone(),
                instructions: e.instructions,
            })
            .collect();
        let path = dir.join(STATE_JSON);
        std::fs::write(&path, serde_json::to_string(&records)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn load(&mut self, dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        let path = dir.join(STATE_JSON);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let records: Vec<ExpertRecord> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected the expert list [{{key, tasks, instructions}}]",
                path.display()
            )
        })?;
        let host = read_tensors(dir)?;
        self.experts = records
            .into_iter()
            .enumerate()
            .map(|(k, r)| {
                let prefix = format!("expert.{k}.");
                let adapter: HostTensors = host
                    .iter()
                    .filter_map(|(name, t)| {
                        name.strip_prefix(&prefix)
                            .map(|n| (n.to_owned(), t.clone()))
                    })
                    .collect();
                anyhow::ensure!(
                    !adapter.is_empty(),
                    "{}: no tensors of expert {k}",
                    dir.join(STATE_TENSORS).display()
                );
                Ok(Expert {
                    key: r.key,
                    tasks: r.tasks,
                    adapter,
                    instructions: r.instructions,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(model)
    }
}
