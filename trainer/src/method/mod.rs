//! Continual-learning methods: how the model is updated from task to task, the axis beside
//! replay (`[strategy]` says what is mixed in, `[method]` how the weights move).
//!
//! Each method is one file behind [`ContinualMethod`]; the learner calls its hooks around
//! every optimiser step and at each stage's start and end, and saves its state in the stage
//! checkpoint so that a resumed run continues exactly:
//!
//! | method | file | source |
//! |---|---|---|
//! | `seq` | here ([`Sequential`]) | plain fine-tuning |
//! | `ewc` | [`ewc`] | TRACE `model/Regular/EWC.py`; Avalanche `plugins/ewc.py` (online mode) |
//! | `mas` | [`mas`] | Avalanche `plugins/mas.py` |
//! | `si` | [`si`] | Avalanche `plugins/synaptic_intelligence.py` |
//! | `tir` | [`tir`] | arXiv 2311.16206; the CLMM code's `cl_learner/tir.py` |
//! | `agem` | [`agem`] | Avalanche `plugins/agem.py` |
//! | `lwf` | [`lwf`] | TRACE `model/Regular/LwF.py` |
//! | `ema` | [`ema`] | LCIA, JingyangQiao/CoIN `peft/tuners/lora.py` (`ema_update`) |
//! | `olora` | [`olora`] | cmnfriend/O-LoRA `src/uie_trainer_lora.py` |
//! | `expand` | [`expand`] | EProj (arXiv 2311.16206); LCIA's retrain-or-expand (CoIN `LoRASelect.py`) |
//!
//! All act on the trainable parameters ([`params::ParamTensors`]): the LoRA factors, or every
//! weight under full fine-tuning.

pub mod agem;
pub mod ema;
pub mod ewc;
pub mod expand;
pub mod lwf;
pub mod mas;
pub mod olora;
pub mod params;
pub mod si;
pub mod tir;

use std::path::Path;

use anyhow::Context;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use llama::io::host::HostTensors;
use llama::lora::LoraConfig;
use llama::model::Llama;
use llama::train::{
    Batch, Encoded, LossFn, StepOutcome, Trainer, accumulate_gradients, causal_lm_loss,
};

pub use crate::config::{MethodConfig, MethodName};
use params::ParamTensors;

/// What a method sees of the stage it trains.
pub struct StageContext<'a> {
    /// 1-based stage number.
    pub stage: usize,
    /// The tasks this stage trains (its own task; every task for the multitask stage): what an
    /// adapter trained now is said to know.
    pub trained_tasks: &'a [String],
    /// For methods that route ([`ContinualMethod::routes`]): the mean base-model embedding of
    /// the task's distinct instructions, and their number.
    pub task_key: Option<(Vec<f32>, usize)>,
    /// [`crate::learner::TrainPlan::task_distances`]: pairwise Wasserstein distances among the
    /// seen tasks, the current one last (for TIR; empty otherwise).
    pub task_distances: &'a [Vec<f64>],
    /// The stage task's own training examples (no replay), encoded as for training: the data
    /// importances (Fisher, Ω) and the A-GEM memory are drawn from.
    pub task: &'a [Encoded],
    /// Examples per batch of the importance passes.
    pub batch_size: usize,
    /// Seed of the stage's random choices ([`crate::learner::TrainPlan::seed`]).
    pub seed: u64,
    /// The autodiff device the batches go to.
    pub device: &'a Device,
}

impl StageContext<'_> {
    /// The stage task's examples in order, in batches of `batch_size` (the importance passes
    /// use a non-shuffled loader, as Avalanche's `after_training_exp`).
    pub fn task_batches(&self) -> Vec<Batch> {
        self.task
            .chunks(self.batch_size.max(1))
            .map(|chunk| llama::train::collate(&chunk.iter().collect::<Vec<_>>(), self.device))
            .collect()
    }
}

