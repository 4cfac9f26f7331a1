//! Fine-tuning primitives for [`Llama`], on any burn device (build the model on
//! `device.autodiff()`):
//!
//! - [`LrSchedule`]: linear warmup, then cosine / linear decay to 0 or a constant rate — the
//!   schedules of HF `transformers` (`get_cosine_schedule_with_warmup`,
//!   `get_linear_schedule_with_warmup`, `get_constant_schedule_with_warmup`).
//! - [`clip_grad_norm`]: clipping by the *global* L2 norm over all gradients, as PyTorch
//!   `torch.nn.utils.clip_grad_norm_` (burn's own clipping is per tensor).
//! - [`encode_example`] / [`bucket_batches`] / [`collate`]: response-only labels (prompt and
//!   padding get [`IGNORE_INDEX`]), left truncation of the prompt, and length-bucketed batches.
//! - [`ScheduledAdamW`]: AdamW (decoupled weight decay, Loshchilov & Hutter 2019) with the schedule
//!   and global-norm clipping; [`accumulate_gradients`]: one step's gradient over its
//!   micro-batches, of the causal-LM loss or another [`LossFn`] (continual-learning methods
//!   change the loss and the gradient between the two).
//! - [`mean_loss`]: held-out loss over batches, token-weighted.
//! - [`hf_tensors`]: all weights of a model back in HF names and layouts (full fine-tuning
//!   checkpoints).
//!
//! Dropout (LoRA's) draws from the device's random stream: seed it (`device.seed(..)`) before
//! training to make a run repeatable. burn's flex backend keeps one stream per process, so two
//! trainings with dropout running at once in one process draw from each other's stream.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::layerwise_gradients;
use crate::io::host::HostTensors;
use crate::io::host::parameters_on_host;
use crate::model::{IGNORE_INDEX, Llama};
use crate::peft::merge_lora;
use crate::shapes::FixedShapes;

/// Shape of the learning rate after the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// Half a cosine from the peak to 0.
    Cosine,
    /// Straight line from the peak to 0.
    Linear,
    /// The peak rate.
    Constant,
}

/// Learning rate per optimiser step, as HF `transformers`' `get_*_schedule_with_warmup`:
/// for 0-based step `s` with `w` warmup steps of `n`, `lr = peak · s / w` while `s < w`, then
/// with progress `p = (s - w) / max(1, n - w)`: cosine `peak · ½(1 + cos πp)`, linear
/// `peak · max(0, (n - s) / max(1, n - w))`, constant `peak`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub peak: f64,
    /// Warmup steps w.
    pub warmup_steps: usize,
    /// Optimiser steps n of the whole run.
    pub total_steps: usize,
    /// Decay after the warmup.
    pub kind: ScheduleKind,
}

impl LrSchedule {
    /// A schedule over `total_steps` with `ceil(warmup_ratio · total_steps)` warmup steps
    /// (HF `TrainingArguments.get_warmup_steps`).
    pub fn new(peak: f64, warmup_ratio: f64, total_steps: usize, kind: ScheduleKind) -> Self {
        Self {
            peak,
            warmup_steps: (warmup_ratio * total_steps as f64).ceil() as usize,
            total_steps,
            kind,
        }
    }

    /// The rate of 0-based step `step`.
    pub fn lr(&self, step: usize) -> f64 {
        let (s, w, n) = (
            step as f64,
            self.warmup_steps as f64,
            self.total_steps as f64,
        );
        if step < self.warmup_steps {
            return self.peak * s / w.max(1.0);
        }
        let span = (n - w).max(1.0);
        match self.kind {
            ScheduleKind::Constant => self.peak,
            ScheduleKind::Linear => self.peak * ((n - s) / span).max(0.0),
            ScheduleKind::Cosine => {
                let p = (s - w) / span;
                self.peak * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }
}

/// Sum of squares of every gradient of `module`'s parameters present in `grads`, as one
/// device scalar `[1]` (no host sync per tensor); `None` when no parameter has a gradient.
fn squared_norm<M: Module>(module: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let sq = g.square().sum();
                self.sum = Some(match self.sum.take() {
                    Some(acc) => acc + sq,
                    None => sq,
                });
            }
        }
    }
    let mut visitor = Norm { grads, sum: None };
    module.visit(&mut visitor);
    visitor.sum
}

