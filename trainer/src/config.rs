//! The `trainer run` configuration: one TOML document with the sections `model`, `data`,
//! `embedding`, `strategy`, `tagger`, `training`, `method`, `eval`, `output` (documented field
//! by field in `trainer/configs/default.toml`, which is embedded as the default).
//!
//! Layering: the embedded default, then a user file (which needs only the fields it changes),
//! then `--set section.field=value` overrides; the result is checked as a whole: an unknown
//! field anywhere is an error naming its full path, an invalid value one naming field and value.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use inscl::insinfo::TagNormalizer;
use inscl::replay::Strategy;
use inscl::similarity::SimilarityConfig;
use llama::device::DeviceChoice;
use llama::io::stored::BasePrecision;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::invalid::{InvalidValue, check};
pub use crate::method::MethodConfig;
use crate::method::OtherFieldError;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../configs/default.toml");

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which checkpoint, on which device.
    pub model: ModelConfig,
    /// Source, task order and sizes.
    pub data: DataConfig,
    /// The instruction embeddings behind the task distances.
    pub embedding: EmbeddingConfig,
    /// What is replayed.
    pub strategy: StrategyConfig,
    /// The chat model of the `llm` tag source.
    pub tagger: TaggerConfig,
    /// Optimiser and adapter settings.
    pub training: TrainingConfig,
    /// Absent in `run.json` files written before methods existed: plain fine-tuning.
    #[serde(default)]
    pub method: MethodConfig,
    /// Generation limits and metric settings.
    pub eval: EvalConfig,
    /// Where the run folder goes.
    pub output: OutputConfig,
}

/// `[model]`: which checkpoint, on which device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// GGUF file or HF model folder, relative to the working directory, or
    /// `hf:owner/name[@revision]` (builds with the `hub` feature).
    pub path: String,
    /// `auto`, `gpu`, `cuda`, `wgpu` or `cpu` ([`llama::device::DeviceChoice`]).
    pub device: String,
    /// The precision the frozen base of LoRA keeps: `stored` (as in the checkpoint: bf16,
    /// f16 or a GGUF block format), `f32` or `bf16` (re-encoded). Full fine-tuning trains f32
    /// weights: `stored` loads them as f32 there and `bf16` is refused. Absent in `run.json`
    /// files written before the field existed, whose runs dequantised everything: `f32`.
    #[serde(default = "f32_base")]
    pub base_precision: BasePrecision,
}

/// What runs recorded before `model.base_precision` existed used.
fn f32_base() -> BasePrecision {
    BasePrecision::F32
}

/// Which weights embed the instructions that task distances compare (`[embedding] source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingSource {
    /// The pretrained model with adapters off, once per run: every W of every stage compares
    /// points of one space (as the official InsCL code, which reads one precomputed file).
    Base,
    /// The model after the previous stage: at each stage every seen task is embedded again,
    /// so both sides of each W come from the same model.
    Current,
    /// Vectors from `embedding.file` (an external sentence encoder).
    File,
}

impl EmbeddingSource {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            EmbeddingSource::Base => "base",
            EmbeddingSource::Current => "current",
            EmbeddingSource::File => "file",
        }
    }
}

/// `[embedding]`: the instruction embeddings behind the task distances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Which weights embed the instructions.
    pub source: EmbeddingSource,
    /// Hidden layer mean-pooled into instruction embeddings (0 = token embeddings); `None` =
    /// last layer. For `base` and `current`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// For `file`: JSON or JSONL vectors keyed by instruction id or text
    /// ([`crate::run::embedding`]), relative to the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// `[tagger]`: the chat model of the `llm` tag source: a local checkpoint, or an
