//! The deterministic test double of the `trainer run` end-to-end tests (`run_runner.rs`,
//! `run_inscl.rs`): a learner that memorises, forgets and drifts, with no model inside.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use inscl::artifact::LossPoint;
use trainer::learner::{ContinualLearner, Example, StageTraining, StepReport, Weights};

/// TEST DOUBLE, not a model: memorises the first output of each (instruction, input) in a
/// first-in-first-out memory of fixed capacity (so it forgets old tasks unless they are
/// replayed); for an unseen input it answers the most frequent remembered output of the same
/// instruction (a class prior), else nothing. Embeds a text as hashed token counts.
#[derive(Debug, Clone, Default)]
pub struct MemorisingDouble {
    /// (key of instruction + input, hash of instruction, first output), oldest first.
    memory: Vec<(u64, u64, String)>,
    capacity: usize,
    /// Fail with an error at this stage after its first step (a crash mid-stage).
    pub fail_at_stage: Option<usize>,
    /// Report a NaN loss at this stage's first step.
    pub nan_at_stage: Option<usize>,
    /// Raise this flag (as Ctrl-C would) at this stage's first step.
    pub interrupt_at_stage: Option<(usize, Arc<AtomicBool>)>,
    /// Instance ids in the order they were trained on (this process only).
    pub trained_ids: Vec<String>,
    /// Prompts answered by [`ContinualLearner::chat`] (this process only).
    pub chat_prompts: usize,
}

fn key(example: &Example) -> u64 {
    let mut h = DefaultHasher::new();
    (&example.instruction, &example.input).hash(&mut h);
    h.finish()
}

fn instruction_key(example: &Example) -> u64 {
    let mut h = DefaultHasher::new();
    example.instruction.hash(&mut h);
    h.finish()
}

impl MemorisingDouble {
    /// A double that remembers at most `capacity` examples.
    pub fn new(capacity: usize) -> Self {
        MemorisingDouble {
            capacity,
            ..Default::default()
        }
    }

    /// The most frequent remembered output of `example`'s instruction (ties: the earliest).
    fn prior(&self, example: &Example) -> String {
        let same: Vec<&String> = self
            .memory
            .iter()
            .filter(|(_, q, _)| *q == instruction_key(example))
            .map(|(_, _, o)| o)
            .collect();
        same.iter()
            .max_by_key(|o| {
                (
                    same.iter().filter(|p| p == o).count(),
                    std::cmp::Reverse(same.iter().position(|p| p == *o)),
                )
            })
            .map(|o| (*o).clone())
            .unwrap_or_default()
    }
}

/// A stable hash of `text`.
fn text_hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

impl ContinualLearner for MemorisingDouble {
    /// Hashed word counts; the current weights add a drift that grows with what was trained
    /// (as a fine-tuned model's hidden states move), the base weights do not.
    fn embed(&mut self, texts: &[String], weights: Weights) -> anyhow::Result<Vec<Vec<f32>>> {
        let drift = match weights {
            Weights::Base => 0.0,
            Weights::Current => self.memory.len() as f32,
        };
        Ok(texts
            .iter()
            .map(|text| {
                let mut v = vec![0f32; 16];
                v[0] = 1.0 + drift;
                for word in text.split_whitespace() {
                    v[1 + (text_hash(&word.to_lowercase()) % 15) as usize] += 1.0;
                }
                v
            })
            .collect())
    }

    /// Tags in InsTag's JSON: the instruction's first three words. Instructions that start with
    /// "In " get an unusable first reply; those that start with "In medical" an unusable reply
    /// to the retry too (so they fall back to keyphrases).
    fn chat(&mut self, prompts: &[String], _max_new_tokens: usize) -> anyhow::Result<Vec<String>> {
        self.chat_prompts += prompts.len();
        Ok(prompts
            .iter()
            .map(|prompt| {
                let instruction = prompt
                    .split("[begin]\n")
                    .nth(1)
                    .and_then(|rest| rest.split("\n[end]").next())
                    .unwrap_or("");
                let words: Vec<&str> = instruction.split_whitespace().take(3).collect();
                let retry = prompt.contains("JSON list of strings only");
                if retry && instruction.starts_with("In medical") {
                    "I am sorry, but I cannot provide tags for this instruction.".to_owned()
                } else if retry {
                    serde_json::to_string(&words).unwrap()
                } else if instruction.starts_with("In ") {
                    "Sure! Here are the tags you asked for, in the format that you asked".to_owned()
                } else {
                    let tags: Vec<serde_json::Value> = words
                        .iter()
                        .map(|w| serde_json::json!({"tag": w, "explanation": "a word"}))
                        .collect();
                    serde_json::to_string(&tags).unwrap()
                }
            })
            .collect())
    }

    fn token_counts(&self, texts: &[String]) -> anyhow::Result<Vec<usize>> {
        Ok(texts.iter().map(|t| t.split_whitespace().count()).collect())
    }

    fn train(
        &mut self,
        examples: &[Example],
        plan: &StageTraining,
        on_step: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<LossPoint>> {
        let batches: Vec<&[Example]> = examples.chunks(plan.config.batch_size).collect();
        let total_steps = batches.len() * plan.config.epochs;
        let mut curve = Vec::new();
        for step in 1..=total_steps {
            let batch = batches[(step - 1) % batches.len()];
            let unknown = batch
                .iter()
                .filter(|e| !self.memory.iter().any(|(k, _, _)| *k == key(e)))
                .count();
            let mut loss = 0.01 + unknown as f64 / batch.len() as f64;
            if self.nan_at_stage == Some(plan.stage) {
                loss = f64::NAN;
            }
            for example in batch {
                self.trained_ids.push(example.id.clone());
                self.memory.retain(|(k, _, _)| *k != key(example));
                self.memory.push((
                    key(example),
                    instruction_key(example),
                    example.output[0].clone(),
                ));
                if self.memory.len() > self.capacity {
                    self.memory.remove(0);
                }
            }
            if step == 2 && self.fail_at_stage == Some(plan.stage) {
                anyhow::bail!("simulated crash at stage {}", plan.stage);
            }
            if let Some((stage, flag)) = &self.interrupt_at_stage
                && *stage == plan.stage
            {
                flag.store(true, Ordering::SeqCst);
            }
            let point = LossPoint {
                step,
                loss,
                lr: plan.config.lr,
            };
            curve.push(point);
            let report = StepReport {
                step,
                total_steps,
                loss,
                lr: plan.config.lr,
                tokens_per_s: 1.0,
            };
            if on_step(&report).is_break() {
                break;
            }
        }
        Ok(curve)
    }

    fn generate(
        &mut self,
        examples: &[Example],
        _max_new_tokens: usize,
        on_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<String>> {
        let mut outputs = Vec::new();
        for example in examples {
            let exact = self
                .memory
                .iter()
                .find(|(k, _, _)| *k == key(example))
                .map(|(_, _, o)| o.clone());
            outputs.push(exact.unwrap_or_else(|| self.prior(example)));
            if on_done(outputs.len()).is_break() {
                break;
            }
        }
        Ok(outputs)
    }

    fn save_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(
            dir.join("memory.json"),
            serde_json::to_string(&self.memory)?,
        )?;
        Ok(())
    }

    fn load_checkpoint(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.memory = serde_json::from_str(&std::fs::read_to_string(dir.join("memory.json"))?)?;
        Ok(())
    }

    fn reset(&mut self) -> anyhow::Result<()> {
        self.memory.clear();
        Ok(())
    }

    fn device(&self) -> String {
        "test double".into()
    }
}
