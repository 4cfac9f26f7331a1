//! [`LlamaLearner`]: the burn LLaMA of crate `llama` behind the runner's [`ContinualLearner`] trait.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::config::LlamaConfig;
use llama::device::{BackendKind, DeviceChoice, SelectedDevice, select_device};
use llama::generate::{GenerationConfig, GenerationStats, generate_queued};
use llama::io::stored::BasePrecision;
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::{apply_lora, load_peft_adapter, merge_lora};
use llama::shapes::FixedShapes;
use llama::train::{
    Encoded, LrSchedule, OptimConfig, ScheduleKind, ScheduledAdamW, bucket_batches, collate_shaped,
    mean_loss,
};

use super::checkpoint::{
    describe_precision, open_checkpoint, read_tensors, save_adapter, save_full, stop_tokens,
};
use super::prompt::PromptFormat;
use crate::config::{Config, Finetuning, Schedule, TrainingConfig};
use crate::learner::{ContinualLearner, Example, LossPoint, StageTraining, StepReport, Weights};
use crate::method::routing::nearest_key;
use crate::method::{ContinualMethod, MethodConfig, StageContext, train_step};

/// Batches of a length window are sorted together ([`bucket_batches`]).
const BUCKET_WINDOW_BATCHES: usize = 8;

/// The LoRA settings of `training`.
fn lora_config(training: &TrainingConfig) -> anyhow::Result<LoraConfig> {
    let target_modules = training
        .lora_targets
        .iter()
        .map(|t| {
            Ok(match t.as_str() {
                "q" => LoraTarget::QProj,
                "k" => LoraTarget::KProj,
                "v" => LoraTarget::VProj,
                "o" => LoraTarget::OProj,
                "gate" => LoraTarget::GateProj,
                "up" => LoraTarget::UpProj,
                "down" => LoraTarget::DownProj,
                other => bail!("unknown LoRA target {other:?}"),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(LoraConfig {
        r: training.lora_rank,
        lora_alpha: training.lora_alpha,
        lora_dropout: training.lora_dropout,
        target_modules,
    })
}

/// The AdamW optimiser of `t` over `total_steps` optimiser steps: warmup, then `t.schedule`.
fn optimiser(t: &TrainingConfig, total_steps: usize) -> ScheduledAdamW {
    let kind = match t.schedule {
        Schedule::Cosine => ScheduleKind::Cosine,
        Schedule::Linear => ScheduleKind::Linear,
        Schedule::Constant => ScheduleKind::Constant,
    };
    ScheduledAdamW::new(OptimConfig {
        schedule: LrSchedule::new(t.lr, t.warmup_ratio, total_steps, kind),
        weight_decay: t.weight_decay,
        clip_norm: Some(t.clip_norm),
    })
}

/// The tasks of `examples`, sorted, each once (the tasks the multitask stage trains).
fn distinct_tasks(examples: &[Example]) -> Vec<String> {
    let mut all: Vec<String> = examples.iter().map(|e| e.task.clone()).collect();
    all.sort();
    all.dedup();
    all
}

/// [`ContinualLearner`] over a burn LLaMA: LoRA adapters (or all weights) trained with
/// [`llama::train::ScheduledAdamW`] under a continual-learning method ([`crate::method`]), greedy
/// generation, mean-pooled embeddings.
///
/// LoRA dropout draws from burn's backend random stream, seeded with [`StageTraining::seed`] when
/// a stage starts. The stream is process-wide: for reproducible runs, train one model at a
/// time per process.
pub struct LlamaLearner {
    config: LlamaConfig,
    /// The pretrained weights on the autodiff device, without adapters: the one copy that the
    /// trained model, the embeddings, the LLM tags and evaluation share (clones share tensors
    /// and stored matrices).
    base: Llama,
    format: PromptFormat,
    stop: Vec<u32>,
    device: Device,
    /// The backend behind `device` (GPU backends pad to fixed shapes and keep a kernel cache).
    backend: BackendKind,
    device_name: String,
    /// On `device.autodiff()`: LoRA-adapted (frozen base) or fully trainable.
    model: Llama,
    training: TrainingConfig,
    lora: LoraConfig,
    embedding_layer: Option<usize>,
    eval_batch_size: usize,
    source: PathBuf,
    /// Seed of the LoRA `A` initialisation (at open and at every [`ContinualLearner::reset`]).
    adapter_seed: u64,
    method_config: MethodConfig,
    /// The continual-learning method and the state it carries between stages.
    method: Box<dyn ContinualMethod>,
    /// Under a routing method: the tasks of the adapter each example of the last
    /// [`ContinualLearner::generate`] call went to.
    routes: Option<Vec<Vec<String>>>,
    /// Where the last [`ContinualLearner::generate`] call's time went, summed over its batches.
    generation_stats: GenerationStats,
    /// Base-model embeddings of the instructions routed so far: every stage evaluates the same
    /// test instructions.
    routing_embeddings: std::collections::BTreeMap<String, Vec<f32>>,
    /// The routing method's experts merged for inference, built on first use after the bank
    /// last changed (every task of a stage's evaluation uses the same bank).
    expert_models: Vec<Option<Llama>>,
}

impl LlamaLearner {
    /// Loads the model at `path` (the resolved `model.path` of `config`) as `config` sets it
    /// up: `model.device` and `model.base_precision`, `[training]`, `[method]`,
    /// `embedding.layer`, `eval.batch_size`, and the run seed for the LoRA `A` initialisation.
    ///
    /// # Errors
    /// Checkpoint, device or configuration errors.
    pub fn from_config(path: &Path, config: &Config) -> anyhow::Result<Self> {
        Self::open(
            path,
            config.model.device.parse()?,
            config.model.base_precision,
            &config.training,
            &config.method,
            config.embedding.layer,
            config.eval.batch_size,
            config.run.seed,
        )
    }

    /// Loads `path` (GGUF or HF folder) onto the chosen device, its LoRA base kept in
    /// `base_precision` (f32 under full fine-tuning), and prepares it for `training.adapter`
    /// and the continual-learning `method`, printing the device to stderr. `adapter_seed`
    /// seeds the LoRA `A` initialisation (the run seed: two seeds give two different adapters).
    ///
    /// # Errors
    /// Checkpoint, device or configuration errors.
    #[allow(clippy::too_many_arguments)]
    fn open(
        path: &Path,
        device: DeviceChoice,
        base_precision: BasePrecision,
        training: &TrainingConfig,
        method: &MethodConfig,
        embedding_layer: Option<usize>,
        eval_batch_size: usize,
        adapter_seed: u64,
    ) -> anyhow::Result<Self> {
        let SelectedDevice {
            device,
            backend,
            description: device_name,
        } = select_device(device)?;
        let precision = match training.adapter {
            Finetuning::Lora => base_precision,
            Finetuning::Full => BasePrecision::F32,
        };
        eprintln!(
            "model {} on {device_name}, {}",
            path.display(),
            describe_precision(precision, base_precision)
        );
        let ckpt = open_checkpoint(path, precision)?;
        let stop = stop_tokens(&ckpt.config, &ckpt.tokenizer);
        let lora = lora_config(training)?;
        let base = Llama::from_checkpoint(&ckpt.config, ckpt.tensors, &device.clone().autodiff())?
            .with_layer_checkpointing(training.checkpoint_layers)
            .with_fixed_shapes(FixedShapes::for_run(
                training.pad_to_multiple_of,
                backend.is_gpu(),
            ));
        let model = Self::fresh(&base, training.adapter, &lora, adapter_seed)?;
        let continual = method.build((training.adapter == Finetuning::Lora).then_some(&lora))?;
        Ok(Self {
            format: PromptFormat::new(ckpt.tokenizer, &stop),
            config: ckpt.config,
            base,
            stop,
            device,
            backend,
            device_name,
            model,
            training: training.clone(),
            lora,
            embedding_layer,
            eval_batch_size: eval_batch_size.max(1),
            source: path.to_path_buf(),
            adapter_seed,
            method_config: method.clone(),
            method: continual,
            routes: None,
            generation_stats: GenerationStats::default(),
            routing_embeddings: std::collections::BTreeMap::new(),
            expert_models: Vec::new(),
        })
    }

    /// The base weights (a clone of `base`, on the autodiff device), with a fresh adapter
    /// seeded by `adapter_seed` for LoRA.
    fn fresh(
        base: &Llama,
        method: Finetuning,
        lora: &LoraConfig,
        adapter_seed: u64,
    ) -> anyhow::Result<Llama> {
        let model = base.clone();
        Ok(match method {
            Finetuning::Full => model,
            Finetuning::Lora => apply_lora(model, lora, adapter_seed)?,
        })
    }

    /// The mean base-model embedding of the distinct instructions of the examples of `tasks`,
    /// and their number: an expert's key.
    fn task_key(
        &mut self,
        examples: &[Example],
        tasks: &[String],
    ) -> anyhow::Result<(Vec<f32>, usize)> {
        let instructions: Vec<String> = examples
            .iter()
            .filter(|e| tasks.contains(&e.task))
            .map(|e| e.instruction.clone())
            .collect();
        let vectors: Vec<Vec<f32>> = self
            .embed_distinct(&self.base_model()?, &instructions)?
            .into_values()
            .collect();
        let mut key = vec![0.0f32; vectors[0].len()];
        for v in &vectors {
            for (k, x) in key.iter_mut().zip(v) {
                *k += x / vectors.len() as f32;
            }
        }
        Ok((key, vectors.len()))
    }

    /// `model`'s embeddings of `texts`, each distinct text embedded once.
    fn embed_distinct(
        &self,
        model: &Llama,
        texts: &[String],
    ) -> anyhow::Result<std::collections::BTreeMap<String, Vec<f32>>> {
        let mut distinct = texts.to_vec();
        distinct.sort();
        distinct.dedup();
        let vectors = self.embed_with(model, &distinct)?;
        Ok(distinct.into_iter().zip(vectors).collect())
    }

    /// Mean-pooled hidden states of the configured layer of `model` for each text.
    fn embed_with(&self, model: &Llama, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let layer = self
            .embedding_layer
            .unwrap_or(self.config.num_hidden_layers);
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.eval_batch_size) {
            let rows: Vec<Vec<u32>> = chunk
                .iter()
                .map(|t| {
                    let mut ids = self.format.tokens(t)?;
                    ids.truncate(self.training.max_length);
                    ensure!(!ids.is_empty(), "cannot embed an empty text");
                    Ok(ids)
                })
                .collect::<anyhow::Result<_>>()?;
            let (tokens, mask) = self.ints(&rows, false);
            let pooled = model.mean_pooled_hidden(tokens, mask, layer);
            let d = pooled.dims()[1];
            let data = pooled
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("reading embeddings: {e:?}"))?;
            out.extend(data.chunks_exact(d).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The configured continual-learning method, without state.
    fn fresh_method(&self) -> anyhow::Result<Box<dyn ContinualMethod>> {
        let lora = (self.training.adapter == Finetuning::Lora).then_some(&self.lora);
        self.method_config.build(lora)
    }

    /// The LoRA settings (used when `training.adapter` is `lora`).
    pub fn lora_config(&self) -> &LoraConfig {
        &self.lora
    }

    /// The model being trained: on the autodiff device, LoRA-adapted or fully trainable.
    pub fn model_in_training(&self) -> &Llama {
        &self.model
    }

    /// The model for inference: on the plain device, adapters merged.
    fn inference_model(&self) -> Llama {
        merge_lora(self.model.valid())
    }

    /// The pretrained weights for inference, without adapters, on the plain device: the
    /// base's tensors, shared.
    fn base_model(&self) -> anyhow::Result<Llama> {
        Ok(self.base.valid())
    }

    /// Greedy generation of `model` from token prompts by continuous batching
    /// ([`generate_queued`]: at most the evaluation batch size decoding at once, a finished row
    /// replaced by the next prompt), shortest prompts first so that the rows joining together
    /// pad little; outputs in prompt order, decoded without special tokens and trimmed, and
    /// where the time went. `on_done(n)` whenever a prompt finishes, with the number finished
    /// so far.
    fn generate_greedy(
        &self,
        model: &Llama,
        prompts: &[Vec<u32>],
        max_new_tokens: usize,
        on_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> anyhow::Result<(Vec<String>, GenerationStats)> {
        if prompts.is_empty() {
            return Ok((Vec::new(), GenerationStats::default()));
        }
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| prompts[i].len());
        let sorted: Vec<Vec<u32>> = order.iter().map(|&i| prompts[i].clone()).collect();
        let config = GenerationConfig {
            eos_token_ids: self.stop.clone(),
            ..GenerationConfig::greedy(max_new_tokens, &self.config)
        };
        let mut done = 0;
        let generation =
            generate_queued(model, &sorted, &config, self.eval_batch_size, &mut |_| {
                done += 1;
                on_done(done)
            })?;
        let mut outputs = vec![String::new(); prompts.len()];
        for (&i, tokens) in order.iter().zip(&generation.tokens) {
            outputs[i] = self
                .format
                .tokenizer
                .decode(tokens, true)?
                .trim()
                .to_owned();
        }
        Ok((outputs, generation.stats))
    }

    /// Mean response-token cross-entropy (nats) of the current model on `examples`, formatted
    /// and truncated as for training, in length-sorted batches of the evaluation batch size
    /// ([`llama::train::mean_loss`]: weighted by response tokens, no dropout).
    ///
    /// # Errors
    /// Tokenizer errors.
    pub fn held_out_loss(&self, examples: &[Example]) -> anyhow::Result<f64> {
        let mut encoded: Vec<Encoded> = examples
            .iter()
            .map(|e| self.format.training(e, self.training.max_length))
            .collect::<anyhow::Result<_>>()?;
        encoded.sort_by_key(|e| e.tokens.len());
        let batches: Vec<_> = encoded
            .chunks(self.eval_batch_size)
            .map(|chunk| {
                let rows: Vec<&Encoded> = chunk.iter().collect();
                let shapes = self.model.fixed_shapes();
                collate_shaped(&rows, shapes, self.eval_batch_size, &self.device)
            })
            .collect();
        Ok(mean_loss(&self.inference_model(), &batches))
    }

    fn ints(&self, rows: &[Vec<u32>], left_pad: bool) -> (Tensor<2, Int>, Tensor<2, Int>) {
        let b = rows.len();
        let s = rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(b * s);
        let mut mask = Vec::with_capacity(b * s);
        for row in rows {
            let pad = s - row.len();
            let real = row.iter().map(|&t| i64::from(t));
            if left_pad {
                ids.extend(std::iter::repeat_n(0, pad).chain(real));
                mask.extend(
                    std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, row.len())),
                );
            } else {
                ids.extend(real.chain(std::iter::repeat_n(0, pad)));
                mask.extend(
                    std::iter::repeat_n(1i64, row.len()).chain(std::iter::repeat_n(0, pad)),
                );
            }
        }
        let t = |d: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(d, [b, s]), &self.device);
        (t(ids), t(mask))
    }
}

impl ContinualLearner for LlamaLearner {
    fn embed(&mut self, texts: &[String], weights: Weights) -> anyhow::Result<Vec<Vec<f32>>> {
        let model = match weights {
            Weights::Base => self.base_model()?,
            Weights::Current => self.inference_model(),
        };
        self.embed_with(&model, texts)
    }

    // Long: the stage loop itself (encode, the method's stage context, epochs of batches, the
    // step reports); its helpers are the optimiser and the task list.
    fn train(
        &mut self,
        examples: &[Example],
        plan: &StageTraining,
        on_step: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<LossPoint>> {
        let t = &plan.config;
        ensure!(!examples.is_empty(), "no training examples");
        self.expert_models.clear();
        let encoded: Vec<Encoded> = examples
            .iter()
            .map(|e| self.format.training(e, t.max_length))
            .collect::<anyhow::Result<_>>()?;
        let lengths: Vec<usize> = encoded.iter().map(|e| e.tokens.len()).collect();
        let per_epoch = lengths
            .len()
            .div_ceil(t.batch_size)
            .div_ceil(t.grad_accumulation);
        let total_steps = per_epoch * t.epochs;
        let mut trainer = optimiser(t, total_steps);
        let autodiff = self.device.clone().autodiff();
        // LoRA dropout draws from the device's stream: a resumed stage must draw the same masks.
        autodiff.seed(plan.seed);
        // The stage task's own examples (all of them for the one multitask stage).
        let own: Vec<Encoded> = examples
            .iter()
            .zip(&encoded)
            .filter(|(e, _)| e.task == plan.task)
            .map(|(_, x)| x.clone())
            .collect();
        let trained_tasks = if own.is_empty() {
            distinct_tasks(examples)
        } else {
            vec![plan.task.clone()]
        };
        let task_key = match self.method.routes() {
            Some(_) => Some(self.task_key(examples, &trained_tasks)?),
            None => None,
        };
        let stage = StageContext {
            stage: plan.stage,
            trained_tasks: &trained_tasks,
            task_key,
            task_distances: &plan.task_distances,
            task: if own.is_empty() { &encoded } else { &own },
            batch_size: t.batch_size,
            seed: plan.seed,
            device: &autodiff,
        };
        let mut model = self.method.begin_stage(self.model.clone(), &stage)?;
        let mut curve = Vec::with_capacity(total_steps);
        for epoch in 0..t.epochs {
            let batches = bucket_batches(
                &lengths,
                t.batch_size,
                BUCKET_WINDOW_BATCHES,
                inscl::seed::epoch(plan.seed, epoch),
            );
            for group in batches.chunks(t.grad_accumulation) {
                let start = Instant::now();
                let micro: Vec<_> = group
                    .iter()
                    .map(|idx| {
                        let rows: Vec<&Encoded> = idx.iter().map(|&i| &encoded[i]).collect();
                        collate_shaped(&rows, model.fixed_shapes(), t.batch_size, &autodiff)
                    })
                    .collect();
                let (next, outcome) = train_step(&mut trainer, self.method.as_mut(), model, &micro);
                model = next;
                let step = trainer.steps_done();
                curve.push(LossPoint {
                    step,
                    loss: outcome.loss,
                    lr: outcome.lr,
                });
                let report = StepReport {
                    step,
                    total_steps,
                    loss: outcome.loss,
                    lr: outcome.lr,
                    tokens_per_s: outcome.tokens as f64 / start.elapsed().as_secs_f64().max(1e-9),
                };
                if on_step(&report).is_break() || !outcome.loss.is_finite() {
                    // The runner discards an interrupted stage: the method's stage-end work
                    // (importances, memory) is skipped with it.
                    self.model = model;
                    return Ok(curve);
                }
            }
        }
        self.model = self.method.end_stage(model, &stage)?;
        Ok(curve)
    }

    fn generate(
        &mut self,
        examples: &[Example],
        max_new_tokens: usize,
        on_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<String>> {
        let prompts: Vec<Vec<u32>> = examples
            .iter()
            .map(|e| self.format.generation(e, self.training.max_length))
            .collect::<anyhow::Result<_>>()?;
        self.routes = None;
        self.generation_stats = GenerationStats::default();
        // Before the first stage the bank is empty: the model answers alone.
        let Some(keys) = self
            .method
            .routes()
            .filter(|experts| !experts.is_empty())
            .map(|experts| experts.iter().map(|e| e.key.clone()).collect::<Vec<_>>())
        else {
            let model = self.inference_model();
            let (outputs, stats) =
                self.generate_greedy(&model, &prompts, max_new_tokens, on_done)?;
            self.generation_stats = stats;
            return Ok(outputs);
        };
        // Route every example to the expert nearest its instruction, then generate expert by
        // expert.
        let base = self.base_model()?;
        let instructions: Vec<String> = examples.iter().map(|e| e.instruction.clone()).collect();
        let unseen: Vec<String> = instructions
            .iter()
            .filter(|i| !self.routing_embeddings.contains_key(*i))
            .cloned()
            .collect();
        let embedded = self.embed_distinct(&base, &unseen)?;
        self.routing_embeddings.extend(embedded);
        let chosen: Vec<usize> = instructions
            .iter()
            .map(|i| {
                nearest_key(&keys, &self.routing_embeddings[i]).expect("the bank is not empty")
            })
            .collect();
        let mut outputs = vec![String::new(); examples.len()];
        let mut done = 0;
        for k in 0..keys.len() {
            let members: Vec<usize> = (0..examples.len()).filter(|&i| chosen[i] == k).collect();
            if members.is_empty() {
                continue;
            }
            self.expert_models.resize(keys.len(), None);
            let model = match &self.expert_models[k] {
                Some(model) => model.clone(),
                None => {
                    let adapter = &self.method.routes().expect("a routing method")[k].adapter;
                    let model = merge_lora(load_peft_adapter(base.clone(), &self.lora, adapter)?);
                    self.expert_models[k] = Some(model.clone());
                    model
                }
            };
            let batch: Vec<Vec<u32>> = members.iter().map(|&i| prompts[i].clone()).collect();
            let mut stopped = false;
            let (texts, stats) =
                self.generate_greedy(&model, &batch, max_new_tokens, &mut |n| {
                    let flow = on_done(done + n);
                    stopped |= flow.is_break();
                    flow
                })?;
            self.generation_stats += stats;
            for (&i, text) in members.iter().zip(texts) {
                outputs[i] = text;
            }
            done += members.len();
            if stopped {
                return Ok(outputs);
            }
        }
        let experts = self.method.routes().expect("a routing method");
        self.routes = Some(chosen.iter().map(|&k| experts[k].tasks.clone()).collect());
        Ok(outputs)
    }

    fn last_routes(&self) -> Option<Vec<Vec<String>>> {
        self.routes.clone()
    }

    fn last_generation_stats(&self) -> Option<GenerationStats> {
        Some(self.generation_stats)
    }

    fn chat(&mut self, prompts: &[String], max_new_tokens: usize) -> anyhow::Result<Vec<String>> {
        let model = self.base_model()?;
        let tokens: Vec<Vec<u32>> = prompts
            .iter()
            .map(|prompt| {
                let text = match &self.format.template {
                    Some(t) => t.user_prompt(prompt),
                    None => format!("{prompt}\n"),
                };
                let mut ids = self.format.tokens(&text)?;
                // Keep the end (the question and the assistant header) of an over-long prompt.
                let limit = self
                    .config
                    .max_position_embeddings
                    .saturating_sub(max_new_tokens);
                if ids.len() > limit {
                    ids.drain(..ids.len() - limit);
                }
                Ok(ids)
            })
            .collect::<anyhow::Result<_>>()?;
        let (replies, _) = self.generate_greedy(&model, &tokens, max_new_tokens, &mut |_| {
            ControlFlow::Continue(())
        })?;
        Ok(replies)
    }

    fn token_counts(&self, texts: &[String]) -> anyhow::Result<Vec<usize>> {
        texts
            .iter()
            .map(|t| Ok(self.format.tokens(t)?.len()))
            .collect()
    }

    fn save_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        self.method.save(dir)?;
        match self.training.adapter {
            Finetuning::Lora => save_adapter(dir, &self.model, &self.lora, &self.source),
            Finetuning::Full => save_full(dir, &self.model, &self.config),
        }
    }

    fn load_checkpoint(&mut self, dir: &Path) -> anyhow::Result<()> {
        match self.training.adapter {
            Finetuning::Lora => {
                let peft = read_tensors(dir, "adapter_model.safetensors")?;
                let model = load_peft_adapter(self.base.clone(), &self.lora, &peft)
                    .with_context(|| format!("loading the adapter in {}", dir.display()))?;
                // A and B of every targeted projection of every layer.
                let expected = 2 * self.config.num_hidden_layers * self.lora.target_modules.len();
                ensure!(
                    expected == peft.len(),
                    "adapter in {} has {} tensors, the LoRA configuration uses {expected}",
                    dir.display(),
                    peft.len()
                );
                self.model = model;
            }
            Finetuning::Full => {
                let tensors = read_tensors(dir, "model.safetensors")?;
                self.model = Llama::from_host_tensors(
                    &self.config,
                    &tensors,
                    &self.device.clone().autodiff(),
                )?
                .with_layer_checkpointing(self.training.checkpoint_layers);
            }
        }
        self.method = self.fresh_method()?;
        self.model = self.method.load(dir, self.model.clone())?;
        self.expert_models.clear();
        Ok(())
    }

    fn reset(&mut self) -> anyhow::Result<()> {
        self.model = Self::fresh(
            &self.base,
            self.training.adapter,
            &self.lora,
            self.adapter_seed,
        )?;
        self.method = self.fresh_method()?;
        self.expert_models.clear();
        Ok(())
    }

    fn device(&self) -> String {
        self.device_name.clone()
    }

    fn keep_kernels_in(&mut self, dir: &Path) -> anyhow::Result<()> {
        if self.backend.is_gpu() {
            llama::device::use_kernel_cache(dir)
                .with_context(|| format!("creating the kernel cache {}", dir.display()))?;
        }
        Ok(())
    }
}