/// OpenAI-compatible server (`endpoint`: OpenAI, vLLM, llama.cpp's server, Ollama, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggerConfig {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com/v1`,
    /// `http://127.0.0.1:8080/v1`; a URL ending in `/chat/completions` is taken as it is);
    /// `None` = a local checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// With `endpoint`: the API's model name (required). Without: the GGUF file or HF folder
    /// of the tagging chat model; `None` = the run's base model (adapters off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The environment variable holding the API key (sent as `Authorization: Bearer`; unset
    /// = no key, as local servers need). The key itself is never written to a file or a log.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    /// Requests to the endpoint in flight at once (≥ 1).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds one request may take, connection to last byte (≥ 1).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Retries of a request answered 429 or 5xx, or cut by a timeout or a dropped connection,
    /// with exponential backoff (1 s, 2 s, 4 s, ...; a `Retry-After` header wins).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Tokens generated per instruction (≥ 8).
    pub max_new_tokens: usize,
    /// Instructions tagged per batch (≥ 1); `tags.json` is saved after each.
    pub batch_size: usize,
}

fn default_api_key_env() -> String {
    "OPENAI_API_KEY".to_owned()
}

fn default_concurrency() -> usize {
    4
}

fn default_timeout_seconds() -> u64 {
    120
}

fn default_max_retries() -> u32 {
    5
}

/// Data source kind of `[data]` (see [`crate::data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// A folder of `<task>/{train,test}.json`, orders from `orders.json`.
    Benchmark,
    /// A folder of SuperNI task files; a seeded held-out fraction is the test split.
    Superni,
    /// InsCL16's `categories.json`: each category one task.
    Categories,
    /// Alpaca records (`instruction`, `input`, `output`, optional `task`) as JSON or JSON Lines.
    Alpaca,
    /// A dataset description (`dataset_info.json`, as LLaMA-Factory's) naming each task's
    /// files, formatting and column mapping ([`crate::data::described`]).
    Described,
}

/// `[data]`: source, order and sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The kind of source.
    pub format: DataFormat,
    /// Folder (benchmark, superni), `categories.json` (or its folder), Alpaca file, or
    /// dataset description (or a folder holding `dataset_info.json`), relative to the working
    /// directory.
    pub path: String,
    /// Named order of the source; ignored when `tasks` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// Whether the task selection (`tasks`, else `order`) is the embedded default's while the
    /// user changed the data source (`path` or `format`) without naming an order or a task
    /// list: then a source that lacks the default's tasks or order runs in its file order,
    /// with a notice, instead of failing. Set by [`Config::load`]; never serialised (a run
    /// records the selection it resolved to: [`crate::data::resolved_config`]).
    #[serde(skip)]
    pub selection_inherited: bool,
    /// Explicit task list (wins over `order`).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Keep only the first N tasks of the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<usize>,
    /// At most this many training instances per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train: Option<usize>,
    /// At most this many test instances per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_test: Option<usize>,
    /// Held-out test fraction in `[0, 1)` for sources without a test split.
    pub held_out: f64,
    /// Seed of the held-out split and of the caps.
    pub split_seed: u64,
    /// Drop repeated instances within a split and test instances that are also training
    /// instances (same instruction and input), keeping first occurrences; the counts are in
    /// `run.json` either way ([`inscl::artifact::DataReport`]).
    #[serde(default)]
    pub dedup: bool,
}

/// A run strategy: a sequential replay strategy of the core crate, or one of the two
/// non-sequential references. Written as its name: `none`, `random`, `dynamic`, `insinfo`,
/// `inscl`, `multitask`, `single`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStrategy {
    /// Sequential fine-tuning with this replay strategy.
    Sequential(Strategy),
    /// All tasks trained jointly in one stage (the upper bound of continual learning).
    Multitask,
    /// Every task trained alone from the base model (the per-task upper bounds that
    /// Relative Gain divides by).
    Single,
}

impl RunStrategy {
    /// Every strategy: the core crate's sequential ones, then multitask and single.
    pub const ALL: [RunStrategy; 7] = [
        RunStrategy::Sequential(Strategy::ALL[0]),
        RunStrategy::Sequential(Strategy::ALL[1]),
        RunStrategy::Sequential(Strategy::ALL[2]),
        RunStrategy::Sequential(Strategy::ALL[3]),
        RunStrategy::Sequential(Strategy::ALL[4]),
        RunStrategy::Multitask,
        RunStrategy::Single,
    ];

    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            RunStrategy::Sequential(s) => s.name(),
            RunStrategy::Multitask => "multitask",
            RunStrategy::Single => "single",
        }
    }
}