/// Scales every gradient of `module`'s parameters in `grads` by `factor`.
fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
        seen: Vec<ParamId>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            // A tied parameter is visited once per use: scale it once.
            if self.seen.contains(&param.id) {
                return;
            }
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, g.mul_scalar(self.factor));
                self.seen.push(param.id);
            }
        }
    }
    module.visit(&mut Scale {
        grads,
        factor,
        seen: Vec::new(),
    });
}

/// Clips `grads` in place by their global L2 norm, as PyTorch `clip_grad_norm_`: with
/// `total = sqrt(Σ‖g‖²)` over every gradient, all are multiplied by
/// `min(1, max_norm / (total + 1e-6))`. Returns `total` (before clipping); 0 when `grads` has
/// no gradient of `module`.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    let Some(sq) = squared_norm(module, grads) else {
        return 0.0;
    };
    let total = f64::from(sq.into_scalar::<f32>()).sqrt();
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        scale_grads(module, grads, coef);
    }
    total
}

/// One training example as token ids: the whole sequence and its labels (the token itself on
/// response positions, [`IGNORE_INDEX`] on prompt positions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Prompt then response, at most `max_length` ids.
    pub tokens: Vec<u32>,
    /// Same length as `tokens`.
    pub labels: Vec<i64>,
}

/// Where a prompt segment may lose tokens when an example is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Index of the segment in the prompt.
    pub segment: usize,
    /// Drop from the start (keeping the end) instead of from the end.
    pub from_left: bool,
}

/// Joins `prompt` segments and `response` into at most `max_length` tokens. Tokens are dropped
/// until it fits: from each segment of `cuts` in turn (as far as needed, in the given
/// direction), then from the end of the response, which keeps at least one token. Segments not
/// in `cuts` (chat-template markup) are never cut, so the result exceeds `max_length` only when
/// they alone (plus one response token) do. Prompt tokens are labelled [`IGNORE_INDEX`],
/// response tokens with themselves (HF causal-LM convention: the loss shifts labels).
pub fn encode_example(
    prompt: &[Vec<u32>],
    cuts: &[Cut],
    response: &[u32],
    max_length: usize,
) -> Encoded {
    let prompt_len: usize = prompt.iter().map(Vec::len).sum();
    let mut excess = (prompt_len + response.len()).saturating_sub(max_length);
    let mut ranges: Vec<(usize, usize)> = prompt.iter().map(|s| (0, s.len())).collect();
    for cut in cuts {
        let (start, end) = &mut ranges[cut.segment];
        let n = excess.min(*end - *start);
        excess -= n;
        if cut.from_left {
            *start += n;
        } else {
            *end -= n;
        }
    }
    let mut tokens: Vec<u32> = prompt
        .iter()
        .zip(&ranges)
        .flat_map(|(s, &(a, b))| s[a..b].iter().copied())
        .collect();
    let keep = response
        .len()
        .saturating_sub(excess)
        .max(1.min(response.len()));
    let n_prompt = tokens.len();
    tokens.extend_from_slice(&response[..keep]);
    let labels = tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if i < n_prompt {
                IGNORE_INDEX
            } else {
                i64::from(t)
            }
        })
        .collect();
    Encoded { tokens, labels }
}

