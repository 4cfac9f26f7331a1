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
//! gradient (`∂L/∂A = s · xᵀ (∂L/∂h) Bᵀ`, a rank-r product); [`merge_lora`] folds `s · A B` into
//! `W` for inference and export. Initialisation follows PEFT's default: `A` from
//! `kaiming_uniform_(a = √5)`, i.e. `U(-1/√in, 1/√in)`, drawn from a seeded ChaCha8 stream on
//! the host (the same on every backend), and `B = 0`, so an attached adapter leaves the model's
//! output unchanged.
//!
//! Adapters load and export under PEFT's names and layouts (`lora_A.weight` `[r, in]`,
//! `lora_B.weight` `[out, r]`, prefix `base_model.model.`) so they move to and from `peft`.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::frozen_matmul::project;
use crate::host::{HostTensor, HostTensors};
use crate::model::Llama;

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

/// Errors of [`apply_lora`] and [`load_peft_adapter`].
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
/// the attention and MLP projections of [`Llama`].
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
    fn dims(&self) -> [usize; 2] {
        self.weight.val().dims()
    }
}

fn validate(config: &LoraConfig) -> Result<(), LoraError> {
    if config.r == 0 || config.target_modules.is_empty() {
        return Err(LoraError::InvalidConfig {
            r: config.r,
            targets: config.target_modules.len(),
        });
    }
    if !(0.0..1.0).contains(&config.lora_dropout) {
        return Err(LoraError::InvalidDropout(config.lora_dropout));
    }
    Ok(())
}

fn factor(data: Vec<f32>, shape: [usize; 2], device: &Device) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(data, shape), device))
}

/// Freezes every parameter of `model` and attaches a fresh adapter to `config.target_modules`
/// of every layer: `A ~ U(-1/√in, 1/√in)` (PEFT's default init) from a ChaCha8 stream seeded with
/// `seed`, drawn layer by layer in [`LoraTarget::ALL`] order, and `B = 0`. Build the model on an
/// autodiff device (`device.autodiff()`) to train it.
///
/// # Errors
/// [`LoraError::InvalidConfig`] for rank 0 or no targets, [`LoraError::InvalidDropout`] for a
/// dropout outside [0, 1).
pub fn apply_lora(model: Llama, config: &LoraConfig, seed: u64) -> Result<Llama, LoraError> {
    validate(config)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    attach(model, config, |_, _, [d_in, d_out], device| {
        let bound = 1.0 / (d_in as f32).sqrt();
        let a = (0..d_in * config.r)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        Ok((
            factor(a, [d_in, config.r], device),
            factor(vec![0.0; config.r * d_out], [config.r, d_out], device),
        ))
    })
}

/// Freezes `model` and attaches the adapter of a PEFT `adapter_model.safetensors` (`tensors`,
/// PEFT names and layouts, as [`peft_adapter_tensors`] writes them) to `config.target_modules`;
/// the factors are trainable, so training can continue from them.
///
/// # Errors
/// The configuration errors of [`apply_lora`], [`LoraError::MissingTensor`] and
/// [`LoraError::ShapeMismatch`] naming the PEFT tensor.
pub fn load_peft_adapter(
    model: Llama,
    config: &LoraConfig,
    tensors: &HostTensors,
) -> Result<Llama, LoraError> {
    validate(config)?;
    attach(model, config, |layer, target, [d_in, d_out], device| {
        let read = |name: &str, expected: [usize; 2]| {
            let key = peft_name(layer, target, name);
            let t = tensors
                .get(&key)
                .ok_or_else(|| LoraError::MissingTensor(key.clone()))?;
            if t.shape != expected {
                return Err(LoraError::ShapeMismatch {
                    name: key,
                    expected: expected.to_vec(),
                    found: t.shape.clone(),
                });
            }
            // PEFT `[r, in]` / `[out, r]` → burn `[in, r]` / `[r, out]`.
            Ok(factor(
                t.transposed().data,
                [expected[1], expected[0]],
                device,
            ))
        };
        Ok((
            read("lora_A", [config.r, d_in])?,
            read("lora_B", [d_out, config.r])?,
        ))
    })
}

fn targets_in_order(config: &LoraConfig) -> impl Iterator<Item = LoraTarget> + '_ {
    LoraTarget::ALL
        .into_iter()
        .filter(|t| config.target_modules.contains(t))
}

/// Freezes `model`, then gives each targeted projection (layer by layer, [`LoraTarget::ALL`]
/// order) the factors `(A, B)` that `factors(layer, target, [in, out], device)` returns.
fn attach(
    model: Llama,
    config: &LoraConfig,
    mut factors: impl FnMut(
        usize,
        LoraTarget,
        [usize; 2],
        &Device,
    ) -> Result<(Param<Tensor<2>>, Param<Tensor<2>>), LoraError>,
) -> Result<Llama, LoraError> {
    let mut model = model.no_grad();
    let scale = config.lora_alpha / config.r as f64;
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for target in targets_in_order(config) {
            let projection = layer.projection_mut(target);
            let device = projection.weight.val().device();
            let (a, b) = factors(i, target, projection.dims(), &device)?;
            projection.lora = Some(LoraAdapter {
                a,
                b,
                scale,
                dropout: DropoutConfig::new(config.lora_dropout).init(),
            });
        }
    }
    Ok(model)
}

