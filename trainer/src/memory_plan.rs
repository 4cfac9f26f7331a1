//! The memory plan `trainer run` prints before it loads the model ([`llama::memory`]): the
//! estimated peak of weights, trainable parameters, optimiser state, activations and
//! evaluation, checked against the memory the machine has free. A run that would not fit
//! stops before loading anything, naming the settings that would.

use std::path::Path;

use anyhow::Context;
use llama::config::LlamaConfig;
use llama::io::stored::BasePrecision;
use llama::memory::{MemoryPlan, RunShape, Trained, available_bytes, gib, weight_bytes};

use crate::config::{Config, Finetuning};

/// The model configuration of the checkpoint at `path` (GGUF file or HF folder), from its
/// header or `config.json` alone.
fn model_config(path: &Path) -> anyhow::Result<LlamaConfig> {
    if path.is_dir() {
        let file = path.join("config.json");
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))
    } else {
        let file = llama::io::gguf::GgufFile::open(path)?;
        Ok(llama::io::gguf::llama_config(&file)?)
    }
}

/// The precision the base is loaded in under `config` (full fine-tuning: f32).
pub fn loaded_precision(config: &Config) -> BasePrecision {
    match config.training.adapter {
        Finetuning::Lora => config.model.base_precision,
        Finetuning::Full => BasePrecision::F32,
    }
}

/// The estimate for `config` on the checkpoint at `path`.
///
/// # Errors
/// A checkpoint whose header or configuration cannot be read.
pub fn estimate(config: &Config, path: &Path) -> anyhow::Result<MemoryPlan> {
    let model = model_config(path)?;
    let precision = loaded_precision(config);
    let t = &config.training;
    let (d, ff) = (model.hidden_size, model.intermediate_size);
    let (q, kv) = (
        model.num_attention_heads * model.head_dim(),
        model.kv_heads() * model.head_dim(),
    );
    let trained = match t.adapter {
        Finetuning::Full => Trained::Full,
        Finetuning::Lora => Trained::Lora {
            r: t.lora_rank,
            targets: t
                .lora_targets
                .iter()
                .map(|target| match target.as_str() {
                    "q" => [d, q],
                    "k" | "v" => [d, kv],
                    "o" => [q, d],
                    "gate" | "up" => [d, ff],
                    _ => [ff, d],
                })
                .collect(),
        },
    };
    Ok(MemoryPlan::estimate(&RunShape {
        weight_bytes: weight_bytes(path, precision)?,
        dense_projections: precision == BasePrecision::F32,
        trained,
        batch_size: t.batch_size,
        max_length: t.max_length,
        checkpoint_layers: t.checkpoint_layers,
        eval_batch_size: config.eval.batch_size,
        eval_length: t.max_length + config.eval.max_new_tokens,
        config: model,
    }))
}

/// Settings that change the estimate, each as a `--set` override and the changed config:
/// activation checkpointing, a bf16 base (for an f32 one under LoRA), and halved batch sizes.
fn alternatives(config: &Config) -> Vec<(String, Config)> {
    let mut out = Vec::new();
    let mut push = |name: String, change: &dyn Fn(&mut Config)| {
        let mut c = config.clone();
        change(&mut c);
        out.push((name, c));
    };
    let t = &config.training;
    if !t.checkpoint_layers {
        push("training.checkpoint_layers=true".into(), &|c| {
            c.training.checkpoint_layers = true;
        });
    }
    if t.adapter == Finetuning::Lora && config.model.base_precision != BasePrecision::Bf16 {
        push("model.base_precision=bf16".into(), &|c| {
            c.model.base_precision = BasePrecision::Bf16;
        });
    }
    let mut batch = t.batch_size / 2;
    while batch >= 1 {
        let b = batch;
        push(format!("training.batch_size={b}"), &|c| {
            c.training.batch_size = b;
        });
        batch /= 2;
    }
    out
}

/// Prints the plan of `config` on the checkpoint at `path` to stderr and, when its peak
/// exceeds the machine's free memory, fails with the settings whose peak would fit (one at a
/// time, then all of activation checkpointing, a bf16 base and the batch size together).
///
/// # Errors
/// An unreadable checkpoint header, or a plan that does not fit.
pub fn check(config: &Config, path: &Path) -> anyhow::Result<MemoryPlan> {
    check_against(config, path, available_bytes())
}

/// [`check`] against `available` bytes (`None`: unknown, nothing is refused).
///
/// # Errors
/// As [`check`].
pub fn check_against(
    config: &Config,
    path: &Path,
    available: Option<u64>,
) -> anyhow::Result<MemoryPlan> {
    let plan = estimate(config, path)?;
    let Some(available) = available else {
        eprintln!("memory plan: {} (free memory unknown)", plan.describe());
        return Ok(plan);
    };
    eprintln!(
        "memory plan: {} of {} available",
        plan.describe(),
        gib(available)
    );
    if plan.peak() <= available {
        return Ok(plan);
    }
    let mut fitting = Vec::new();
    for (name, changed) in alternatives(config) {
        let peak = estimate(&changed, path)?.peak();
        if peak <= available {
            fitting.push(format!("--set {name} (peak {})", gib(peak)));
        }
    }
    if fitting.is_empty() {
        // Everything at once: the smallest run of this model and length.
        let mut smallest = config.clone();
        smallest.training.checkpoint_layers = true;
        smallest.training.batch_size = 1;
        if smallest.training.adapter == Finetuning::Lora {
            smallest.model.base_precision = match config.model.base_precision {
                BasePrecision::F32 => BasePrecision::Bf16,
                kept => kept,
            };
        }
        let peak = estimate(&smallest, path)?.peak();
        if peak <= available {
            fitting.push(format!(
                "--set training.checkpoint_layers=true --set training.batch_size=1 --set \
                 model.base_precision={} (peak {})",
                smallest.model.base_precision,
                gib(peak)
            ));
        }
    }
    let advice = if fitting.is_empty() {
        "no batch size, precision or checkpointing setting fits: shorten training.max_length, \
         take a smaller or more quantised checkpoint (e.g. a Q4_K GGUF), or free memory"
            .to_owned()
    } else {
        format!("settings that fit: {}", fitting.join("; "))
    };
    anyhow::bail!(
        "the estimated peak memory {} exceeds the {} this machine has available ({}); {advice}",
        gib(plan.peak()),
        gib(available),
        path.display()
    )
}
