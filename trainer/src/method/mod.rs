//! Continual-learning methods: how the model is updated from task to task, the axis beside
//! replay (`[strategy]` says what is mixed in, `[method]` how the weights move).
//!
//! Each method is one file behind [`ContinualMethod`]; the learner calls its hooks around
//! every optimiser step and at each stage's start and end, and saves its state in the stage
//! checkpoint so that a resumed run continues exactly.
//!
//! The [registry](MethodConfig) names every method; each method's file gives its formula, the
//! source it follows (paper, reference implementation and file) and its departures.
//!
//! All act on the trainable parameters ([`params::ParamTensors`]): the LoRA factors, or every
//! weight under full fine-tuning.
//!
//! A method is self-contained: its file holds its settings (`XConfig`: fields, defaults, checks,
//! [`MethodSettings`]) and the method ([`ContinualMethod`]); one line of the registry below
//! names it, which makes it a `[method] name` and a variant of [`MethodConfig`]. What a method
//! needs from the run is a capability of its settings, not a check of its name:
//! [`MethodSettings::reads_task_similarity`] (task distances, TIR),
//! [`MethodSettings::trains_adapters`] (LoRA only), [`ContinualMethod::routes`] (routing
//! evaluation through [`routing`], expansion).

pub mod frozen;
pub mod params;
pub mod routing;

use std::path::Path;

use anyhow::Context;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use llama::io::host::HostTensors;
use llama::lora::LoraConfig;
use llama::model::Llama;
use llama::train::{
    Batch, Encoded, LossFn, ScheduledAdamW, StepOutcome, accumulate_gradients, causal_lm_loss,
};

use params::ParamTensors;
use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// The registry of methods: one line per method, `file => Variant(Settings)`, where `file` is
/// the method's module (its name in `[method] name`) and `Settings` its configuration type.
/// It declares the modules and builds [`MethodConfig`], the `[method]` section: an enum tagged
/// by `name` that holds the chosen method's settings.
macro_rules! registry {
    ($($(#[$doc:meta])* $file:ident => $variant:ident($settings:ident),)+) => {
        $(pub mod $file;)+

        /// `[method]`: the continual-learning method (`name`) and its settings, whose fields,
        /// defaults and checks live in the method's own file.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name", rename_all = "lowercase")]
        pub enum MethodConfig {
            $($(#[$doc])* $variant($file::$settings),)+
        }

        impl MethodConfig {
            /// Every method's name, in registry order.
            pub const NAMES: &[&str] = &[$(stringify!($file)),+];

            /// The method's name in `[method] name`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($file),)+
                }
            }

            /// The method's settings behind their common interface.
            pub fn settings(&self) -> &dyn MethodSettings {
                match self {
                    $(Self::$variant(settings) => settings,)+
                }
            }

            /// The method called `name` with its default settings; `None` for an unknown name.
            pub fn named(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($file) => Some(Self::$variant(Default::default())),)+
                    _ => None,
                }
            }

            /// The field names each method's settings accept, by method name.
            fn fields() -> Vec<(&'static str, &'static [&'static str])> {
                vec![$((stringify!($file), field_names::<$file::$settings>()),)+]
            }

            /// The method's name as a value (a study's methods axis).
            pub fn method_name(&self) -> MethodName {
                match self {
                    $(Self::$variant(_) => MethodName::$variant,)+
                }
            }
        }

        /// A method by name alone, without settings: the methods axis of `trainer study`.
        /// Serialised as the `[method] name` (the variant in lowercase).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum MethodName {
            $($(#[$doc])* $variant,)+
        }

        impl MethodName {
            /// Every method, in registry order.
            pub const ALL: &[MethodName] = &[$(Self::$variant),+];

            /// The name in `[method] name`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($file),)+
                }
            }
        }
    };
}

impl std::fmt::Display for MethodName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

registry! {
    /// Plain sequential fine-tuning.
    seq => Seq(SeqConfig),
    /// Elastic weight consolidation.
    ewc => Ewc(EwcConfig),
    /// Memory aware synapses.
    mas => Mas(MasConfig),
    /// Synaptic intelligence.
    si => Si(SiConfig),
    /// Task-similarity-informed regularisation (EWC weakened towards similar tasks).
    tir => Tir(TirConfig),
    /// Averaged gradient episodic memory.
    agem => Agem(AgemConfig),
    /// Learning without forgetting.
    lwf => Lwf(LwfConfig),
    /// LCIA's adaptive EMA of the weights.
    ema => Ema(EmaConfig),
    /// O-LoRA: a fresh adapter per task, orthogonal to the frozen earlier ones.
    olora => Olora(OLoraConfig),
    /// C-LoRA: a fresh adapter per task, penalised where the earlier ones moved the weight.
    clora => CLora(CLoraConfig),
    /// Per-task adapters with instruction routing (EProj, LCIA's retrain-or-expand).
    expand => Expand(ExpandConfig),
}