/// A continual-learning method's hooks into training. Every hook has a default that does
/// nothing, so that a method implements only what it changes.
pub trait ContinualMethod {
    /// Before the first step of a stage, with the model as trained so far; returns the model
    /// to train (expansion swaps the adapter).
    ///
    /// # Errors
    /// Any model failure.
    fn begin_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        Ok(model)
    }

    /// The training loss of one micro-batch from the model's final hidden states for it: the
    /// mean over its scored tokens.
    fn loss(&self, model: &Llama, batch: &Batch, hidden: Tensor<3>) -> Tensor<1> {
        causal_lm_loss(model, batch, hidden)
    }

    /// [`ContinualMethod::loss`] of a micro-batch from the model's own final hidden states.
    fn batch_loss(&self, model: &Llama, batch: &Batch) -> Tensor<1> {
        let hidden = model.final_hidden(batch.tokens.clone(), batch.attention_mask.clone());
        self.loss(model, batch, hidden)
    }

    /// Changes the step's accumulated gradient before clipping: penalty gradients, A-GEM's
    /// projection.
    fn shape_gradients(&mut self, _model: &Llama, _grads: &mut GradientsParams) {}

    /// Whether [`ContinualMethod::after_step`] is called (it costs a copy of θ per step).
    fn observes_steps(&self) -> bool {
        false
    }

    /// After the optimiser step: `before` = θ before it, `clipped` = the gradient it used,
    /// `model` = the updated model.
    fn after_step(&mut self, _before: &ParamTensors, _clipped: &ParamTensors, _model: &Llama) {}

    /// After the last step of a stage: importances, anchors, memory; may replace the weights
    /// (EMA).
    ///
    /// # Errors
    /// Any model failure.
    fn end_stage(&mut self, model: Llama, _stage: &StageContext<'_>) -> anyhow::Result<Llama> {
        Ok(model)
    }

    /// The adapter bank that evaluation routes each instance through (expansion); `None`
    /// when one model answers everything.
    fn routes(&self) -> Option<&[expand::Expert]> {
        None
    }

    /// Writes the state carried to the next stage into the checkpoint folder `dir`.
    ///
    /// # Errors
    /// I/O failures.
    fn save(&self, _dir: &Path) -> anyhow::Result<()> {
        Ok(())
    }

    /// Restores the state written by [`ContinualMethod::save`] into `self` and `model` (the
    /// model as its checkpoint restores it; its trainable parameters name the state's
    /// tensors), and returns the model (O-LoRA folds its frozen adapters back in).
    ///
    /// # Errors
    /// A missing or inconsistent state file, naming it.
    fn load(&mut self, _dir: &Path, model: Llama) -> anyhow::Result<Llama> {
        Ok(model)
    }
}

/// One optimiser step of `trainer` on `micro_batches` under `method`: the method's loss,
/// accumulated; its gradient shaping; clipping and AdamW; then its step observation.
///
/// # Panics
/// When no micro-batch has a scored token.
pub fn train_step(
    trainer: &mut Trainer,
    method: &mut dyn ContinualMethod,
    model: Llama,
    micro_batches: &[Batch],
) -> (Llama, StepOutcome) {
    let mut gradients =
        accumulate_gradients(&model, micro_batches, &|m, b, h| method.loss(m, b, h));
    method.shape_gradients(&model, &mut gradients.grads);
    if !method.observes_steps() {
        return trainer.apply(model, gradients, &mut |_, _| {});
    }
    let before = ParamTensors::values(&model);
    let mut clipped = None;
    let (model, outcome) = trainer.apply(model, gradients, &mut |m, grads| {
        clipped = Some(ParamTensors::gradients(m, grads));
    });
    let clipped = clipped.expect("the trainer shows the clipped gradients");
    method.after_step(&before, &clipped, &model);
    (model, outcome)
}

/// Plain sequential fine-tuning: no hook changes anything.
pub struct Sequential;

impl ContinualMethod for Sequential {}

/// The method of `config`, with no state (before the first stage); `lora` is the adapter
/// configuration (`None` under full fine-tuning).
///
/// # Errors
/// `olora` without LoRA.
pub fn new_method(
    config: &MethodConfig,
    lora: Option<&LoraConfig>,
) -> anyhow::Result<Box<dyn ContinualMethod>> {
    Ok(match config.name {
        MethodName::Seq => Box::new(Sequential),
        MethodName::Ewc => Box::new(ewc::Ewc::new(config)),
        MethodName::Mas => Box::new(mas::Mas::new(config)),
        MethodName::Si => Box::new(si::Si::new(config)),
        MethodName::Tir => Box::new(tir::Tir::new(config)),
        MethodName::Agem => Box::new(agem::Agem::new(config)),
        MethodName::Lwf => Box::new(lwf::Lwf::new(config)),
        MethodName::Ema => Box::new(ema::Ema::new()),
        MethodName::Olora => Box::new(olora::OLora::new(
            config,
            lora.context("olora trains LoRA adapters: set training.method = \"lora\"")?,
        )),
        MethodName::Expand => Box::new(expand::Expansion::new(
            config,
            lora.context("expand trains LoRA adapters: set training.method = \"lora\"")?,
        )),
    })
}

/// Importance-weighted anchors of a quadratic penalty: `(Ω_k, θ*_k)` per entry.
pub type Anchors = Vec<(ParamTensors, ParamTensors)>;

