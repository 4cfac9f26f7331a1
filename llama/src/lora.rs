//! LoRA fine-tuning (Hu et al. 2021) with burn's built-in reparameterisation: every targeted
//! projection weight `W` (burn layout `[in, out]`) becomes `W + (alpha / r) · A B` with
//! trainable `A` `[in, r]` (normal init, std `1/r`) and `B` `[r, out]` (zeros), and every base
//! parameter — embeddings and norms included — is frozen.
//!
//! Adapters export under PEFT's names and layouts (`lora_A.weight` `[r, in]`,
//! `lora_B.weight` `[out, r]`, prefix `base_model.model.`) so they load in `peft`.

use burn::module::{Lora, Module, ModuleVisitor, Param, ParamGroup};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

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

/// LoRA hyper-parameters (PEFT `LoraConfig` names: `r`, `lora_alpha`, `target_modules`).
/// burn's built-in adapters have no dropout, so `lora_dropout` is always 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank r > 0.
    pub r: usize,
    /// Scale numerator: the update is multiplied by `lora_alpha / r`.
    pub lora_alpha: f64,
    /// Adapted projections (non-empty).
    pub target_modules: Vec<LoraTarget>,
}

/// Errors of [`apply_lora`].
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
}

/// The [`ParamGroup`] of the targeted projection weights:
/// `^layers\.\d+\.(self_attn\.q_proj|...)\.weight$` over burn parameter paths.
pub fn target_group(targets: &[LoraTarget]) -> ParamGroup {
    let alternatives: Vec<String> = targets
        .iter()
        .map(|t| t.module_path().replace('.', r"\."))
        .collect();
    let pattern = format!(r"^layers\.\d+\.({})\.weight$", alternatives.join("|"));
    ParamGroup::from_regex(pattern).expect("escaped literal alternatives form a valid regex")
}

/// Attaches LoRA adapters to `config.target_modules` of every layer and freezes every base
/// parameter. Build the model on an autodiff device (`device.autodiff()`) to train it.
///
/// # Errors
/// [`LoraError::InvalidConfig`] for rank 0 or no targets.
pub fn apply_lora(model: Llama, config: &LoraConfig) -> Result<Llama, LoraError> {
    if config.r == 0 || config.target_modules.is_empty() {
        return Err(LoraError::InvalidConfig {
            r: config.r,
            targets: config.target_modules.len(),
        });
    }
    let lora = Lora::new(config.r, config.lora_alpha)
        .set_param_group(target_group(&config.target_modules));
    Ok(model.apply_lora(lora))
}

/// Copies every float parameter of `module` to the host, keyed by its burn path joined with
/// dots (`layers.0.self_attn.q_proj.weight`; LoRA factors under `….weight.lora.a` / `.b`).
/// Values are the stored ones: for an adapted weight, its frozen base.
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
            let value = param.val();
            let shape = value.dims().to_vec();
            let data = value
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 parameter data");
            self.out
                .insert(self.path.join("."), HostTensor { shape, data });
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
    parameters_on_host(model)
        .into_iter()
        .filter_map(|(path, t)| {
            let (base, factor) = path.rsplit_once(".weight.lora.")?;
            let name = match factor {
                "a" => "lora_A",
                "b" => "lora_B",
                _ => return None,
            };
            Some((
                format!("base_model.model.model.{base}.{name}.weight"),
                t.transposed(),
            ))
        })
        .collect()
}

/// PEFT's `adapter_config.json` for `config` (task `CAUSAL_LM`, no bias, no dropout).
pub fn peft_adapter_config(config: &LoraConfig) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": config.r,
        "lora_alpha": config.lora_alpha,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": config.target_modules.iter().map(|t| t.peft_name()).collect::<Vec<_>>(),
    })
}
