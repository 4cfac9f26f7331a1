//! The memory a fine-tuning run will need at its peak, estimated from the checkpoint's tensor
//! directory and the run's shape before anything is loaded ([`MemoryPlan::estimate`]), and the
//! memory the machine has free ([`available_bytes`]).
//!
//! The parts (bytes):
//! - **weights**: the base as it is kept ([`weight_bytes`]: stored matrices at their size,
//!   everything else 4 bytes a value);
//! - **trainable**: the trained parameters and their gradients, f32 (the LoRA factors, or under
//!   full fine-tuning a trained copy of every weight beside the base);
//! - **optimiser**: AdamW's two moments per trained parameter, f32;
//! - **activations**: what training keeps for the backward pass:
//!   [`ACTIVATION_VALUES_PER_TOKEN`] values per token and layer (all layers, or one layer plus
//!   each layer's `[b, s, d]` input under activation checkpointing), plus the output head's
//!   loss block;
//! - **evaluation**: the adapters merged into copies of the f32 projections they adapt, the
//!   KV cache of a generation batch and its logits;
//! - **runtime**: the process without a model ([`RUNTIME_BYTES`]).
//!
//! Training and evaluation take turns, so the peak is weights + trainable + optimiser +
//! runtime + the larger of activations and evaluation.

use std::path::Path;

use serde::Serialize;

use crate::config::LlamaConfig;
use crate::io::gguf::{GgmlType, GgufFile, hf_name};
use crate::io::host::Keep;
use crate::io::stored::BasePrecision;

/// The process without a model: code, allocator arenas, tokenizer, data and rayon's stacks
/// (measured: 0.2–0.3 GiB for `trainer run` on the tiny test model).
pub const RUNTIME_BYTES: u64 = 320 << 20;

/// f32 values a decoder layer keeps per token for its backward pass, as `(a, b, c)` for
/// `a · hidden + b · intermediate + c · kv_width`: the norms' inputs and outputs, the rotated
/// queries and keys, attention's inputs and output, the MLP's gate and up projections and
/// their product, and the adapters' inputs (measured on this crate's kernels; see
/// `tools/bench/RESULTS.md`, "Scale").
pub const ACTIVATION_VALUES_PER_TOKEN: (f64, f64, f64) = (16.0, 4.0, 4.0);

/// The largest block of output-head logits the loss holds at once
/// ([`crate::kernels::head_loss`]).
const HEAD_BLOCK_BYTES: u64 = 128 << 20;

/// What is trained.
#[derive(Debug, Clone, PartialEq)]
pub enum Trained {
    /// LoRA adapters of rank `r` on projections of `[in, out]` shapes `targets` (one layer's).
    Lora {
        /// Rank.
        r: usize,
        /// `[in, out]` of each adapted projection of one layer.
        targets: Vec<[usize; 2]>,
    },
    /// Every weight.
    Full,
}

/// The shape of a run: what its memory depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct RunShape {
    /// The model.
    pub config: LlamaConfig,
    /// The base as kept ([`weight_bytes`]).
    pub weight_bytes: u64,
    /// Whether the projections are f32 (evaluation then merges adapters into copies).
    pub dense_projections: bool,
    /// What trains.
    pub trained: Trained,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Tokens per example at most.
    pub max_length: usize,
    /// Activation checkpointing per layer.
    pub checkpoint_layers: bool,
    /// Prompts per generation batch.
    pub eval_batch_size: usize,
    /// Prompt plus generated tokens per sequence at most.
    pub eval_length: usize,
}

/// Bytes of each part of a run at its peak (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryPlan {
    /// The base weights.
    pub weights: u64,
    /// Trained parameters and their gradients.
    pub trainable: u64,
    /// AdamW moments.
    pub optimizer: u64,
    /// Training activations.
    pub activations: u64,
    /// Evaluation: merged copies, KV cache, logits.
    pub evaluation: u64,
    /// The process without a model.
    pub runtime: u64,
}

impl MemoryPlan {
    /// The estimate for `shape`.
    pub fn estimate(shape: &RunShape) -> Self {
        let c = &shape.config;
        let (d, ff, layers, vocab) = (
            c.hidden_size as u64,
            c.intermediate_size as u64,
            c.num_hidden_layers as u64,
            c.vocab_size as u64,
        );
        let kv = (c.kv_heads() * c.head_dim()) as u64;
        let tokens = (shape.batch_size * shape.max_length) as u64;
        let trained_values = match &shape.trained {
            Trained::Lora { r, targets } => {
                layers
                    * targets
                        .iter()
                        .map(|[i, o]| (r * (i + o)) as u64)
                        .sum::<u64>()
            }
            Trained::Full => shape.weight_bytes / 4,
        };
        let (a, b, k) = ACTIVATION_VALUES_PER_TOKEN;
        let per_layer = (tokens as f64 * (a * d as f64 + b * ff as f64 + k * kv as f64)) as u64 * 4;
        let held_layers = if shape.checkpoint_layers {
            per_layer + layers * tokens * d * 4
        } else {
            layers * per_layer
        };
        let head = (tokens * vocab * 4).min(HEAD_BLOCK_BYTES) + tokens * d * 4;
        let merged = match (&shape.trained, shape.dense_projections) {
            (Trained::Lora { targets, .. }, true) => {
                layers * targets.iter().map(|[i, o]| (i * o) as u64).sum::<u64>() * 4
            }
            _ => 0,
        };
        let eval_tokens = (shape.eval_batch_size * shape.eval_length) as u64;
        let kv_cache = 2 * layers * kv * eval_tokens * 4;
        let logits = shape.eval_batch_size as u64 * vocab * 4;
        // The prompt's pass through one layer at a time (no graph): a few `[b, s, ff]` values.
        let prefill = eval_tokens * (4 * d + 3 * ff) * 4;
        Self {
            weights: shape.weight_bytes,
            trainable: 2 * 4 * trained_values,
            optimizer: 2 * 4 * trained_values,
            activations: held_layers + head,
            evaluation: merged + kv_cache + logits + prefill,
            runtime: RUNTIME_BYTES,
        }
    }