/// Length-bucketed batches of example indices: the indices are shuffled with `seed`, cut into
/// windows of `batch_size × window_batches`, sorted by length (descending, stable) within each
/// window and chunked into batches of `batch_size`; the batch order is then shuffled with the
/// same generator. Less padding than random batches, still a random curriculum.
pub fn bucket_batches(
    lengths: &[usize],
    batch_size: usize,
    window_batches: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for window in order.chunks(batch_size * window_batches.max(1)) {
        let mut window = window.to_vec();
        window.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// A padded batch on a device: `tokens`, `attention_mask` and `labels`, all `[b, s]` with `s`
/// the longest example (or its bucket, [`collate_shaped`]); right padding with token 0, mask 0
/// and label [`IGNORE_INDEX`].
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids.
    pub tokens: Tensor<2, Int>,
    /// 1 = real token.
    pub attention_mask: Tensor<2, Int>,
    /// Targets, [`IGNORE_INDEX`] where not scored.
    pub labels: Tensor<2, Int>,
    /// Real tokens (prompt + response) in the batch.
    pub n_tokens: usize,
    /// Scored (response) tokens: the positions after the first whose label is not ignored.
    pub n_scored: usize,
}

/// Pads `examples` into a [`Batch`] on `device` of `[examples.len(), longest example]`.
///
/// # Panics
/// When `examples` is empty.
pub fn collate(examples: &[&Encoded], device: &Device) -> Batch {
    collate_shaped(examples, None, examples.len(), device)
}

/// Pads `examples` into a [`Batch`] on `device`: with `shapes`, of `[rows, bucketed width]`
/// ([`FixedShapes::width`] of the longest example), the rows after the examples filler rows
/// (one unmasked token 0 without a label, so that no query of theirs has every key masked,
/// which some backends' attention turns into NaN); without `shapes`, of
/// `[examples.len(), longest]` as [`collate`]. The padding changes no loss or gradient
/// (`llama/tests/fixed_shapes.rs`).
///
/// # Panics
/// When `examples` is empty, or with `shapes` when `rows` is below `examples.len()`.
pub fn collate_shaped(
    examples: &[&Encoded],
    shapes: Option<FixedShapes>,
    rows: usize,
    device: &Device,
) -> Batch {
    assert!(!examples.is_empty(), "collate needs at least one example");
    let longest = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(0);
    let (b, s) = match shapes {
        Some(shapes) => {
            assert!(
                rows >= examples.len(),
                "a batch of {rows} rows cannot hold {} examples",
                examples.len()
            );
            (rows, shapes.width(longest))
        }
        None => (examples.len(), longest),
    };
    let filler = Encoded {
        tokens: vec![0],
        labels: vec![IGNORE_INDEX],
    };
    let fillers = std::iter::repeat_n(&filler, b - examples.len());
    let mut tokens = Vec::with_capacity(b * s);
    let mut mask = Vec::with_capacity(b * s);
    let mut labels = Vec::with_capacity(b * s);
    let mut n_scored = 0;
    for e in examples.iter().copied().chain(fillers) {
        let pad = s - e.tokens.len();
        tokens.extend(e.tokens.iter().map(|&t| i64::from(t)));
        tokens.extend(std::iter::repeat_n(0, pad));
        mask.extend(std::iter::repeat_n(1i64, e.tokens.len()));
        mask.extend(std::iter::repeat_n(0, pad));
        labels.extend_from_slice(&e.labels);
        labels.extend(std::iter::repeat_n(IGNORE_INDEX, pad));
        n_scored += e
            .labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count();
    }
    let int = |data: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(data, [b, s]), device);
    Batch {
        tokens: int(tokens),
        attention_mask: int(mask),
        labels: int(labels),
        n_tokens: examples.iter().map(|e| e.tokens.len()).sum(),
        n_scored,
    }
}

/// Optimiser settings of a [`ScheduledAdamW`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Learning-rate schedule (its `total_steps` counts optimiser steps).
    pub schedule: LrSchedule,
    /// AdamW decoupled weight decay λ (applied as `θ ← θ(1 - lr·λ)` to every trainable
    /// parameter).
    pub weight_decay: f64,
    /// Global gradient-norm limit ([`clip_grad_norm`]); `None` = no clipping.
    pub clip_norm: Option<f64>,
}

/// Result of one [`ScheduledAdamW::step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean cross-entropy (nats) over the scored tokens of all micro-batches.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Real tokens processed.
    pub tokens: usize,
}

/// AdamW (β = 0.9, 0.999, ε = 1e-8 as PyTorch) with a schedule, gradient accumulation and
/// global-norm clipping. One [`ScheduledAdamW::step`] = one optimiser step over its micro-batches.
pub struct ScheduledAdamW {
    optimizer: ModuleOptimizer,
    config: OptimConfig,
    step: usize,
}

impl ScheduledAdamW {
    /// A fresh optimiser (no moment estimates) at step 0.
    pub fn new(config: OptimConfig) -> Self {
        let optimizer = AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(config.weight_decay as f32)
            .init();
        Self {
            optimizer,
            config,
            step: 0,
        }
    }

    /// Optimiser steps taken.
    pub fn steps_done(&self) -> usize {
        self.step
    }

    /// One optimiser step on `micro_batches` with the causal-LM loss:
    /// [`accumulate_gradients`] then [`ScheduledAdamW::apply`].
    ///
    /// # Panics
    /// When no micro-batch has a scored token.
    pub fn step(&mut self, model: Llama, micro_batches: &[Batch]) -> (Llama, StepOutcome) {
        let gradients = accumulate_gradients(&model, micro_batches, &causal_lm_loss);
        self.apply(model, gradients, &mut |_, _| {})
    }