impl fmt::Display for RunStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RunStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "multitask" => Ok(RunStrategy::Multitask),
            "single" => Ok(RunStrategy::Single),
            _ => s.parse().map(RunStrategy::Sequential).map_err(|_| {
                let names: Vec<&str> = Self::ALL.iter().map(|r| r.name()).collect();
                format!(
                    "unknown strategy {s:?}; expected one of: {}",
                    names.join(", ")
                )
            }),
        }
    }
}

impl Serialize for RunStrategy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for RunStrategy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One source of InsInfo tags (see [`crate::tags`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagSource {
    /// SuperNI `Categories` / `Reasoning` / `Domains`.
    Metadata,
    /// YAKE keyphrases of the instruction text.
    Keyphrase,
    /// An external tagger's JSONL file (`strategy.tag_file`).
    File,
    /// Intention tags written by a chat model with InsTag's prompt ([`crate::tags::llm`]).
    Llm,
}

impl TagSource {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            TagSource::Metadata => "metadata",
            TagSource::Keyphrase => "keyphrase",
            TagSource::File => "file",
            TagSource::Llm => "llm",
        }
    }
}

/// A `+`-joined set of tag sources, e.g. `metadata+keyphrase`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSources(pub Vec<TagSource>);

impl FromStr for TagSources {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut sources: Vec<TagSource> = s
            .split('+')
            .map(|part| match part.trim() {
                "metadata" => Ok(TagSource::Metadata),
                "keyphrase" => Ok(TagSource::Keyphrase),
                "file" => Ok(TagSource::File),
                "llm" => Ok(TagSource::Llm),
                other => Err(format!(
                    "unknown tagger {other:?} in {s:?}; expected metadata, keyphrase, file, llm or a `+` combination"
                )),
            })
            .collect::<Result<_, _>>()?;
        sources.sort();
        sources.dedup();
        Ok(TagSources(sources))
    }
}

impl fmt::Display for TagSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.name()).collect();
        f.write_str(&names.join("+"))
    }
}

impl Serialize for TagSources {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TagSources {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// `[strategy]`: what is replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// The replay strategy.
    pub name: RunStrategy,
    /// Replayed instances per previous stage α.
    pub alpha: usize,
    /// The run seed (`--seed`): reaches every random choice of a run — LoRA initialisation,
    /// replay sampling, the training mix's shuffle, batch order and dropout — but not the data
    /// split (`data.split_seed`).
    pub seed: u64,
    /// Tag sources for InsInfo.
    pub tags: TagSources,
    /// External tagger output for the `file` source (InsTag or GPT-4 tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_file: Option<String>,
    /// YAKE keyphrases per instruction for the `keyphrase` source.
    pub keyphrases: usize,
    /// Task distance settings (cost, weights, solver, precision of the cost products).
    pub similarity: SimilarityConfig,
    /// Tag normalisation for InsInfo; see [`StrategyConfig::effective_tag_normalizer`].
    pub tag_normalizer: TagNormalizer,
}

/// Near-duplicate merge threshold used for LLM tags when `merge_threshold` is not set: LLM
/// tags vary in spelling ("code generation" / "code generator"), which the official InsCL code
/// merges (DBSCAN over phrase embeddings, `tag_utils.py`); here the core crate's edit-distance
/// merge ([`TagNormalizer::merge_near_duplicates`]).
pub const LLM_TAG_MERGE_THRESHOLD: f64 = 0.8;

impl StrategyConfig {
    /// The tag normalisation the planner uses: `tag_normalizer`, with near-duplicate merging at
    /// [`LLM_TAG_MERGE_THRESHOLD`] when the tags include `llm` and no threshold is set.
    pub fn effective_tag_normalizer(&self) -> TagNormalizer {
        let mut normalizer = self.tag_normalizer;
        if normalizer.merge_threshold.is_none() && self.tags.0.contains(&TagSource::Llm) {
            normalizer.merge_threshold = Some(LLM_TAG_MERGE_THRESHOLD);
        }
        normalizer
    }
}

/// Which weights fine-tuning trains (`[training] method`): LoRA adapters or all weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finetuning {
    /// LoRA adapters on the frozen base weights.
    Lora,
    /// Every weight.
    Full,
}