    /// The estimated peak: everything but the smaller of activations and evaluation, which
    /// take turns.
    pub fn peak(&self) -> u64 {
        self.weights
            + self.trainable
            + self.optimizer
            + self.runtime
            + self.activations.max(self.evaluation)
    }

    /// One line: each part and the peak, in GiB.
    pub fn describe(&self) -> String {
        format!(
            "weights {}, trainable {}, optimiser {}, activations {}, evaluation {}, runtime {}: peak {}",
            gib(self.weights),
            gib(self.trainable),
            gib(self.optimizer),
            gib(self.activations),
            gib(self.evaluation),
            gib(self.runtime),
            gib(self.peak())
        )
    }
}

/// `bytes` in GiB with two decimals and the unit.
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Errors reading a checkpoint's tensor directory for [`weight_bytes`].
#[derive(Debug, thiserror::Error)]
pub enum FootprintError {
    /// The GGUF header could not be read.
    #[error(transparent)]
    Gguf(#[from] crate::io::gguf::GgufError),
    /// A safetensors header could not be read.
    #[error(transparent)]
    Safetensors(#[from] crate::io::safetensors::SafetensorsError),
}

/// Bytes the weights of the checkpoint at `path` (GGUF file or HF folder) take once loaded
/// for `precision`, from its tensor directory alone (no tensor is read).
///
/// # Errors
/// A header that cannot be read.
pub fn weight_bytes(path: &Path, precision: BasePrecision) -> Result<u64, FootprintError> {
    let size = |name: &str, dtype: GgmlType, values: u64, stored: u64| match Keep::choose(
        precision, name, dtype,
    ) {
        Keep::Stored => stored,
        Keep::Bf16 => 2 * values,
        Keep::Dense => 4 * values,
    };
    let mut total = 0;
    if path.is_dir() {
        for file in crate::io::safetensors::weight_files(path)? {
            let (metadata, _) = crate::io::safetensors::read_header(&file)?;
            for (name, info) in metadata.tensors() {
                let values: u64 = info.shape.iter().map(|&d| d as u64).product();
                let dtype = match info.dtype {
                    ::safetensors::Dtype::BF16 => GgmlType::BF16,
                    ::safetensors::Dtype::F16 => GgmlType::F16,
                    _ => GgmlType::F32,
                };
                let stored = (info.data_offsets.1 - info.data_offsets.0) as u64;
                total += size(&name, dtype, values, stored);
            }
        }
    } else {
        let file = GgufFile::open(path)?;
        for info in file.tensors() {
            let name = hf_name(&info.name).unwrap_or_default();
            total += size(&name, info.dtype, info.n_elements(), info.n_bytes());
        }
    }
    Ok(total)
}

/// The memory this machine can give a new process without swapping (`MemAvailable` of
/// `/proc/meminfo`); `None` where that is not known.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(checkpoint_layers: bool) -> RunShape {
        RunShape {
            config: serde_json::from_value(serde_json::json!({
                "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
                "num_hidden_layers": 32, "num_attention_heads": 32
            }))
            .unwrap(),
            weight_bytes: 3_800_000_000,
            dense_projections: false,
            trained: Trained::Lora {
                r: 8,
                targets: vec![[4096, 4096]; 4],
            },
            batch_size: 1,
            max_length: 256,
            checkpoint_layers,
            eval_batch_size: 1,
            eval_length: 256,
        }
    }

    /// LLaMA-7B's LoRA r 8 on q, k, v, o: 8.39 M parameters (32 layers × 4 × 8 · (4096 +
    /// 4096); PEFT's `print_trainable_parameters` gives 8,388,608), each
    /// with a gradient and two moments; checkpointing keeps one layer's activations and 32
    /// layer inputs.
    #[test]
    fn llama_7b_lora_parts() {
        let plan = MemoryPlan::estimate(&shape(false));
        let adapter_values = 32 * 4 * 8 * (4096 + 4096);
        assert_eq!(adapter_values, 8_388_608);
        assert_eq!(plan.trainable, 8 * adapter_values as u64);
        assert_eq!(plan.optimizer, 8 * adapter_values as u64);
        let checkpointed = MemoryPlan::estimate(&shape(true));
        let head = 256 * 32000 * 4 + 256 * 4096 * 4;
        let all_layers = plan.activations - head;
        assert_eq!(all_layers % 32, 0);
        let layer_inputs = 32 * 256 * 4096 * 4;
        assert_eq!(
            checkpointed.activations,
            all_layers / 32 + layer_inputs + head
        );
        assert!(checkpointed.peak() < plan.peak());
    }
}
