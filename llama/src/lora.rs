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
//! The frozen `W` is an f32 parameter or, under a reduced [`crate::io::stored::BasePrecision`],
//! a [`StoredMatrix`] in bf16, f16 or a GGUF block format (QLoRA's setting, Dettmers et al. 2023,
//! with llama.cpp's formats for NF4): the adapter's `A`, `B`, their gradients and optimiser
//! state are f32 either way.
//!
//! This module is the layer alone ([`LoraLinear`], which the model's projections are, as
//! candle's `llama.rs` takes `LoraLinear` from candle-nn); attaching, merging, loading and
//! exporting adapters on a whole [`crate::model::Llama`] in PEFT's format is [`crate::peft`].

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
    Param,
};
use burn::nn::Dropout;
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::io::stored::StoredMatrix;
use crate::kernels::frozen_matmul::project;
use crate::kernels::stored_matmul::stored_matmul;

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

/// The base weight `W` of a projection.
#[derive(Debug, Clone)]
pub enum BaseWeight {
    /// An f32 parameter in burn's `[in, out]` layout: trained under full fine-tuning, frozen
    /// under LoRA.
    Dense(Param<Tensor<2>>),
    /// A frozen matrix in its storage format, HF `[out, in]`, shared by every clone of the
    /// model and held on the host (the flex kernels read it there; other backends upload it
    /// per product). It has no parameter: module visitors and mappers do not see it.
    Stored(StoredMatrix),
}

/// A module whose only tensor is the dense weight, visited under the field's own name (a
/// derived enum would add the variant's name to every parameter path).
impl Module for BaseWeight {
    fn collect_devices(&self, devices: Devices) -> Devices {
        match self {
            Self::Dense(w) => Module::collect_devices(w, devices),
            Self::Stored(_) => devices,
        }
    }

    fn fork(self, device: &Device) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(Module::fork(w, device)),
            stored => stored,
        }
    }

    fn to_device(self, device: &Device) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(Module::to_device(w, device)),
            stored => stored,
        }
    }

    fn train(self) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(Module::train(w)),
            stored => stored,
        }
    }

    fn valid(&self) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(Module::valid(w)),
            stored => stored.clone(),
        }
    }

    fn materialize(self) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(Module::materialize(w)),
            stored => stored,
        }
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        if let Self::Dense(w) = self {
            Module::visit(w, visitor);
        }
    }

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        match self {
            Self::Dense(w) => Self::Dense(Module::map(w, mapper)),
            stored => stored,
        }
    }
}

impl ModuleDisplayDefault for BaseWeight {
    fn content(&self, content: Content) -> Option<Content> {
        match self {
            Self::Dense(w) => w.content(content),
            Self::Stored(m) => content.add_formatted(&format!("{m:?}")).optional(),
        }
    }
}

impl ModuleDisplay for BaseWeight {}

/// A bias-free linear layer (`W` as [`BaseWeight`], `[in, out]` in burn's terms) with an
/// optional LoRA adapter; the attention and MLP projections of [`crate::model::Llama`].
#[derive(Module, Debug)]
pub struct LoraLinear {
    /// `W`: frozen once an adapter is attached, and always when stored.
    pub weight: BaseWeight,
    /// The adapter, when this projection is targeted.
    pub lora: Option<LoraAdapter>,
}

impl LoraLinear {
    /// A plain projection with the f32 weight `[in, out]`.
    pub fn new(weight: Param<Tensor<2>>) -> Self {
        Self {
            weight: BaseWeight::Dense(weight),
            lora: None,
        }
    }

    /// A projection whose frozen weight stays in its storage format (HF `[out, in]`).
    pub fn stored(weight: StoredMatrix) -> Self {
        Self {
            weight: BaseWeight::Stored(weight),
            lora: None,
        }
    }

    /// `x W (+ s · dropout(x) A B)` for `x` `[…, in]` → `[…, out]`; `x W` through
    /// [`project`] (a frozen f32 `W` costs no weight gradient and no extra passes) or
    /// [`stored_matmul`].
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let base = |x| match &self.weight {
            BaseWeight::Dense(w) => project(x, w.val()),
            BaseWeight::Stored(w) => stored_matmul(x, w),
        };
        match &self.lora {
            None => base(x),
            Some(adapter) => base(x.clone()) + adapter.forward(x),
        }
    }

    /// Folds the adapter into an f32 weight (`W ← W + s · A B`) and drops it: the same
    /// function without dropout, one matmul cheaper. A stored weight keeps its adapter
    /// unmerged: folding would need an f32 copy of it.
    pub fn merge(&mut self) {
        let BaseWeight::Dense(weight) = &self.weight else {
            return;
        };
        if let Some(adapter) = self.lora.take() {
            self.weight = BaseWeight::Dense(weight.clone().map(|w| w + adapter.delta()));
        }
    }

    /// Adds `delta` `[in, out]` to the frozen base weight (e.g. a finished adapter, O-LoRA).
    /// `delta` lives on the inner (non-autodiff) device of the weight. A stored weight becomes
    /// an f32 one: `W` dequantised, plus `delta`.
    pub fn add_to_base(&mut self, delta: Tensor<2>) {
        self.weight = match &self.weight {
            BaseWeight::Dense(w) => {
                BaseWeight::Dense(w.clone().map(|w| Tensor::from_inner(w.inner() + delta)))
            }
            BaseWeight::Stored(w) => {
                let [out, input] = w.shape();
                let dense = Tensor::<2>::from_data(
                    TensorData::new(w.to_f32(), [out, input]),
                    &delta.device(),
                );
                let sum = Tensor::from_inner(dense.transpose() + delta);
                BaseWeight::Dense(Param::from_tensor(sum).set_require_grad(false))
            }
        };
    }

    /// The f32 weight `[in, out]`; `None` when it is stored.
    pub fn dense_weight(&self) -> Option<&Param<Tensor<2>>> {
        match &self.weight {
            BaseWeight::Dense(w) => Some(w),
            BaseWeight::Stored(_) => None,
        }
    }

    /// `[in, out]`.
    pub(crate) fn dims(&self) -> [usize; 2] {
        match &self.weight {
            BaseWeight::Dense(w) => w.val().dims(),
            BaseWeight::Stored(w) => {
                let [out, input] = w.shape();
                [input, out]
            }
        }
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
