//! `[strategy]`: what is replayed, and the run strategy's name.

use std::fmt;
use std::str::FromStr;

use inscl::insinfo::TagNormalizer;
use inscl::replay::Strategy;
use inscl::similarity::SimilarityConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::invalid::{InvalidValue, check};

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

impl StrategyConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.keyphrases > 0 || !self.tags.0.contains(&TagSource::Keyphrase),
            "strategy.keyphrases",
            self.keyphrases,
            "must be at least 1 with the keyphrase tagger",
        )?;
        check(
            self.tag_file.is_some() || !self.tags.0.contains(&TagSource::File),
            "strategy.tag_file",
            "(missing)",
            "the file tagger needs strategy.tag_file",
        )
    }
}