/// Learning-rate schedule after the linear warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Cosine decay to 0.
    Cosine,
    /// Linear decay to 0.
    Linear,
    /// The peak rate throughout.
    Constant,
}

/// `[training]`: optimiser and adapter settings, handed to the [`crate::learner::Learner`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// LoRA or full fine-tuning.
    pub method: Finetuning,
    /// Passes over each stage's training mix (≥ 1).
    pub epochs: usize,
    /// Peak learning rate (> 0).
    pub lr: f64,
    /// Learning-rate schedule after the warmup.
    pub schedule: Schedule,
    /// Fraction of the steps with linear warmup, in `[0, 1)`.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay (≥ 0).
    pub weight_decay: f64,
    /// Examples per micro-batch (≥ 1).
    pub batch_size: usize,
    /// Micro-batches per optimiser step (≥ 1).
    pub grad_accumulation: usize,
    /// Tokens per example (prompt + response), longer ones truncated (≥ 8).
    pub max_length: usize,
    /// Global gradient-norm clip (> 0).
    pub clip_norm: f64,
    /// LoRA rank r (≥ 1).
    pub lora_rank: usize,
    /// LoRA scale numerator: the update is multiplied by `lora_alpha / r` (> 0).
    pub lora_alpha: f64,
    /// Dropout on the LoRA adapters' input, in [0, 1).
    pub lora_dropout: f64,
    /// Among q, k, v, o, gate, up, down.
    pub lora_targets: Vec<String>,
    /// Recompute each decoder layer's activations in the backward pass instead of keeping
    /// them (activation checkpointing): activation memory of one layer instead of all.
    #[serde(default)]
    pub checkpoint_layers: bool,
    /// Pad batch widths, generation prompts and attended KV-cache positions to multiples of
    /// this many tokens ([`llama::shapes`]), so that a GPU compiles and tunes its kernels
    /// once per bucket; 0 = exact shapes. Unset: 64 on a GPU, exact shapes on the CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<usize>,
}

/// `[eval]`: generation limits and metric settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Generation budget per test instance, in tokens; with `budget_from_data` the cap of
    /// each task's own budget.
    pub max_new_tokens: usize,
    /// Each task's budget from its gold outputs: the `budget_quantile` quantile of the token
    /// lengths of its training split's outputs plus `budget_margin`, at most `max_new_tokens`
    /// ([`crate::run::eval::generation_budget`]).
    pub budget_from_data: bool,
    /// In (0, 1].
    pub budget_quantile: f64,
    /// Tokens added to the quantile (room for the end-of-turn token and longer answers).
    pub budget_margin: usize,
    /// Rows decoding at once ([`llama::generate::generate_queued`]: a row that stops hands its
    /// place to the next prompt).
    pub batch_size: usize,
    /// Evaluate every task before stage 1 (needed for FWT).
    pub zero_shot: bool,
    /// Porter stemming inside ROUGE-L, as SuperNI.
    pub stem: bool,
    /// Folder of a finished `single` run; its diagonal are the upper bounds of Relative Gain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_bounds: Option<String>,
}

/// `[output]`: where the run folder goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Folder of the run folders, relative to the working directory.
    pub dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run folder name; `None` = `<strategy>-a<alpha>-s<seed>`.
    pub name: Option<String>,
    /// Checkpoints kept (≥ 1: resuming needs the last one).
    pub keep_checkpoints: usize,
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {error}")]
    Io {
        /// The file, as given.
        file: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// TOML syntax error or a field of the wrong type (the message names the field).
    #[error("{source_name}: {message}")]
    Parse {
        /// The file, or `embedded default` / `run.json config`.
        source_name: String,
        /// The parser's message, naming the field.
        message: String,
    },
    /// A field no section has.
    #[error("unknown config field `{path}`")]
    UnknownField {
        /// The field path, e.g. `strategy.similarity.kost`.
        path: String,
    },
    /// A field whose value is out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// A `--set` argument that is not `section.field=value`.
    #[error("override {arg:?} is not of the form section.field=value")]
    BadOverride {
        /// The argument as given.
        arg: String,
    },
}

