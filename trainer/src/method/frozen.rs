//! Per-task LoRA adapters frozen into the base model: what a method that trains a fresh adapter
//! per task keeps of the finished ones (O-LoRA, C-LoRA).
//!
//! A finished task's adapter acts as `W + s · A B` (burn's `[in, r]` · `[r, out]` layout), so it
//! is folded into the frozen base weight (the same function) and a fresh adapter (PEFT's
//! initialisation) is attached for the next task. The finished factors are kept per adapted
//! projection, stacked in task order (`A` `[in, r · tasks]`, `B` `[r · tasks, out]`), for the
//! methods' penalties and for `--resume`, which folds them again task by task so that the
//! restored base rounds exactly as the uninterrupted run's.

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
use super::{STATE_TENSORS, read_tensors};

/// Salt of the seed that initialises the adapter trained after a freeze
/// ([`inscl::seed::salted`]).
const NEXT_ADAPTER_SALT: u64 = 0x0_10_4A;

/// The finished adapters' factors of one projection, stacked in task order: `A` `[in, r_sum]`,
/// `B` `[r_sum, out]`, so that `s · A B` is the sum of their updates.
pub struct Frozen {
    /// Down-projections, `[in, r · tasks]`.
    pub a: Tensor<2>,
    /// Up-projections, `[r · tasks, out]`.
    pub b: Tensor<2>,
}

/// The adapter being trained on one projection: its key (`layers.{i}.{module}`), the ids and
/// values (plain device) of `A` `[in, r]` and `B` `[r, out]`, and its scale `s`.
pub struct Current {
    /// `layers.{i}.{module}`, e.g. `layers.0.self_attn.q_proj`.
    pub key: String,
    /// `A`'s parameter id and value, `[in, r]`.
    pub a: (ParamId, Tensor<2>),
    /// `B`'s parameter id and value, `[r, out]`.
    pub b: (ParamId, Tensor<2>),
    /// `lora_alpha / r`.
    pub scale: f64,
}

/// The adapter of every adapted projection of `model`, in layer and [`LoraTarget::ALL`] order.
pub fn current_adapters(model: &Llama) -> Vec<Current> {
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

/// Adds `extra` to the gradient of parameter `id` in `grads` (registers it when absent).
pub fn add_gradient(grads: &mut GradientsParams, id: ParamId, extra: Tensor<2>) {
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

/// `model` with `delta` added to the frozen base weight of the projection `key`.
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

/// The finished tasks' adapters, folded into the model and kept per projection.
pub struct FrozenAdapters {
    lora: LoraConfig,
    by_projection: BTreeMap<String, Frozen>,
}

impl FrozenAdapters {
    /// None yet; `lora` is the configuration of every task's adapter.
    pub fn new(lora: &LoraConfig) -> Self {
        Self {
            lora: lora.clone(),
            by_projection: BTreeMap::new(),
        }
    }

    /// The finished adapters of the projection `key` (`layers.{i}.{module}`).
    pub fn get(&self, key: &str) -> Option<&Frozen> {
        self.by_projection.get(key)
    }

    /// The finished adapters of every projection, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Frozen)> {
        self.by_projection.iter()
    }

    /// Stacked rank of each projection (`r` × finished tasks); `None` before the first.
    pub fn rank(&self) -> Option<usize> {
        self.by_projection.values().next().map(|f| f.a.dims()[1])
    }

    /// Folds `model`'s current adapters into its base weights, keeps their factors and attaches
    /// the next task's adapter (PEFT's initialisation, seeded by the finished stage's `seed`).
    ///
    /// # Errors
    /// An invalid adapter configuration.
    pub fn freeze(&mut self, mut model: Llama, seed: u64) -> anyhow::Result<Llama> {
        for Current {
            key,
            a: (_, a),
            b: (_, b),
            scale,
        } in current_adapters(&model)
        {
            // Contiguous copies, as `load` reads them: the fold rounds alike on resume.
            let (a, b) = (contiguous(a), contiguous(b));
            model = fold(model, &key, a.clone().matmul(b.clone()) * scale);
            let stacked = match self.by_projection.remove(&key) {
                Some(old) => Frozen {
                    a: Tensor::cat(vec![old.a, a], 1),
                    b: Tensor::cat(vec![old.b, b], 0),
                },
                None => Frozen { a, b },
            };
            self.by_projection.insert(key, stacked);
        }
        Ok(apply_lora(
            model,
            &self.lora,
            inscl::seed::salted(seed, NEXT_ADAPTER_SALT),
        )?)
    }

    /// Writes the stacked factors (`{key}.a`, `{key}.b`) to `dir`/[`STATE_TENSORS`].
    ///
    /// # Errors
    /// I/O failures.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let host: HostTensors = self
            .by_projection
            .iter()
            .flat_map(|(key, f)| [(format!("{key}.a"), &f.a), (format!("{key}.b"), &f.b)])
            .map(|(name, t)| (name, host_tensor(t)))
            .collect();
        llama::io::safetensors::save_host_tensors(&dir.join(STATE_TENSORS), &host)?;
        Ok(())
    }

    /// Reads the factors written by [`FrozenAdapters::save`] and folds them into `model` (as
    /// its checkpoint restores it: the base as loaded, the current adapter) task by task, in
    /// order, as the uninterrupted run folded them.
    ///
    /// # Errors
    /// A missing state file, or a tensor missing or not a matrix, naming it.
    pub fn load(&mut self, dir: &Path, mut model: Llama) -> anyhow::Result<Llama> {
        let host = read_tensors(dir)?;
        let file = dir.join(STATE_TENSORS);
        self.by_projection.clear();
        if host.is_empty() {
            return Ok(model);
        }
        for Current {
            key,
            a: (_, a),
            scale,
            ..
        } in current_adapters(&model)
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
            let frozen = Frozen {
                a: read("a")?,
                b: read("b")?,
            };
            let r = self.lora.r;
            for k in 0..frozen.a.dims()[1] / r {
                let a = contiguous(frozen.a.clone().narrow(1, k * r, r));
                let b = contiguous(frozen.b.clone().narrow(0, k * r, r));
                model = fold(model, &key, a.matmul(b) * scale);
            }
            self.by_projection.insert(key, frozen);
        }
        Ok(model)
    }
}
