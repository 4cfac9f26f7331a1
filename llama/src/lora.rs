//! LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3) as PEFT
//! computes it (`peft.tuners.lora.layer.Linear.forward`): a targeted projection with frozen
//! weight `W` (burn layout `[in, out]`) maps `x` to
//!
//! ```text
//! h = x W + (lora_alpha / r) · dropout(x) A B
//! ```
//!
//! with trainable `A` `[in, r]` and `B` `[r, out]`. The update stays unmerged while training, so
//! dropout acts on the adapter's input only and the backward pass never forms a weight-shaped
//! gradient (`∂L/∂A = s · xᵀ (∂L/∂h) Bᵀ`, a rank-r product); [`LoraLinear::merge`] folds `s · A B` into
//! `W` for inference and export.
//!
//! This module is the layer alone ([`LoraLinear`], which the model's projections are, as
//! candle's `llama.rs` takes `LoraLinear` from candle-nn); attaching, merging, loading and
//! exporting adapters on a whole [`crate::model::Llama`] in PEFT's format is [`crate::peft`].

use burn::module::{Module, Param};
use burn::nn::Dropout;
use burn::tensor::Tensor;
use burn::tensor::module::linear;
use serde::{Deserialize, Serialize};

use crate::kernels::frozen_matmul::project;

/// A projection LoRA may adapt, named as in HF/PEFT `target_modules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoraTarget {
    /// `self_attn.q_proj`.
    QProj,
    /// `self_attn.k_proj`.
    KProj,
    /// `self_attn.v_proj`.
    VProj,
    /// `self_attn.o_proj`.
    OProj,
    /// `mlp.gate_proj`.
    GateProj,
    /// `mlp.up_proj`.
    UpProj,
    /// `mlp.down_proj`.
    DownProj,
}

impl LoraTarget {
    /// All seven projections.
    pub const ALL: [LoraTarget; 7] = [
        Self::QProj,
        Self::KProj,
        Self::VProj,
        Self::OProj,
        Self::GateProj,
        Self::UpProj,
        Self::DownProj,
    ];

    /// Module path inside a decoder layer, e.g. `self_attn.q_proj`.
    pub fn module_path(self) -> &'static str {
        match self {
            Self::QProj => "self_attn.q_proj",
            Self::KProj => "self_attn.k_proj",
            Self::VProj => "self_attn.v_proj",
            Self::OProj => "self_attn.o_proj",
            Self::GateProj => "mlp.gate_proj",
            Self::UpProj => "mlp.up_proj",
            Self::DownProj => "mlp.down_proj",
        }
    }

    /// PEFT `target_modules` entry, e.g. `q_proj`.
    pub fn peft_name(self) -> &'static str {
        self.module_path().rsplit('.').next().unwrap_or_default()
    }
}

/// LoRA hyper-parameters (PEFT `LoraConfig` names: `r`, `lora_alpha`, `lora_dropout`,
/// `target_modules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank r > 0.
    pub r: usize,
    /// Scale numerator: the update is multiplied by `lora_alpha / r`.
    pub lora_alpha: f64,
    /// Probability in [0, 1) of zeroing an element of the adapter's input while training
    /// (inverted dropout: kept elements are scaled by `1 / (1 - p)`); 0 disables it.
    #[serde(default)]
    pub lora_dropout: f64,
    /// Adapted projections (non-empty).
    pub target_modules: Vec<LoraTarget>,
}

