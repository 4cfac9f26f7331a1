//! `[embedding]`: the instruction embeddings behind the task distances.

use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

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

impl EmbeddingConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.file.is_some() || self.source != EmbeddingSource::File,
            "embedding.file",
            "(missing)",
            "embedding.source = \"file\" needs embedding.file",
        )
    }
}
