//! Orthogonal subspace learning for language models (O-LoRA, Wang et al. 2023), as
//! cmnfriend/O-LoRA writes it (`src/uie_trainer_lora.py`, `training_step`; TRACE `O_LoRA.py`).
//! Each task trains a fresh LoRA adapter while the earlier tasks' adapters stay frozen; the loss
//! gains
//!
//! ```text
//! λ1 · Σ_modules Σ | A_old · A_newᵀ |  +  λ2 · Σ_new factors ‖θ‖₂
//! ```
//!
//! with `A_old` `[r_sum, in]` the earlier adapters' down-projections stacked (PEFT layout),
//! `A_new` `[r, in]` the current one's, `|·|` elementwise and `‖·‖₂` the unsquared Frobenius
//! norm of each new factor (`lamda_1 = 0.5`, `lamda_2 = 0`, added once per optimiser step as
//! in `training_step`). After a task, its adapter joins the frozen ones and a fresh adapter
//! (PEFT's initialisation) is attached.
//!
//! The frozen adapters act as `W + s · Σ_k B_k A_k`, so they are folded into the frozen base
//! weight (the same function; O-LoRA computes them unmerged, sharing the new adapter's dropout
//! mask, so the two differ only with `lora_dropout > 0`), and their `A`s are kept apart for the
//! penalty. The penalty's gradient is added analytically: with burn's `[in, r]` layout,
//! `∂/∂A_new Σ|A_oldᵀ A_new| = A_old · sign(A_oldᵀ A_new)`, `∂‖θ‖₂/∂θ = θ / ‖θ‖₂` (0 at θ = 0,
//! as PyTorch's subgradient, so a fresh adapter's `B = 0` stays finite).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use burn::module::{Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use llama::io::host::HostTensors;
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::apply_lora;

use super::params::host_tensor;
use super::{ContinualMethod, MethodConfig, STATE_TENSORS, StageContext, read_tensors};

/// The frozen adapters' factors of one projection, stacked: `A` `[in, r_sum]`, `B`
/// `[r_sum, out]`.
struct Frozen {
    a: Tensor<2>,
    b: Tensor<2>,
}

/// O-LoRA's state: the frozen adapters per adapted projection (`layers.{i}.{module}`).
pub struct OLora {
    orthogonal_weight: f64,
    l2_weight: f64,
    lora: LoraConfig,
    frozen: BTreeMap<String, Frozen>,
}

impl OLora {
    /// No frozen adapter yet.
    pub fn new(config: &MethodConfig, lora: &LoraConfig) -> Self {
        Self {
            orthogonal_weight: config.orthogonal_weight,
            l2_weight: config.l2_weight,
            lora: lora.clone(),
            frozen: BTreeMap::new(),
        }
    }

    /// Rank of the frozen adapters of each projection (`r` × finished tasks).
    pub fn frozen_rank(&self) -> Option<usize> {
        self.frozen.values().next().map(|f| f.a.dims()[1])
    }
}

/// The current adapter of one projection: its key (`layers.{i}.{module}`), the ids and
/// values (plain device) of `A` `[in, r]` and `B` `[r, out]`, and its scale `s`.
struct Current {
    key: String,
    a: (ParamId, Tensor<2>),
    b: (ParamId, Tensor<2>),
    scale: f64,
}

/// The current adapter of every adapted projection of `model`.
fn adapters(model: &Llama) -> Vec<Current> {
    let mut out = Vec::new();
    for (i, layer) in model.layers.iter().enumerate() {
        for target in LoraTarget::ALL {
            if let Some(adapter) = &layer.projection(target).lora {
                let value = |p: &Param<Tensor<2>>| (p.id, p.val().inner());
                out.push(Current {
                    key: format!("layers.{i}.{}", target.module_path()),
                    a: value(&adapter.a),
                    b: value(&adapter.b),
                    scale: adapter.scale,
                });
            }
        }
    }
    out
}

fn add_gradient(grads: &mut GradientsParams, id: ParamId, extra: Tensor<2>) {
    let sum = match grads.remove::<2>(id) {
        Some(g) => g + extra,
        None => extra,
    };
    grads.register::<2>(id, sum);
}

/// `t` in a fresh contiguous buffer.
fn contiguous(t: Tensor<2>) -> Tensor<2> {
    let device = t.device();
    Tensor::from_data(t.into_data(), &device)
}