impl Config {
    /// The embedded default.
    ///
    /// # Panics
    /// When the embedded `configs/default.toml` is invalid (a build defect, caught by the tests).
    pub fn embedded_default() -> Self {
        Self::load(None, &[]).expect("the embedded default configuration is valid")
    }

    /// Default, then `file` (if any), then `overrides` (`section.field=value`, value in TOML
    /// syntax; a bare word is taken as a string), then validation.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, field path and value.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(DEFAULT_TOML).map_err(|e| ConfigError::Parse {
                source_name: "embedded default".into(),
                message: e.to_string(),
            })?;
        // What the user's layers set, apart from the default (for `data.selection_inherited`).
        let default_data = table.get("data").cloned();
        let mut user = toml::Table::new();
        if let Some(file) = file {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Io {
                file: name.clone(),
                error,
            })?;
            let layer: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                source_name: name,
                message: e.to_string(),
            })?;
            merge(&mut user, layer.clone());
            merge(&mut table, layer);
        }
        for arg in overrides {
            apply_override(&mut table, arg)?;
            apply_override(&mut user, arg)?;
        }
        let source_changed = ["path", "format"].iter().any(|key| {
            let given = user.get("data").and_then(|d| d.get(*key));
            given.is_some() && given != default_data.as_ref().and_then(|d| d.get(*key))
        });
        let named = |key: &str| user.get("data").and_then(|d| d.get(key)).is_some();
        let (order_named, tasks_named) = (named("order"), named("tasks"));
        let mut config = Self::from_table(table, "configuration")?;
        // An order the user names replaces the embedded default's task list (which would
        // otherwise win over any order).
        if order_named && !tasks_named {
            config.data.tasks.clear();
        }
        config.data.selection_inherited = source_changed
            && !order_named
            && !tasks_named
            && (config.data.order.is_some() || !config.data.tasks.is_empty());
        Ok(config)
    }

    /// Parses and validates a complete configuration given as JSON (as stored in `run.json`).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_json(value: &serde_json::Value) -> Result<Self, ConfigError> {
        // TOML has no null: an absent optional field is written as null in JSON.
        fn strip_nulls(value: &serde_json::Value) -> serde_json::Value {
            match value {
                serde_json::Value::Object(map) => serde_json::Value::Object(
                    map.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, v)| (k.clone(), strip_nulls(v)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }
        let table: toml::Table =
            serde_json::from_value(strip_nulls(value)).map_err(|e| ConfigError::Parse {
                source_name: "run.json config".into(),
                message: e.to_string(),
            })?;
        Self::from_table(table, "run.json config")
    }

    fn from_table(mut table: toml::Table, source_name: &str) -> Result<Self, ConfigError> {
        if let Some(toml::Value::Table(method)) = table.get_mut("method") {
            let name = method
                .get("name")
                .and_then(toml::Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let dropped = MethodConfig::take_other_methods_fields(method).map_err(|e| match e {
                OtherFieldError::Invalid(invalid) => ConfigError::Invalid(invalid),
                OtherFieldError::Parse(message) => ConfigError::Parse {
                    source_name: source_name.into(),
                    message,
                },
            })?;
            if !dropped.is_empty() {
                notice(&format!(
                    "{source_name}: method {name} ignores the [method] fields of other methods: \
                     {} (older configs wrote every method's fields in one [method])",
                    dropped.join(", ")
                ));
            }
        }
        let config: Config =
            toml::Value::Table(table.clone())
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    source_name: source_name.into(),
                    message: e.message().to_owned(),
                })?;
        // serde skips unknown fields of the core crate's types; a round trip finds them all.
        let known = toml::Table::try_from(&config).expect("config serialises to TOML");
        if let Some(path) = first_unknown(&table, &known, "") {
            return Err(ConfigError::UnknownField { path });
        }
        config.validate()?;
        Ok(config)
    }

    /// The configuration as JSON, for `run.json`.
    ///
    /// # Panics
    /// Never: every field serialises to JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("config serialises to JSON")
    }

    /// The run folder name: `output.name`, or `<strategy>-a<alpha>-s<seed>`, with the method
    /// after the strategy when it is not `seq` (`inscl-ewc-a16-s0`).
    pub fn run_name(&self) -> String {
        self.output.name.clone().unwrap_or_else(|| {
            let method = match &self.method {
                MethodConfig::Seq(_) => String::new(),
                other => format!("-{}", other.name()),
            };
            format!(
                "{}{method}-a{}-s{}",
                self.strategy.name, self.strategy.alpha, self.strategy.seed
            )
        })
    }

    fn validate(&self) -> Result<(), InvalidValue> {
        let t = &self.training;
        check(
            t.method != Finetuning::Full || self.model.base_precision != BasePrecision::Bf16,
            "model.base_precision",
            self.model.base_precision,
            "full fine-tuning trains f32 weights; a bf16 base is for LoRA (set model.base_precision = \"f32\" or training.method = \"lora\")",
        )?;
        check(
            self.model.device.parse::<DeviceChoice>().is_ok(),
            "model.device",
            &self.model.device,
            "expected auto, gpu, cuda, wgpu or cpu",
        )?;
        check(
            (0.0..1.0).contains(&self.data.held_out),
            "data.held_out",
            self.data.held_out,
            "must be in [0, 1)",
        )?;
        check(
            self.data.max_train != Some(0),
            "data.max_train",
            0,
            "must be at least 1",
        )?;
        check(
            self.data.max_test != Some(0),
            "data.max_test",
            0,
            "must be at least 1",
        )?;
        check(
            self.strategy.keyphrases > 0 || !self.strategy.tags.0.contains(&TagSource::Keyphrase),
            "strategy.keyphrases",
            self.strategy.keyphrases,
            "must be at least 1 with the keyphrase tagger",
        )?;
        check(
            self.strategy.tag_file.is_some() || !self.strategy.tags.0.contains(&TagSource::File),
            "strategy.tag_file",
            "(missing)",
            "the file tagger needs strategy.tag_file",
        )?;
        check(
            self.embedding.file.is_some() || self.embedding.source != EmbeddingSource::File,
            "embedding.file",
            "(missing)",
            "embedding.source = \"file\" needs embedding.file",
        )?;
        check(
            self.tagger.max_new_tokens >= 8,
            "tagger.max_new_tokens",
            self.tagger.max_new_tokens,
            "must be at least 8",
        )?;
        check(
            self.tagger.batch_size >= 1,
            "tagger.batch_size",
            self.tagger.batch_size,
            "must be at least 1",
        )?;
        if let Some(endpoint) = &self.tagger.endpoint {
            check(
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "tagger.endpoint",
                endpoint,
                "expected an http:// or https:// URL",
            )?;
            check(
                self.tagger.model.is_some(),
                "tagger.model",
                "(missing)",
                "tagger.endpoint needs tagger.model, the API's model name",
            )?;
        }
        let key_env = &self.tagger.api_key_env;
        check(
            !key_env.is_empty()
                && key_env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "tagger.api_key_env",
            key_env,
            "expected an environment variable name (letters, digits, _)",
        )?;
        check(
            self.tagger.concurrency >= 1,
            "tagger.concurrency",
            self.tagger.concurrency,
            "must be at least 1",
        )?;
        check(
            self.tagger.timeout_seconds >= 1,
            "tagger.timeout_seconds",
            self.tagger.timeout_seconds,
            "must be at least 1",
        )?;
        check(
            self.eval.budget_quantile > 0.0 && self.eval.budget_quantile <= 1.0,
            "eval.budget_quantile",
            self.eval.budget_quantile,
            "must be in (0, 1]",
        )?;
        check(
            t.epochs >= 1,
            "training.epochs",
            t.epochs,
            "must be at least 1",
        )?;
        check(
            t.lr.is_finite() && t.lr > 0.0,
            "training.lr",
            t.lr,
            "must be positive and finite",
        )?;
        check(
            (0.0..1.0).contains(&t.warmup_ratio),
            "training.warmup_ratio",
            t.warmup_ratio,
            "must be in [0, 1)",
        )?;
        check(
            t.weight_decay.is_finite() && t.weight_decay >= 0.0,
            "training.weight_decay",
            t.weight_decay,
            "must be ≥ 0",
        )?;
        check(
            t.batch_size >= 1,
            "training.batch_size",
            t.batch_size,
            "must be at least 1",
        )?;
        check(
            t.grad_accumulation >= 1,
            "training.grad_accumulation",
            t.grad_accumulation,
            "must be at least 1",
        )?;
        check(
            t.max_length >= 8,
            "training.max_length",
            t.max_length,
            "must be at least 8 tokens",
        )?;
        check(
            t.clip_norm.is_finite() && t.clip_norm > 0.0,
            "training.clip_norm",
            t.clip_norm,
            "must be positive",
        )?;
        check(
            t.lora_rank >= 1,
            "training.lora_rank",
            t.lora_rank,
            "must be at least 1",
        )?;
        check(
            t.lora_alpha.is_finite() && t.lora_alpha > 0.0,
            "training.lora_alpha",
            t.lora_alpha,
            "must be positive",
        )?;
        check(
            (0.0..1.0).contains(&t.lora_dropout),
            "training.lora_dropout",
            t.lora_dropout,
            "must be in [0, 1)",
        )?;
        check(
            !t.lora_targets.is_empty(),
            "training.lora_targets",
            "[]",
            "needs at least one module",
        )?;
        for target in &t.lora_targets {
            check(
                ["q", "k", "v", "o", "gate", "up", "down"].contains(&target.as_str()),
                "training.lora_targets",
                target,
                "expected q, k, v, o, gate, up or down",
            )?;
        }
        let m = &self.method;
        m.validate()?;
        check(
            !m.settings().trains_adapters() || t.method == Finetuning::Lora,
            "method.name",
            m.name(),
            "trains LoRA adapters: needs training.method = \"lora\"",
        )?;
        check(
            !m.settings().reads_task_similarity()
                || self.strategy.similarity.cost == inscl::ot::cost::CostKind::Cosine,
            "method.name",
            m.name(),
            "reads 1 − W of the task distances as a similarity: needs \
             strategy.similarity.cost = \"cosine\"",
        )?;
        check(
            matches!(m, MethodConfig::Seq(_)) || self.strategy.name != RunStrategy::Single,
            "method.name",
            m.name(),
            "strategy single trains every task from the base model, so a method has nothing to \
             carry: use method.name = \"seq\"",
        )?;
        check(
            self.eval.max_new_tokens >= 1,
            "eval.max_new_tokens",
            self.eval.max_new_tokens,
            "must be at least 1",
        )?;
        check(
            self.eval.batch_size >= 1,
            "eval.batch_size",
            self.eval.batch_size,
            "must be at least 1",
        )?;
        check(
            self.output.keep_checkpoints >= 1,
            "output.keep_checkpoints",
            self.output.keep_checkpoints,
            "must be at least 1 (resume needs the last checkpoint)",
        )?;
        if let Some(name) = &self.output.name {
            check(
                !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
                "output.name",
                name,
                "must be a plain folder name",
            )?;
        }
        Ok(())
    }
}

