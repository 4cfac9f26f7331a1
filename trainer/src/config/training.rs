//! `[training]`: optimiser and adapter settings.

use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// Which weights fine-tuning trains (`[training] adapter`): LoRA adapters or all weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finetuning {
    /// LoRA adapters on the frozen base weights.
    Lora,
    /// Every weight.
    Full,
}

/// Learning-rate schedule after the linear warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine decay to 0.
    Cosine,
    /// Linear decay to 0.
    Linear,
    /// The peak rate throughout.
    Constant,
}

/// `[training]`: optimiser and adapter settings, handed to the [`crate::learner::ContinualLearner`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// LoRA or full fine-tuning. Written `method` by older configurations and `run.json`
    /// files, which still read ([`super::layers::RENAMED_KEYS`]).
    #[serde(alias = "method")]
    pub adapter: Finetuning,
    /// Passes over each stage's training mix (≥ 1).
    pub epochs: usize,
    /// Peak learning rate (> 0).
    pub lr: f64,
    /// Learning-rate schedule after the warmup.
    pub schedule: Schedule,
    /// Fraction of the steps with linear warmup, in `[0, 1)`.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay (≥ 0).
    pub weight_decay: f64,
    /// Examples per micro-batch (≥ 1).
    pub batch_size: usize,
    /// Micro-batches per optimiser step (≥ 1).
    pub grad_accumulation: usize,
    /// Tokens per example (prompt + response), longer ones truncated (≥ 8).
    pub max_length: usize,
    /// Global gradient-norm clip (> 0).
    pub clip_norm: f64,
    /// LoRA rank r (≥ 1).
    pub lora_rank: usize,
    /// LoRA scale numerator: the update is multiplied by `lora_alpha / r` (> 0).
    pub lora_alpha: f64,
    /// Dropout on the LoRA adapters' input, in [0, 1).
    pub lora_dropout: f64,
    /// Among q, k, v, o, gate, up, down.
    pub lora_targets: Vec<String>,
    /// Recompute each decoder layer's activations in the backward pass instead of keeping
    /// them (activation checkpointing): activation memory of one layer instead of all.
    #[serde(default)]
    pub checkpoint_layers: bool,
    /// Pad batch widths, generation prompts and attended KV-cache positions to multiples of
    /// this many tokens ([`llama::shapes`]), so that a GPU compiles and tunes its kernels
    /// once per bucket; 0 = exact shapes. Unset: 64 on a GPU, exact shapes on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<usize>,
}

impl TrainingConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.epochs >= 1,
            "training.epochs",
            self.epochs,
            "must be at least 1",
        )?;
        check(
            self.lr.is_finite() && self.lr > 0.0,
            "training.lr",
            self.lr,
            "must be positive and finite",
        )?;
        check(
            (0.0..1.0).contains(&self.warmup_ratio),
            "training.warmup_ratio",
            self.warmup_ratio,
            "must be in [0, 1)",
        )?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "training.weight_decay",
            self.weight_decay,
            "must be ≥ 0",
        )?;
        check(
            self.batch_size >= 1,
            "training.batch_size",
            self.batch_size,
            "must be at least 1",
        )?;
        check(
            self.grad_accumulation >= 1,
            "training.grad_accumulation",
            self.grad_accumulation,
            "must be at least 1",
        )?;
        check(
            self.max_length >= 8,
            "training.max_length",
            self.max_length,
            "must be at least 8 tokens",
        )?;
        check(
            self.clip_norm.is_finite() && self.clip_norm > 0.0,
            "training.clip_norm",
            self.clip_norm,
            "must be positive",
        )?;
        self.validate_lora()
    }

    /// The LoRA fields (checked whatever `method` is: a run.json stays switchable to LoRA).
    fn validate_lora(&self) -> Result<(), InvalidValue> {
        check(
            self.lora_rank >= 1,
            "training.lora_rank",
            self.lora_rank,
            "must be at least 1",
        )?;
        check(
            self.lora_alpha.is_finite() && self.lora_alpha > 0.0,
            "training.lora_alpha",
            self.lora_alpha,
            "must be positive",
        )?;
        check(
            (0.0..1.0).contains(&self.lora_dropout),
            "training.lora_dropout",
            self.lora_dropout,
            "must be in [0, 1)",
        )?;
        check(
            !self.lora_targets.is_empty(),
            "training.lora_targets",
            "[]",
            "needs at least one module",
        )?;
        for target in &self.lora_targets {
            check(
                ["q", "k", "v", "o", "gate", "up", "down"].contains(&target.as_str()),
                "training.lora_targets",
                target,
                "expected q, k, v, o, gate, up or down",
            )?;
        }
        Ok(())
    }
}