/// `model` with `s · A B` added to the frozen base weight of the projection `key`.
fn fold(mut model: Llama, key: &str, delta: Tensor<2>) -> Llama {
    for (i, layer) in model.layers.iter_mut().enumerate() {
        for target in LoraTarget::ALL {
            if key == format!("layers.{i}.{}", target.module_path()) {
                layer.projection_mut(target).add_to_base(delta.clone());
            }
        }
    }
    model
}

impl ContinualMethod for OLora {
    fn shape_gradients(&mut self, model: &Llama, grads: &mut GradientsParams) {
        for Current {
            key,
            a: (a_id, a),
            b: (b_id, b),
            ..
        } in adapters(model)
        {
            if let Some(frozen) = self.frozen.get(&key) {
                let overlap = frozen.a.clone().transpose().matmul(a.clone()).sign();
                add_gradient(
                    grads,
                    a_id,
                    frozen.a.clone().matmul(overlap) * self.orthogonal_weight,
                );
            }
            if self.l2_weight > 0.0 {
                for (id, theta) in [(a_id, a), (b_id, b)] {
                    // A fresh adapter's B is 0: PyTorch's norm has gradient 0 there.
                    let norm = theta
                        .clone()
                        .square()
                        .sum()
                        .sqrt()
                        .clamp_min(f32::MIN_POSITIVE)
                        .unsqueeze::<2>();
                    add_gradient(grads, id, theta / norm * self.l2_weight);
                }
            }
        }
    }

    fn end_stage(&mut self, mut model: Llama, stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        for Current {
            key,
            a: (_, a),
            b: (_, b),
            scale,
        } in adapters(&model)
        {
            // Contiguous copies, as `load` reads them: the fold rounds alike on resume.
            let (a, b) = (contiguous(a), contiguous(b));
            model = fold(model, &key, a.clone().matmul(b.clone()) * scale);
            let stacked = match self.frozen.remove(&key) {
                Some(old) => Frozen {
                    a: Tensor::cat(vec![old.a, a], 1),
                    b: Tensor::cat(vec![old.b, b], 0),
                },
                None => Frozen { a, b },
            };
            self.frozen.insert(key, stacked);
        }
        // The next task's adapter: PEFT's initialisation, seeded by this stage.
        Ok(apply_lora(model, &self.lora, stage.seed ^ 0x0_10_4A)?)
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let host: HostTensors = self
            .frozen
            .iter()
            .flat_map(|(key, f)| [(format!("{key}.a"), &f.a), (format!("{key}.b"), &f.b)])
            .map(|(name, t)| (name, host_tensor(t)))
            .collect();
        llama::io::safetensors::save_host_tensors(&dir.join(STATE_TENSORS), &host)?;
        Ok(())
    }

    fn load(&mut self, dir: &Path, mut model: Llama) -> anyhow::Result<Llama> {
        let host = read_tensors(dir)?;
        let file = dir.join(STATE_TENSORS);
        self.frozen.clear();
        for Current {
            key,
            a: (_, a),
            scale,
            ..
        } in adapters(&model)
        {
            let device = a.device();
            let read = |factor: &str| -> anyhow::Result<Tensor<2>> {
                let name = format!("{key}.{factor}");
                let t = host
                    .get(&name)
                    .with_context(|| format!("{}: no tensor `{name}`", file.display()))?;
                let [rows, cols] = t.shape[..] else {
                    anyhow::bail!("{}: `{name}` is not a matrix", file.display());
                };
                Ok(Tensor::from_data(
                    TensorData::new(t.data.clone(), [rows, cols]),
                    &device,
                ))
            };
            if host.is_empty() {
                break;
            }
            let frozen = Frozen {
                a: read("a")?,
                b: read("b")?,
            };
            // Task by task, in order, as the uninterrupted run folded them.
            let r = self.lora.r;
            for k in 0..frozen.a.dims()[1] / r {
                let a = contiguous(frozen.a.clone().narrow(1, k * r, r));
                let b = contiguous(frozen.b.clone().narrow(0, k * r, r));
                model = fold(model, &key, a.matmul(b) * scale);
            }
            self.frozen.insert(key, frozen);
        }
        Ok(model)
    }
}
