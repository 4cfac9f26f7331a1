//! The model behind `trainer run`, as a trait: the runner does data, replay planning,
//! evaluation, artifacts and resume; a [`ContinualLearner`] embeds, trains, generates and checkpoints.
//!
//! The burn LLaMA of the model layer implements it (`impl ContinualLearner for LlamaLearner`); the
//! runner's tests use a deterministic test double.

use std::ops::ControlFlow;
use std::path::Path;

pub use inscl::artifact::LossPoint;
pub use llama::generate::GenerationStats;

use crate::config::TrainingConfig;
pub use crate::data::Example;

/// What one stage's training needs besides the examples.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTraining {
    /// 1-based stage number (1 for the single `multitask` stage).
    pub stage: usize,
    /// The task trained at this stage (`multitask` for the multitask stage): continual-learning
    /// methods take its importances and memory from its own examples, not from replay.
    pub task: String,
    /// Seed of everything random inside training (dropout, batching): derived from the run
    /// seed and the stage, so a resumed stage trains exactly like an uninterrupted one.
    pub seed: u64,
    /// Optimiser, schedule, batch and adapter settings.
    pub config: TrainingConfig,
    /// For the `tir` method: the Wasserstein distances among the seen tasks (T × T, the
    /// stage's task last), from the same embeddings and settings as the replay plan; empty
    /// for the other methods.
    pub task_distances: Vec<Vec<f64>>,
}

/// Which weights a [`ContinualLearner::embed`] call uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// The pretrained weights, adapters off (or the initial weights under full fine-tuning):
    /// the same whatever was trained.
    Base,
    /// The weights as trained so far.
    Current,
}

/// Progress of one optimiser step, reported to the runner as it happens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Optimiser step within the stage, 1-based.
    pub step: usize,
    /// Optimiser steps of the whole stage.
    pub total_steps: usize,
    /// Mean token cross-entropy of the step (nats per response token). The runner stops the
    /// run when it is NaN or infinite.
    pub loss: f64,
    /// Learning rate used at the step.
    pub lr: f64,
    /// Training throughput of the step (prompt + response tokens per second).
    pub tokens_per_s: f64,
}

/// The neural network of a run (named apart from burn-train's `Learner`, a training loop).
///
/// Callbacks return [`ControlFlow::Break`] when the runner wants the learner to stop early
/// (Ctrl-C, or a NaN/inf loss): the learner must return promptly (with `Ok` and what it has;
/// the runner discards the stage). Implementations must be deterministic given the
/// checkpointed state and [`StageTraining::seed`]: resuming a run relies on it.
pub trait ContinualLearner {
    /// Mean-pooled hidden states (of the configured layer) of each text under `weights`: one
    /// f32 vector per text, all of one dimension, none all-zero.
    ///
    /// # Errors
    /// Any model failure.
    fn embed(&mut self, texts: &[String], weights: Weights) -> anyhow::Result<Vec<Vec<f32>>>;

    /// Greedy replies of the base weights (adapters off) to single-turn chat prompts, each
    /// in the checkpoint's chat template, at most `max_new_tokens` tokens each: the `llm`
    /// tagger's model.
    ///
    /// # Errors
    /// Any model failure.
    fn chat(&mut self, prompts: &[String], max_new_tokens: usize) -> anyhow::Result<Vec<String>>;

    /// The number of tokens of each text (no special tokens), for generation budgets.
    ///
    /// # Errors
    /// Tokenizer failures.
    fn token_counts(&self, texts: &[String]) -> anyhow::Result<Vec<usize>>;

    /// Trains one stage on `examples` (already mixed and shuffled) and returns the loss curve,
    /// one point per optimiser step; calls `on_step` after every step.
    ///
    /// # Errors
    /// Any model failure (e.g. out of memory).
    fn train(
        &mut self,
        examples: &[Example],
        plan: &StageTraining,
        on_step: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<LossPoint>>;

    /// Greedy generation, one output per example, at most `max_new_tokens` tokens each (the
    /// prompt is built from instruction and input); calls `on_done(n)` as examples finish,
    /// with the number finished so far.
    ///
    /// # Errors
    /// Any model failure.
    fn generate(
        &mut self,
        examples: &[Example],
        max_new_tokens: usize,
        on_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<String>>;

    /// For the last [`ContinualLearner::generate`] call of a learner that routes each instance to one
    /// of several adapters (the `expand` method): per example, the tasks that trained the
    /// adapter it went to. `None` when one model answers everything.
    fn last_routes(&self) -> Option<Vec<Vec<String>>> {
        None
    }

    /// Where the last [`ContinualLearner::generate`] call's time went (prefill against decoding);
    /// `None` for a learner that does not measure it.
    fn last_generation_stats(&self) -> Option<GenerationStats> {
        None
    }

    /// Writes the trainable state (the adapter, or all weights) into the existing folder `dir`.
    ///
    /// # Errors
    /// I/O failures.
    fn save_checkpoint(&self, dir: &Path) -> anyhow::Result<()>;

    /// Restores the state written by [`ContinualLearner::save_checkpoint`].
    ///
    /// # Errors
    /// A missing or incompatible checkpoint.
    fn load_checkpoint(&mut self, dir: &Path) -> anyhow::Result<()>;

    /// Back to the pretrained weights with a fresh adapter, initialised as at creation from
    /// the run seed (the `single` reference strategy).
    ///
    /// # Errors
    /// Any model failure.
    fn reset(&mut self) -> anyhow::Result<()>;

    /// The compute device in words, e.g. `cpu (flex, 2 threads)`.
    fn device(&self) -> String;

    /// Keeps what the compute backend learns about kernels (GPU autotune results and compiled
    /// kernels) in the folder `dir`, for later stages and runs; by default nothing.
    ///
    /// # Errors
    /// The folder cannot be created.
    fn keep_kernels_in(&mut self, _dir: &Path) -> anyhow::Result<()> {
        Ok(())
    }
}