    /// Clips `gradients` by their global norm (when configured), shows the clipped gradients
    /// to `on_clipped` (what PyTorch's `p.grad` holds at `optimizer.step()`) and takes one
    /// AdamW step at the schedule's rate.
    pub fn apply(
        &mut self,
        model: Llama,
        gradients: StepGradients,
        on_clipped: &mut dyn FnMut(&Llama, &GradientsParams),
    ) -> (Llama, StepOutcome) {
        let StepGradients {
            mut grads,
            loss,
            tokens,
        } = gradients;
        let grad_norm = match self.config.clip_norm {
            Some(max) => clip_grad_norm(&model, &mut grads, max),
            None => squared_norm(&model, &grads)
                .map_or(0.0, |sq| f64::from(sq.into_scalar::<f32>()).sqrt()),
        };
        on_clipped(&model, &grads);
        let lr = self.config.schedule.lr(self.step);
        let model = self.optimizer.step(lr, model, grads);
        self.step += 1;
        (
            model,
            StepOutcome {
                loss,
                lr,
                grad_norm,
                tokens,
            },
        )
    }
}

/// The gradient of one optimiser step, accumulated over its micro-batches, not yet clipped.
pub struct StepGradients {
    /// Gradient of every trainable parameter.
    pub grads: GradientsParams,
    /// The step's loss: the token-weighted mean of the micro-batches' losses.
    pub loss: f64,
    /// Real tokens processed.
    pub tokens: usize,
}

/// A micro-batch's training loss as a scalar `[1]` on the autodiff device, from the model,
/// the batch and the model's final hidden states `[b, s, d]` for it ([`Llama::final_hidden`],
/// computed by [`accumulate_gradients`], with or without layer checkpointing): the mean over
/// its scored tokens, so that [`accumulate_gradients`] can weight it by its share of them.
pub type LossFn<'a> = dyn Fn(&Llama, &Batch, Tensor<3>) -> Tensor<1> + 'a;

/// The plain causal-LM loss ([`Llama::causal_lm_loss`]) of a batch, from its final hidden
/// states.
pub fn causal_lm_loss(model: &Llama, batch: &Batch, hidden: Tensor<3>) -> Tensor<1> {
    model.causal_lm_loss_of_hidden(hidden, batch.labels.clone())
}

/// The gradient of `loss` over `micro_batches` (gradient accumulation): each micro-batch's
/// mean loss is weighted by its share of the step's scored tokens, so the accumulated gradient
/// is that of the mean token loss over all micro-batches (as one big batch would give).
/// Micro-batches without scored tokens are skipped. A model with
/// [`Llama::with_layer_checkpointing`] recomputes its layers in the backward pass
/// ([`crate::checkpoint`]).
///
/// # Panics
/// When no micro-batch has a scored token.
pub fn accumulate_gradients(
    model: &Llama,
    micro_batches: &[Batch],
    loss: &LossFn<'_>,
) -> StepGradients {
    let total_scored: usize = micro_batches.iter().map(|b| b.n_scored).sum();
    assert!(
        total_scored > 0,
        "a training step needs at least one response token"
    );
    let mut accumulator = GradientsAccumulator::<Llama>::new();
    let mut loss_sum = 0.0;
    for batch in micro_batches.iter().filter(|b| b.n_scored > 0) {
        let weight = batch.n_scored as f64 / total_scored as f64;
        let (value, grads) = if model.checkpoints_layers() {
            layerwise_gradients(model, batch, loss, weight)
        } else {
            let hidden = model.final_hidden(batch.tokens.clone(), batch.attention_mask.clone());
            let weighted = loss(model, batch, hidden).mul_scalar(weight);
            let grads = GradientsParams::from_grads(weighted.backward(), model);
            (f64::from(weighted.into_scalar::<f32>()), grads)
        };
        loss_sum += value;
        accumulator.accumulate(model, grads);
    }
    StepGradients {
        grads: accumulator.grads(),
        loss: loss_sum,
        tokens: micro_batches.iter().map(|b| b.n_tokens).sum(),
    }
}

/// Mean response-token cross-entropy (nats) of `model` over `batches`: each batch's mean
/// weighted by its scored tokens, i.e. the loss of all batches taken as one (HF `ScheduledAdamW`'s
/// `eval_loss` averages per batch instead, which over-weights short batches). Use the inference
/// model (`model.valid()`, adapters merged or not) on the plain device. NaN when no batch has a
/// scored token.
pub fn mean_loss(model: &Llama, batches: &[Batch]) -> f64 {
    let (sum, scored) =
        batches
            .iter()
            .filter(|b| b.n_scored > 0)
            .fold((0.0, 0), |(sum, scored), batch| {
                let loss = model.causal_lm_loss(
                    batch.tokens.clone(),
                    batch.attention_mask.clone(),
                    batch.labels.clone(),
                );
                let loss = f64::from(loss.into_scalar::<f32>());
                (sum + loss * batch.n_scored as f64, scored + batch.n_scored)
            });
    sum / scored as f64
}