/// Errors of a LoRA configuration and of PEFT adapters ([`crate::peft::apply_lora`],
/// [`crate::peft::load_peft_adapter`], [`crate::peft::read_peft_adapter`]).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LoraError {
    /// Rank 0 or no target module.
    #[error("invalid LoRA configuration: rank {r}, {targets} target modules")]
    InvalidConfig {
        /// The rank.
        r: usize,
        /// Number of targets.
        targets: usize,
    },
    /// `lora_dropout` outside [0, 1).
    #[error("invalid LoRA configuration: lora_dropout {0} is not in [0, 1)")]
    InvalidDropout(f64),
    /// An adapter file lacks a factor the configuration implies.
    #[error("adapter has no tensor `{0}`")]
    MissingTensor(String),
    /// A PEFT adapter folder that cannot be read or describes another kind of adapter.
    #[error("{path}: {message}")]
    AdapterFile {
        /// The file.
        path: String,
        /// What is wrong, naming the field and value.
        message: String,
    },
    /// An adapter factor has another shape than the model and rank imply.
    #[error("adapter tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// PEFT tensor name.
        name: String,
        /// `[r, in]` or `[out, r]`.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
}

/// The trainable low-rank update of one projection: `s · dropout(x) A B`.
#[derive(Module, Debug)]
pub struct LoraAdapter {
    /// Down-projection `A`, `[in, r]` (PEFT `lora_A.weight` transposed).
    pub a: Param<Tensor<2>>,
    /// Up-projection `B`, `[r, out]` (PEFT `lora_B.weight` transposed).
    pub b: Param<Tensor<2>>,
    /// `lora_alpha / r`.
    pub scale: f64,
    /// Dropout on the adapter's input; active only on an autodiff device in training mode.
    pub dropout: Dropout,
}

impl LoraAdapter {
    /// `s · dropout(x) A B` for `x` `[…, in]` → `[…, out]`. PEFT scales the `[…, out]`
    /// product; scaling the `[…, r]` one instead is the same function with a pass over a
    /// tensor `r / out` the size.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let down = linear(self.dropout.forward(x), self.a.val(), None);
        linear(down * self.scale, self.b.val(), None)
    }

    /// The dense update `s · A B`, `[in, out]`.
    pub fn delta(&self) -> Tensor<2> {
        self.a.val().matmul(self.b.val()) * self.scale
    }
}

/// A bias-free linear layer (burn layout: `weight` `[in, out]`) with an optional LoRA adapter;
/// the attention and MLP projections of [`crate::model::Llama`].
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// `W`, `[in, out]`; frozen once an adapter is attached.
    pub weight: Param<Tensor<2>>,
    /// The adapter, when this projection is targeted.
    pub lora: Option<LoraAdapter>,
}

impl LoraLinear {
    /// A plain projection with weight `[in, out]`.
    pub fn new(weight: Param<Tensor<2>>) -> Self {
        Self { weight, lora: None }
    }

    /// `x W (+ s · dropout(x) A B)` for `x` `[…, in]` → `[…, out]`; `x W` through
    /// [`project`], so a frozen `W` costs no weight gradient and no extra passes.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match &self.lora {
            None => project(x, self.weight.val()),
            Some(adapter) => project(x.clone(), self.weight.val()) + adapter.forward(x),
        }
    }

    /// Folds the adapter into the weight (`W ← W + s · A B`) and drops it: the same function
    /// without dropout, one matmul cheaper.
    pub fn merge(&mut self) {
        if let Some(adapter) = self.lora.take() {
            self.weight = self.weight.clone().map(|w| w + adapter.delta());
        }
    }

    /// `[in, out]`.
    pub(crate) fn dims(&self) -> [usize; 2] {
        self.weight.val().dims()
    }
}

impl LoraConfig {
    /// Checks the rank, the targets and the dropout.
    ///
    /// # Errors
    /// [`LoraError::InvalidConfig`] for rank 0 or no targets, [`LoraError::InvalidDropout`] for
    /// a dropout outside [0, 1).
    pub fn validate(&self) -> Result<(), LoraError> {
        if self.r == 0 || self.target_modules.is_empty() {
            return Err(LoraError::InvalidConfig {
                r: self.r,
                targets: self.target_modules.len(),
            });
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(LoraError::InvalidDropout(self.lora_dropout));
        }
        Ok(())
    }
}
