//! The `trainer run` configuration: one TOML document with the sections `run`, `model`, `data`,
//! `embedding`, `strategy`, `tagger`, `training`, `method`, `eval`, `output` (documented field
//! by field in `trainer/configs/default.toml`, which is embedded as the default).
//!
//! Layering: the embedded default, then a user file (which needs only the fields it changes),
//! then `--set section.field=value` overrides; the result is checked as a whole: an unknown
//! field anywhere is an error naming its full path, an invalid value one naming field and value.

mod data;
mod embedding;
mod eval;
mod layers;
mod model;
mod output;
mod run;
mod strategy;
mod tagger;
mod training;

use std::path::Path;

use llama::io::stored::BasePrecision;
use serde::{Deserialize, Serialize};

pub use data::{DataConfig, DataFormat};
pub use embedding::{EmbeddingConfig, EmbeddingSource};
pub use eval::EvalConfig;
use layers::{apply_override, first_unknown, merge, rename_legacy_keys};
pub use model::ModelConfig;
pub use output::OutputConfig;
pub use run::RunConfig;
pub use strategy::{LLM_TAG_MERGE_THRESHOLD, RunStrategy, StrategyConfig, TagSource, TagSources};
pub use tagger::TaggerConfig;
pub use training::{Finetuning, Schedule, TrainingConfig};

use crate::invalid::{InvalidValue, check};
pub use crate::method::MethodConfig;
use crate::method::OtherFieldError;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../../configs/default.toml");

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What the whole run shares: the run seed.
    pub run: RunConfig,
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
            let mut layer: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                source_name: name.clone(),
                message: e.to_string(),
            })?;
            rename_legacy_keys(&mut layer, Some(&name));
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
        // The file layers were renamed with a notice as they were read (`load`).
        rename_legacy_keys(&mut table, None);
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
                self.strategy.name, self.strategy.alpha, self.run.seed
            )
        })
    }

    /// Each section checks its own fields; here only the rules that join sections.
    fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.training.adapter != Finetuning::Full
                || self.model.base_precision != BasePrecision::Bf16,
            "model.base_precision",
            self.model.base_precision,
            "full fine-tuning trains f32 weights; a bf16 base is for LoRA (set model.base_precision = \"f32\" or training.method = \"lora\")",
        )?;
        self.model.validate()?;
        self.data.validate()?;
        self.strategy.validate()?;
        self.embedding.validate()?;
        self.tagger.validate()?;
        self.training.validate()?;
        self.method.validate()?;
        self.validate_method_needs()?;
        self.eval.validate()?;
        self.output.validate()
    }

    /// What the CL method asks of the other sections.
    fn validate_method_needs(&self) -> Result<(), InvalidValue> {
        let m = &self.method;
        check(
            !m.settings().trains_adapters() || self.training.adapter == Finetuning::Lora,
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
        )
    }
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