/// Every weight of `model` in HF names and layouts (`model.layers.{i}.self_attn.q_proj.weight`
/// `[out, in]`, `model.norm.weight`, `model.embed_tokens.weight`, `lm_head.weight` when untied),
/// with LoRA adapters merged: what [`Llama::from_host_tensors`] and `transformers` load.
pub fn hf_tensors(model: &Llama) -> HostTensors {
    parameters_on_host(&merge_lora(model.valid()))
        .into_iter()
        .map(|(path, t)| {
            let linear = path.ends_with("_proj.weight") || path == "lm_head.weight";
            let name = if path == "lm_head.weight" {
                path
            } else {
                format!("model.{}", path.replace(".gamma", ".weight"))
            };
            (name, if linear { t.transposed() } else { t })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_transformers() {
        // transformers 4.x get_cosine_schedule_with_warmup(warmup=2, total=10), peak 1.
        let cos = LrSchedule::new(1.0, 0.2, 10, ScheduleKind::Cosine);
        assert_eq!(cos.warmup_steps, 2);
        let want = [
            0.0,
            0.5,
            1.0,
            0.9619397662556434,
            0.8535533905932737,
            0.6913417161825449,
        ];
        for (s, w) in want.iter().enumerate() {
            assert!(
                (cos.lr(s) - w).abs() < 1e-12,
                "step {s}: {} vs {w}",
                cos.lr(s)
            );
        }
        let lin = LrSchedule::new(2.0, 0.2, 10, ScheduleKind::Linear);
        assert_eq!(
            [lin.lr(1), lin.lr(2), lin.lr(6), lin.lr(10)],
            [1.0, 2.0, 1.0, 0.0]
        );
        let constant = LrSchedule::new(3.0, 0.0, 10, ScheduleKind::Constant);
        assert_eq!(constant.lr(0), 3.0);
    }

    #[test]
    fn prompt_is_cut_from_the_left_of_the_input_then_the_instruction_and_the_response_kept() {
        let prompt = vec![
            vec![1, 2],
            vec![10, 11, 12, 13],
            vec![3],
            vec![30, 31, 32],
            vec![4],
        ];
        let cuts = [
            Cut {
                segment: 3,
                from_left: true,
            },
            Cut {
                segment: 1,
                from_left: false,
            },
        ];
        // 11 prompt + 2 response tokens into 8: the input loses 3 from its left, the
        // definition 2 from its right.
        let e = encode_example(&prompt, &cuts, &[20, 21], 8);
        assert_eq!(e.tokens, vec![1, 2, 10, 11, 3, 4, 20, 21]);
        assert_eq!(e.labels, vec![-100, -100, -100, -100, -100, -100, 20, 21]);
        // Cuttable segments exhausted: the response loses its tail but keeps one token.
        let e = encode_example(&prompt, &cuts, &[20, 21, 22], 3);
        assert_eq!(e.tokens, vec![1, 2, 3, 4, 20]);
        let e = encode_example(&prompt, &[], &[20], 100);
        assert_eq!(e.tokens.len(), 12);
    }

    #[test]
    fn buckets_cover_every_index_once_and_group_similar_lengths() {
        let lengths: Vec<usize> = (0..40).map(|i| (i * 37) % 101).collect();
        let batches = bucket_batches(&lengths, 4, 10, 7);
        assert_eq!(batches, bucket_batches(&lengths, 4, 10, 7), "seeded");
        assert_ne!(batches, bucket_batches(&lengths, 4, 10, 8));
        let mut all: Vec<usize> = batches.concat();
        all.sort_unstable();
        assert_eq!(all, (0..40).collect::<Vec<_>>());
        // One window of 40: sorted, so each batch spans a narrow length range.
        let spread: usize = batches
            .iter()
            .map(|b| {
                let l: Vec<usize> = b.iter().map(|&i| lengths[i]).collect();
                l.iter().max().unwrap() - l.iter().min().unwrap()
            })
            .sum();
        assert!(spread < 150, "total spread {spread}");
    }
}
