//! LoRA adapters on a whole [`Llama`] in PEFT's format (`peft.tuners.lora`): attaching a fresh
//! adapter ([`apply_lora`]) or a saved one ([`load_peft_adapter`], [`read_peft_adapter`]),
//! folding adapters into the weights ([`merge_lora`]) and exporting them
//! ([`peft_adapter_tensors`], [`peft_adapter_config`]). The layer itself is
//! [`crate::lora::LoraLinear`].
//!
//! Initialisation follows PEFT's default: `A` from `kaiming_uniform_(a = √5)`, i.e.
//! `U(-1/√in, 1/√in)`, drawn from a seeded ChaCha8 stream on the host (the same on every
//! backend), and `B = 0`, so an attached adapter leaves the model's output unchanged.
//!
//! Adapters load and export under PEFT's names and layouts (`lora_A.weight` `[r, in]`,
//! `lora_B.weight` `[out, r]`, prefix `base_model.model.`) so they move to and from `peft`.

use burn::module::{Module, Param};
use burn::nn::DropoutConfig;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::io::host::{HostTensor, HostTensors};
use crate::lora::{LoraAdapter, LoraConfig, LoraError, LoraTarget};
use crate::model::Llama;

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
    config.validate()?;
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
    config.validate()?;
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
    let device = model.embed_tokens.weight.val().device();
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for target in targets_in_order(config) {
            let projection = layer.projection_mut(target);
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
                out.insert(
                    peft_name(i, target, name),
                    HostTensor::from_param(param).transposed(),
                );
            }
        }
    }
    out
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
    crate::io::safetensors::read_file_into(&weights, &mut tensors)
        .map_err(|e| bad(&weights, e.to_string()))?;
    Ok((config, tensors))
}