/// Adds to `grads` the gradient of the quadratic penalty `coef · Σ_k Σ Ω_k ⊙ (θ − θ*_k)²` at
/// `model`'s θ, `2 · coef · Σ_k Ω_k ⊙ (θ − θ*_k)` (nothing without anchors): the penalty of
/// EWC, MAS, SI and TIR, each with its own `coef` (½λ, λ, λ/2, ½λ), added to the task gradient
/// analytically (no second backward pass).
///
/// # Panics
/// When an anchor lacks a trainable parameter of `model`.
pub fn add_quadratic_penalty(
    model: &Llama,
    grads: &mut GradientsParams,
    anchors: &Anchors,
    coef: f64,
) {
    let theta = ParamTensors::values(model);
    let penalty = anchors
        .iter()
        .map(|(importance, anchor)| {
            let diff = theta.zip(anchor, |t, a| t - a);
            importance.zip(&diff, |w, d| w * d * (2.0 * coef))
        })
        .reduce(|a, b| a.zip(&b, |x, y| x + y));
    if let Some(penalty) = penalty {
        penalty.add_to_gradients(model, grads);
    }
}

/// `(1/B) Σ_batches f(∂loss_batch/∂θ)` over the `B` batches of `batches` that have a scored
/// token (each batch's gradient on its own, as Avalanche's importance loops), at `model`'s θ.
pub fn mean_gradient_statistic(
    model: &Llama,
    batches: &[Batch],
    loss: &LossFn<'_>,
    f: impl Fn(Tensor<1>) -> Tensor<1>,
) -> ParamTensors {
    let scored: Vec<&Batch> = batches.iter().filter(|b| b.n_scored > 0).collect();
    let mut sum = ParamTensors::zeros_like(model);
    for &batch in &scored {
        let grads = accumulate_gradients(model, std::slice::from_ref(batch), loss).grads;
        sum = sum.zip(&ParamTensors::gradients(model, &grads).map(&f), |a, b| {
            a + b
        });
    }
    let n = scored.len().max(1) as f64;
    sum.map(|t| t / n)
}

/// Safetensors file of a method's tensors inside a checkpoint folder.
pub const STATE_TENSORS: &str = "method.safetensors";
/// JSON file of a method's other state inside a checkpoint folder.
pub const STATE_JSON: &str = "method.json";

/// Writes `tensors` (named `prefix` + path) to `dir`/[`STATE_TENSORS`].
///
/// # Errors
/// I/O failures.
pub fn save_tensors(dir: &Path, tensors: &[(&str, &ParamTensors)]) -> anyhow::Result<()> {
    let mut host = HostTensors::new();
    for (prefix, t) in tensors {
        host.extend(t.to_host(prefix));
    }
    llama::io::safetensors::save_host_tensors(&dir.join(STATE_TENSORS), &host)?;
    Ok(())
}

/// Number of anchors in a checkpoint's [`STATE_JSON`].
#[derive(serde::Serialize, serde::Deserialize)]
struct AnchorCount {
    anchors: usize,
}

/// Writes `anchors` (tensors `importance.{k}.*`, `anchor.{k}.*`) and `extra` (under their own
/// prefixes) into the checkpoint folder `dir`.
///
/// # Errors
/// I/O failures.
pub fn save_anchors(
    dir: &Path,
    anchors: &Anchors,
    extra: &[(&str, &ParamTensors)],
) -> anyhow::Result<()> {
    let prefixes: Vec<(String, String)> = (0..anchors.len())
        .map(|k| (format!("importance.{k}."), format!("anchor.{k}.")))
        .collect();
    let mut tensors: Vec<(&str, &ParamTensors)> = extra.to_vec();
    for ((ip, ap), (importance, anchor)) in prefixes.iter().zip(anchors) {
        tensors.push((ip, importance));
        tensors.push((ap, anchor));
    }
    save_tensors(dir, &tensors)?;
    let path = dir.join(STATE_JSON);
    let count = serde_json::to_string(&AnchorCount {
        anchors: anchors.len(),
    })?;
    std::fs::write(&path, count).with_context(|| format!("writing {}", path.display()))
}

/// The anchors written by [`save_anchors`], and every tensor of the file (for the extras).
///
/// # Errors
/// Missing or inconsistent files, naming them.
pub fn load_anchors(dir: &Path, model: &Llama) -> anyhow::Result<(Anchors, HostTensors)> {
    let path = dir.join(STATE_JSON);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let count: AnchorCount = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected {{\"anchors\": <count>}}", path.display()))?;
    let host = read_tensors(dir)?;
    let file = dir.join(STATE_TENSORS);
    let anchors = (0..count.anchors)
        .map(|k| {
            Ok((
                ParamTensors::from_host(&host, &format!("importance.{k}."), model, &file)?,
                ParamTensors::from_host(&host, &format!("anchor.{k}."), model, &file)?,
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((anchors, host))
}

/// Reads `dir`/[`STATE_TENSORS`].
///
/// # Errors
/// A missing or unreadable file, naming it.
pub fn read_tensors(dir: &Path) -> anyhow::Result<HostTensors> {
    let path = dir.join(STATE_TENSORS);
    let mut host = HostTensors::new();
    llama::io::safetensors::read_file_into(&path, &mut host)
        .map_err(|e| anyhow::anyhow!("reading the method state {}: {e}", path.display()))?;
    Ok(host)
}