/// Deep merge: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadOverride {
        arg: arg.to_owned(),
    };
    let (path, raw) = arg.split_once('=').ok_or_else(bad)?;
    let keys: Vec<&str> = path.trim().split('.').collect();
    if keys.len() < 2 || keys.iter().any(|k| k.is_empty()) {
        return Err(bad());
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let mut node = table;
    for key in &keys[..keys.len() - 1] {
        let entry = node
            .entry(key.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::UnknownField {
                    path: path.to_owned(),
                });
            }
        };
    }
    node.insert(keys[keys.len() - 1].to_owned(), value);
    Ok(())
}

/// The first key path of `given` that `known` (the parsed config serialised back) lacks.
fn first_unknown(given: &toml::Table, known: &toml::Table, prefix: &str) -> Option<String> {
    given.iter().find_map(|(key, value)| {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (value, known.get(key)) {
            (_, None) => Some(path),
            (toml::Value::Table(g), Some(toml::Value::Table(k))) => first_unknown(g, k, &path),
            _ => None,
        }
    })
}

/// Prints `message` on stderr as a notice, once per process (a study reads many `run.json`
/// files written by one older version).
fn notice(message: &str) {
    static SHOWN: std::sync::Mutex<std::collections::BTreeSet<String>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut shown = SHOWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if shown.insert(message.to_owned()) {
        eprintln!("notice: {message}");
    }
}