impl Default for MethodConfig {
    /// Plain fine-tuning.
    fn default() -> Self {
        Self::Seq(seq::SeqConfig::default())
    }
}

/// What every method's settings (`XConfig` in the method's file) provide: their checks, the
/// method they build and what the method needs from the run.
pub trait MethodSettings {
    /// Checks the settings' own fields (named `method.<field>`).
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and value.
    fn validate(&self) -> Result<(), InvalidValue> {
        Ok(())
    }

    /// The method, with no state (before the first stage); `lora` is the adapter configuration
    /// (`None` under full fine-tuning).
    ///
    /// # Errors
    /// A method that needs LoRA adapters under full fine-tuning.
    fn build(&self, lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>>;

    /// Whether the method trains LoRA adapters of its own (so needs `training.adapter = "lora"`).
    fn trains_adapters(&self) -> bool {
        false
    }

    /// Whether the method reads the seen tasks' Wasserstein distances as similarities
    /// (`1 − W`, so needs the cosine cost): the runner then computes them for every stage
    /// ([`StageContext::task_distances`]).
    fn reads_task_similarity(&self) -> bool {
        false
    }
}

impl MethodConfig {
    /// Checks the chosen method's settings.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        self.settings().validate()
    }

    /// The chosen method, with no state (before the first stage); `lora` is the adapter
    /// configuration (`None` under full fine-tuning).
    ///
    /// # Errors
    /// A method that needs LoRA adapters under full fine-tuning.
    pub fn build(&self, lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        self.settings().build(lora)
    }

    /// Takes from a `[method]` table the fields that belong to other methods than the one it
    /// names (older configs and `run.json` files wrote every method's fields in one flat
    /// `[method]`). Each is checked as its own method checks it, then dropped; the names of
    /// those dropped are returned, for a notice. A field of no method stays, for the unknown
    /// field error.
    ///
    /// # Errors
    /// A dropped field of the wrong type or out of its range, naming it.
    pub fn take_other_methods_fields(
        table: &mut toml::Table,
    ) -> Result<Vec<String>, OtherFieldError> {
        let Some(name) = table.get("name").and_then(toml::Value::as_str) else {
            return Ok(Vec::new());
        };
        let fields = Self::fields();
        let Some((_, own)) = fields.iter().find(|(method, _)| *method == name) else {
            return Ok(Vec::new());
        };
        let foreign: Vec<String> = table
            .keys()
            .filter(|key| *key != "name" && !own.contains(&key.as_str()))
            .filter(|key| fields.iter().any(|(_, f)| f.contains(&key.as_str())))
            .cloned()
            .collect();
        for (method, accepted) in &fields {
            let mut theirs: toml::Table = foreign
                .iter()
                .filter(|key| accepted.contains(&key.as_str()))
                .map(|key| (key.clone(), table[key].clone()))
                .collect();
            if theirs.is_empty() {
                continue;
            }
            theirs.insert("name".into(), toml::Value::String((*method).into()));
            let settings: Self = toml::Value::Table(theirs)
                .try_into()
                .map_err(|e: toml::de::Error| OtherFieldError::Parse(e.message().to_owned()))?;
            settings.validate()?;
        }
        for key in &foreign {
            table.remove(key);
        }
        Ok(foreign)
    }
}

/// A field of another method in a flat `[method]` table that is not valid for that method.
#[derive(Debug, thiserror::Error)]
pub enum OtherFieldError {
    /// The field has the wrong type; the message names it.
    #[error("{0}")]
    Parse(String),
    /// The field is out of its range.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
}

/// The field names that serde's derive gives a settings struct (what `deserialize_struct`
/// is called with), so that a flat `[method]` table's fields can be told apart by method.
fn field_names<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Capture<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Capture<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("only the field names are read"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            self.deserialize_any(visitor)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // The error is the point: the names were captured on the way.
    let _ = T::deserialize(Capture(&mut fields));
    fields
}

/// The check of a quadratic penalty's strength λ (EWC, MAS, SI, TIR).
///
/// # Errors
/// [`InvalidValue`] for a negative or non-finite λ.
pub fn check_lambda(lambda: f64) -> Result<(), InvalidValue> {
    check(
        lambda.is_finite() && lambda >= 0.0,
        "method.lambda",
        lambda,
        "must be ≥ 0 and finite",
    )
}

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
    /// [`crate::learner::StageTraining::task_distances`]: pairwise Wasserstein distances among the
    /// seen tasks, the current one last (for TIR; empty otherwise).
    pub task_distances: &'a [Vec<f64>],
    /// The stage task's own training examples (no replay), encoded as for training: the data
    /// importances (Fisher, Ω) and the A-GEM memory are drawn from.
    pub task: &'a [Encoded],
    /// Examples per batch of the importance passes.
    pub batch_size: usize,
    /// Seed of the stage's random choices ([`crate::learner::StageTraining::seed`]).
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
    fn routes(&self) -> Option<&[routing::Expert]> {
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
    trainer: &mut ScheduledAdamW,
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