/// `model` with every adapter folded into its weight ([`LoraLinear::merge`]): for inference and
/// full-weight export.
pub fn merge_lora(mut model: Llama) -> Llama {
    for layer in &mut model.layers {
        for target in LoraTarget::ALL {
            layer.projection_mut(target).merge();
        }
    }
    model
}

fn peft_name(layer: usize, target: LoraTarget, factor: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{factor}.weight",
        target.module_path()
    )
}

/// Copies every float parameter of `module` to the host, keyed by its burn path joined with
/// dots (`layers.0.self_attn.q_proj.weight`; LoRA factors under `….q_proj.lora.a` / `.b`).
/// An adapted projection's `weight` is its frozen base (unmerged).
pub fn parameters_on_host<M: Module>(module: &M) -> HostTensors {
    struct Collector {
        path: Vec<String>,
        out: HostTensors,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out.insert(self.path.join("."), host(param));
        }
    }
    let mut collector = Collector {
        path: Vec::new(),
        out: HostTensors::new(),
    };
    module.visit(&mut collector);
    collector.out
}

/// The LoRA factors of `model` under PEFT names and layouts:
/// `base_model.model.model.layers.{i}.{module}.lora_A.weight` = `Aᵀ` `[r, in]` and
/// `….lora_B.weight` = `Bᵀ` `[out, r]`, so that PEFT's `B_peft @ A_peft · alpha/r` equals the
/// HF-layout (`[out, in]`) update.
pub fn peft_adapter_tensors(model: &Llama) -> HostTensors {
    let mut out = HostTensors::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for target in LoraTarget::ALL {
            let Some(adapter) = &layer.projection(target).lora else {
                continue;
            };
            for (name, param) in [("lora_A", &adapter.a), ("lora_B", &adapter.b)] {
                out.insert(peft_name(i, target, name), host(param).transposed());
            }
        }
    }
    out
}

fn host<const D: usize>(param: &Param<Tensor<D>>) -> HostTensor {
    let value = param.val();
    HostTensor {
        shape: value.dims().to_vec(),
        data: value
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 parameter data"),
    }
}

/// PEFT's `adapter_config.json` for `config` (task `CAUSAL_LM`, no bias).
pub fn peft_adapter_config(config: &LoraConfig) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": config.r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": config.lora_dropout,
        "bias": "none",
        "target_modules": config.target_modules.iter().map(|t| t.peft_name()).collect::<Vec<_>>(),
    })
}

/// Reads a PEFT LoRA adapter folder: `adapter_config.json` (`r`, `lora_alpha`, optional
/// `lora_dropout`, `target_modules` as a list of projection names, `bias` absent or `none`) and
/// `adapter_model.safetensors` (PEFT names and layouts). Attach it with [`load_peft_adapter`].
///
/// # Errors
/// [`LoraError::AdapterFile`] naming the file and the field at fault.
pub fn read_peft_adapter(dir: &std::path::Path) -> Result<(LoraConfig, HostTensors), LoraError> {
    let config_path = dir.join("adapter_config.json");
    let bad = |path: &std::path::Path, message: String| LoraError::AdapterFile {
        path: path.display().to_string(),
        message,
    };
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| bad(&config_path, e.to_string()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(&config_path, e.to_string()))?;
    let field = |name: &str| &json[name];
    if let Some(peft_type) = field("peft_type").as_str().filter(|t| *t != "LORA") {
        return Err(bad(
            &config_path,
            format!("peft_type {peft_type:?} is not LORA"),
        ));
    }
    if let Some(bias) = field("bias").as_str().filter(|b| *b != "none") {
        return Err(bad(
            &config_path,
            format!("bias {bias:?} is not supported (only none)"),
        ));
    }
    let r = field("r").as_u64().ok_or_else(|| {
        bad(
            &config_path,
            format!("r {} is not a positive integer", field("r")),
        )
    })?;
    let lora_alpha = field("lora_alpha").as_f64().ok_or_else(|| {
        bad(
            &config_path,
            format!("lora_alpha {} is not a number", field("lora_alpha")),
        )
    })?;
    let target_modules = serde_json::from_value(field("target_modules").clone()).map_err(|_| {
        bad(
            &config_path,
            format!(
                "target_modules {} is not a list of q_proj, k_proj, v_proj, o_proj, gate_proj, \
                 up_proj, down_proj",
                field("target_modules")
            ),
        )
    })?;
    let config = LoraConfig {
        r: r as usize,
        lora_alpha,
        lora_dropout: field("lora_dropout").as_f64().unwrap_or(0.0),
        target_modules,
    };
    let weights = dir.join("adapter_model.safetensors");
    let mut tensors = HostTensors::new();
    crate::safetensors::read_file_into(&weights, &mut tensors)
        .map_err(|e| bad(&weights, e.to_string()))?;
    Ok((config, tensors))
}
