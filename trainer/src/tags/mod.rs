//! Instruction taggers for InsInfo (InsCL §3.2 tags instructions with GPT-4 and InsTag's
//! prompt):
//!
//! - `metadata`: the SuperNI `Categories`, `Reasoning` and `Domains` of the instruction's task;
//!   hierarchical values `"A -> B"` give the tags `A` and `B`.
//! - `keyphrase`: the top-k YAKE keyphrases of the instruction text (crate `yake-rust`,
//!   English stop words, default YAKE settings: up to 3-grams, deduplication at 0.9).
//! - `file`: tags from an external tagger such as InsTag, a JSONL file of
//!   `{"instruction_id": ID | "text": TEXT, "tags": [..]}` where ID is
//!   [`crate::data::instruction_id`] of the text;
//! - `llm`: intention tags written by a chat model with InsTag's prompt ([`llm`]): a local
//!   checkpoint or an OpenAI-compatible server ([`api`]), tagged once per run before stage 1
//!   and cached in the run folder.
//!
//! Sources combine as a union in order (`metadata+keyphrase` is the default). Raw tags are
//! returned as written; the planner normalises them ([`inscl::insinfo::TagNormalizer`]).

pub mod api;
pub mod llm;

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::{StrategyConfig, TagSource};
use crate::data::{InstructionGroup, TaskData};
use llm::LlmTagFile;

/// Why the tag file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TagError {
    /// The tag file could not be read.
    #[error("{file}: {error}")]
    Io {
        /// The file, as given.
        file: String,
        /// The parser's error.
        error: std::io::Error,
    },
    /// A JSONL line that is not a tag record.
    #[error(
        "{file}:{line}: expected {{\"instruction_id\" | \"text\": ..., \"tags\": [...]}}: {error}"
    )]
    Record {
        /// The file, as given.
        file: String,
        /// 1-based line of the file.
        line: usize,
        /// The parser's error.
        error: serde_json::Error,
    },
    /// A record with neither an id nor a text.
    #[error("{file}:{line}: record has neither \"instruction_id\" nor \"text\"")]
    NoKey {
        /// The file, as given.
        file: String,
        /// 1-based line of the file.
        line: usize,
    },
}

/// Produces the raw tags of an instruction from the configured sources.
#[derive(Debug, Clone)]
pub struct Tagger {
    sources: Vec<TagSource>,
    keyphrases: usize,
    by_id: HashMap<String, Vec<String>>,
    by_text: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct TagRecord {
    #[serde(default)]
    instruction_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    tags: Vec<String>,
}

impl Tagger {
    /// A tagger for `config.tags`; reads `config.tag_file` (relative to `root`) for `file`.
    ///
    /// # Errors
    /// [`TagError`] for an unreadable or malformed tag file.
    pub fn new(config: &StrategyConfig, root: &Path) -> Result<Self, TagError> {
        let mut tagger = Tagger {
            sources: config.tags.0.clone(),
            keyphrases: config.keyphrases,
            by_id: HashMap::new(),
            by_text: HashMap::new(),
        };
        if let (true, Some(file)) = (tagger.sources.contains(&TagSource::File), &config.tag_file) {
            let path = root.join(file);
            let name = path.display().to_string();
            let text = std::fs::read_to_string(&path).map_err(|error| TagError::Io {
                file: name.clone(),
                error,
            })?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let record: TagRecord =
                    serde_json::from_str(line).map_err(|error| TagError::Record {
                        file: name.clone(),
                        line: n + 1,
                        error,
                    })?;
                match (record.instruction_id, record.text) {
                    (Some(id), _) => tagger.by_id.entry(id).or_default().extend(record.tags),
                    (None, Some(text)) => {
                        tagger.by_text.entry(text).or_default().extend(record.tags);
                    }
                    (None, None) => {
                        return Err(TagError::NoKey {
                            file: name,
                            line: n + 1,
                        });
                    }
                }
            }
        }
        Ok(tagger)
    }

    /// Whether the `llm` source is on (its tags must be made with [`llm::tag_missing`] first).
    pub fn uses_llm(&self) -> bool {
        self.sources.contains(&TagSource::Llm)
    }

    /// Keyphrases per instruction (the `keyphrase` source, and the `llm` source's fallback).
    pub fn keyphrase_count(&self) -> usize {
        self.keyphrases
    }

    /// Raw tags of one instruction of `task`, without duplicates, in source order; the `llm`
    /// source's from `llm` (empty when `llm` lacks the instruction).
    pub fn tags(
        &self,
        task: &TaskData,
        instruction: &InstructionGroup,
        llm: Option<&LlmTagFile>,
    ) -> Vec<String> {
        let mut tags: Vec<String> = Vec::new();
        for source in &self.sources {
            let found: Vec<String> = match source {
                TagSource::Metadata => task
                    .metadata
                    .get(&instruction.text)
                    .map(|values| metadata_tags(values))
                    .unwrap_or_default(),
                TagSource::Keyphrase => keyphrases(&instruction.text, self.keyphrases),
                TagSource::File => self
                    .by_id
                    .get(&instruction.id)
                    .or_else(|| self.by_text.get(&instruction.text))
                    .cloned()
                    .unwrap_or_default(),
                TagSource::Llm => llm
                    .and_then(|file| file.get(&instruction.text))
                    .map(|record| record.tags.clone())
                    .unwrap_or_default(),
            };
            for tag in found {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
        tags
    }
}

/// SuperNI metadata values as tags: `"Commonsense Reasoning -> Social Situations"` gives
/// `Commonsense Reasoning` and `Social Situations`; blanks are dropped.
pub fn metadata_tags(values: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for part in values.iter().flat_map(|v| v.split("->")) {
        let part = part.trim();
        if !part.is_empty() && !tags.iter().any(|t| t == part) {
            tags.push(part.to_owned());
        }
    }
    tags
}

/// The `k` best YAKE keyphrases of `text` (lower-case), best first.
///
/// # Panics
/// Never: the crate is built with yake-rust's `en` stop words.
pub fn keyphrases(text: &str, k: usize) -> Vec<String> {
    let stop_words =
        yake_rust::StopWords::predefined("en").expect("the `en` feature of yake-rust is enabled");
    yake_rust::get_n_best(k, text, &stop_words, &yake_rust::Config::default())
        .into_iter()
        .map(|item| item.keyword)
        .collect()
}
