//! The dataset description's schema: [`Description`], its [`Entry`]s, their [`Formatting`]
//! and [`Columns`], parsed and checked entry by entry.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::Deserializer;
use serde::{Deserialize, de::Error as _};
use serde_json::Value;

use super::super::conversation::Tags;
use super::super::instruction::InstructionSource;
use super::super::prompt_only::InstructionRule;
use super::super::records::strings;
use super::ORDERS_KEY;
use crate::data::{DataError, Ordered, show_value};

/// One task of a dataset description.
///
/// Its records come from `file_name` (one file, a list, or a folder whose files are read in
/// name order; a seeded `held_out` fraction, default `data.held_out`, becomes the test split),
/// or from `train_file` and `test_file` (each one file or a list). A record whose every
/// reference output is blank is skipped and counted ([`DataReport::empty_outputs`]); a record
/// that lacks a mapped field, or has one of the wrong type, is an error naming the file, line
/// and field.
///
/// LLaMA-Factory's keys (`src/llamafactory/data/parser.py`, `DatasetAttr`, and its
/// `data/dataset_info.json`) are accepted as that file writes them: `file_sha1` is checked,
/// `num_samples` samples as LLaMA-Factory does, `ranking = true` is refused as LLaMA-Factory
/// refuses a preference dataset outside reward modelling and DPO (`loader.py`), a Hub or
/// script source (`hf_hub_url`, `ms_hub_url`, `om_hub_url`, `script_url`, `cloud_file_name`)
/// without local files is an error, and `subset`, `split`, `folder` and `revision` (Hub
/// options) are ignored with a notice. Only the entries a run uses are checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Files (or folders) split into train and test by `held_out`.
    #[serde(default, deserialize_with = "file_list")]
    pub file_name: Vec<String>,
    /// Training files (with `test_file`).
    #[serde(default, deserialize_with = "file_list")]
    pub train_file: Vec<String>,
    /// Test files (with `train_file`).
    #[serde(default, deserialize_with = "file_list")]
    pub test_file: Vec<String>,
    /// Held-out test fraction in `[0, 1)` for `file_name`; default `data.held_out`.
    #[serde(default)]
    pub held_out: Option<f64>,
    /// `alpaca` (default) or `sharegpt`.
    #[serde(default)]
    pub formatting: Formatting,
    /// Field names of the files.
    #[serde(default)]
    pub columns: Columns,
    /// Message keys and roles of `sharegpt` conversations.
    #[serde(default)]
    pub tags: Tags,
    /// For prompt-only records: how each prompt is cut into instruction and input
    /// ([`InstructionRule`]); without it the whole prompt is the instruction.
    #[serde(default)]
    pub derive_instruction: Option<InstructionRule>,
    /// The task's one instruction, given here or in a file keyed by task or category
    /// ([`InstructionSource`]); the records' prompt (if named) and query become the input.
    #[serde(default)]
    pub instruction: Option<InstructionSource>,
    /// LLaMA-Factory: SHA-1 (hex) of the single `file_name`, checked when present (`""`: none).
    #[serde(default, deserialize_with = "optional_name")]
    pub file_sha1: Option<String>,
    /// LLaMA-Factory: a preference dataset (chosen / rejected responses), for reward modelling
    /// and DPO only; `true` is refused when the entry is used.
    #[serde(default)]
    pub ranking: bool,
    /// LLaMA-Factory: use this many records, a seeded random sample of the entry's records
    /// (`file_name`, or `train_file`), repeating records when it exceeds them.
    #[serde(default)]
    pub num_samples: Option<usize>,
    /// LLaMA-Factory: the dataset on the Hugging Face Hub.
    #[serde(default)]
    pub hf_hub_url: Option<String>,
    /// LLaMA-Factory: the dataset on the ModelScope Hub.
    #[serde(default)]
    pub ms_hub_url: Option<String>,
    /// LLaMA-Factory: the dataset on the Modelers (OpenMind) Hub.
    #[serde(default)]
    pub om_hub_url: Option<String>,
    /// LLaMA-Factory: a folder holding a `datasets` loading script.
    #[serde(default)]
    pub script_url: Option<String>,
    /// LLaMA-Factory: a file in cloud storage.
    #[serde(default)]
    pub cloud_file_name: Option<String>,
    /// LLaMA-Factory's Hub options (ignored with a notice: local files are read whole).
    #[serde(default)]
    pub subset: Option<Value>,
    /// See [`Entry::subset`].
    #[serde(default)]
    pub split: Option<Value>,
    /// See [`Entry::subset`].
    #[serde(default)]
    pub folder: Option<Value>,
    /// See [`Entry::subset`].
    #[serde(default)]
    pub revision: Option<Value>,
}

/// How records are laid out (LLaMA-Factory's `formatting`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Formatting {
    /// One request per record: the instruction is `system` (if mapped) and `prompt` joined by
    /// a blank line, the input is the `history` transcript (if mapped) and `query` joined by
    /// a blank line, the outputs are `response`.
    #[default]
    Alpaca,
    /// A conversation per record (`messages`): an optional leading system turn, then user
    /// and assistant turns alternating, ending with an assistant turn. The last assistant
    /// turn is the output, the user turn before it the prompt, and the turns before those
    /// become the input's transcript (as `history` does for alpaca); earlier assistant turns
    /// are context, not targets.
    Sharegpt,
}

/// One column of [`Columns`] as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Column {
    /// Not given: LLaMA-Factory's default name, if the column has one.
    #[default]
    Default,
    /// `""` or `null`: the records have no such column (LLaMA-Factory's way of saying so), so
    /// not even the default name is read.
    Absent,
    /// This field.
    Field(String),
}

impl Column {
    /// The field to read: the named one, none for an absent column, else `default`.
    pub fn field<'a>(&'a self, default: Option<&'a str>) -> Option<&'a str> {
        match self {
            Column::Default => default,
            Column::Absent => None,
            Column::Field(field) => Some(field),
        }
    }

    /// The field, when one is named.
    pub fn named(&self) -> Option<&str> {
        self.field(None)
    }
}

/// Field names of a task's records (LLaMA-Factory's `columns`), each defaulting to
/// LLaMA-Factory's name; `""` (or `null`) says the records have no such column. Text fields
/// take a string or a list of strings: a list is joined with blank lines, except `response`,
/// whose list is several references (training uses the first, evaluation scores against
/// all). A field named here must be in every record (null reads as empty); an optional field
/// left at its default may be absent, and a default name that another column names is not
/// read twice (`"prompt": "input"` leaves the query empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// The instruction, or the whole prompt of prompt-only records (default `instruction`;
    /// required, non-empty, unless the entry has an `instruction`, which makes it part of the
    /// input and unread by default).
    #[serde(default, deserialize_with = "column")]
    pub prompt: Column,
    /// The instance input (default `input`; optional).
    #[serde(default, deserialize_with = "column")]
    pub query: Column,
    /// The reference output(s) (default `output`; required).
    #[serde(default, deserialize_with = "column")]
    pub response: Column,
    /// A system prompt put before the instruction (read only when named).
    #[serde(default, deserialize_with = "column")]
    pub system: Column,
    /// Earlier turns of alpaca records, a list of `[prompt, response]` pairs, rendered as
    /// `User: …` / `Assistant: …` lines at the start of the input (read only when named).
    #[serde(default, deserialize_with = "column")]
    pub history: Column,
    /// The conversation of sharegpt records (default `conversations`).
    #[serde(default, deserialize_with = "column")]
    pub messages: Column,
    /// Instance ids, strings or numbers (default `id`, optional; otherwise `<task>-<n>`).
    #[serde(default, deserialize_with = "column")]
    pub id: Column,
    /// A field holding a task name: when named, only the records whose value equals this
    /// entry's key are read, so several entries can share one file (read only when named).
    #[serde(default, deserialize_with = "column")]
    pub task: Column,
    /// LLaMA-Factory's columns of tool use, images, audio, video, preference pairs and KTO
    /// labels: a used entry that names one is refused (their content is not text this
    /// trainer can learn from, or would train on rejected answers).
    #[serde(default, deserialize_with = "column")]
    pub tools: Column,
    /// See [`Columns::tools`].
    #[serde(default, deserialize_with = "column")]
    pub images: Column,
    /// See [`Columns::tools`].
    #[serde(default, deserialize_with = "column")]
    pub videos: Column,
    /// See [`Columns::tools`].
    #[serde(default, deserialize_with = "column")]
    pub audios: Column,
    /// See [`Columns::tools`].
    #[serde(default, deserialize_with = "column")]
    pub chosen: Column,
    /// See [`Columns::tools`].
    #[serde(default, deserialize_with = "column")]
    pub rejected: Column,
    /// See [`Columns::tools`].
    #[serde(default, deserialize_with = "column")]
    pub kto_tag: Column,
}

impl Columns {
    /// The named fields of the columns this trainer reads.
    pub(super) fn named_fields(&self) -> Vec<&str> {
        [
            &self.prompt,
            &self.query,
            &self.response,
            &self.system,
            &self.history,
            &self.messages,
            &self.id,
            &self.task,
        ]
        .into_iter()
        .filter_map(Column::named)
        .collect()
    }

    /// The first named column that is refused, with why.
    fn refused(&self) -> Option<(&'static str, &'static str)> {
        [
            (&self.tools, "tools", "tool definitions are not read, so the model would learn function calls without them"),
            (&self.images, "images", "images are not read by a text model"),
            (&self.videos, "videos", "videos are not read by a text model"),
            (&self.audios, "audios", "audio is not read by a text model"),
            (&self.chosen, "chosen", "preference pairs are for reward modelling and DPO, not instruction tuning"),
            (&self.rejected, "rejected", "preference pairs are for reward modelling and DPO, not instruction tuning"),
            (&self.kto_tag, "kto_tag", "KTO labels mark some responses as undesirable, which supervised fine-tuning would learn too"),
        ]
        .into_iter()
        .find(|(column, _, _)| column.named().is_some())
        .map(|(_, name, why)| (name, why))
    }
}

/// A parsed dataset description.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The description file, as shown in errors.
    pub file: String,
    /// Named orders (`orders`), plus `file`, the tasks in file order, unless defined.
    pub orders: BTreeMap<String, Vec<String>>,
    /// The tasks in file order, each as written: parsed and checked by [`Description::entry`]
    /// only when a run uses it.
    pub entries: Vec<(String, Value)>,
}

impl Description {
    /// Reads the description `file`: the whole file must be JSON, an object of entries with
    /// no key defined twice, with well-formed `orders`; the entries are checked when used.
    ///
    /// # Errors
    /// [`DataError::Io`], [`DataError::Json`], or [`DataError::Description`] naming the
    /// entry at fault.
    pub fn read(file: &Path) -> Result<Self, DataError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|error| DataError::Io {
            file: name.clone(),
            error,
        })?;
        let Ordered(all) = serde_json::from_str(&text).map_err(|error| DataError::Json {
            file: name.clone(),
            error,
        })?;
        let problem = |key: &str, problem: String| DataError::Description {
            file: name.clone(),
            key: key.to_owned(),
            problem,
        };
        let mut orders = BTreeMap::new();
        let mut entries: Vec<(String, Value)> = Vec::new();
        for (key, value) in all {
            if key == ORDERS_KEY {
                orders = serde_json::from_value(value)
                    .map_err(|e| problem(&key, format!("expected {{name: [task, ...]}}: {e}")))?;
                continue;
            }
            if entries.iter().any(|(seen, _)| *seen == key) {
                return Err(problem(&key, "defined twice".to_owned()));
            }
            entries.push((key, value));
        }
        orders
            .entry("file".to_owned())
            .or_insert_with(|| entries.iter().map(|(key, _)| key.clone()).collect());
        Ok(Description {
            file: name,
            orders,
            entries,
        })
    }

    /// The entry of task `key`, parsed and checked.
    ///
    /// # Errors
    /// [`DataError::UnknownTask`], or [`DataError::Description`] naming the entry and the
    /// problem (unknown or mistyped field, no files or both kinds of files, `held_out` out of
    /// range, a column of the other formatting, a refused LLaMA-Factory key).
    pub fn entry(&self, key: &str) -> Result<Entry, DataError> {
        let (_, value) = self
            .entries
            .iter()
            .find(|(name, _)| name == key)
            .ok_or_else(|| DataError::UnknownTask {
                task: key.to_owned(),
                path: self.file.clone(),
            })?;
        let problem = |problem: String| DataError::Description {
            file: self.file.clone(),
            key: key.to_owned(),
            problem,
        };
        let entry: Entry =
            serde_json::from_value(value.clone()).map_err(|e| problem(e.to_string()))?;
        entry.check().map_err(problem)?;
        Ok(entry)
    }
}

impl Entry {
    /// LLaMA-Factory's Hub and script sources named by the entry, as (key, value).
    fn remote_sources(&self) -> Vec<(&'static str, &str)> {
        [
            ("hf_hub_url", &self.hf_hub_url),
            ("ms_hub_url", &self.ms_hub_url),
            ("om_hub_url", &self.om_hub_url),
            ("script_url", &self.script_url),
            ("cloud_file_name", &self.cloud_file_name),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_deref().map(|v| (key, v)))
        .collect()
    }

    /// The keys this entry has that are ignored, each with why (for one notice per key).
    pub(super) fn ignored_keys(&self) -> Vec<(&'static str, &'static str)> {
        let mut ignored: Vec<(&'static str, &'static str)> = [
            ("subset", &self.subset),
            ("split", &self.split),
            ("folder", &self.folder),
            ("revision", &self.revision),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, _)| {
            (
                key,
                "it selects part of a Hub dataset; local files are read whole (split by held_out, or train_file / test_file)",
            )
        })
        .collect();
        for (key, _) in self.remote_sources() {
            ignored.push((key, "the entry's local files are read instead"));
        }
        if self.tags.observation_tag.is_some() || self.tags.function_tag.is_some() {
            ignored.push((
                "tags.observation_tag/function_tag",
                "tool turns are not read (a conversation holding one is an error)",
            ));
        }
        ignored
    }

    /// The first inconsistency of the entry, if any.
    fn check(&self) -> Result<(), String> {
        let split = !self.train_file.is_empty() || !self.test_file.is_empty();
        if self.file_name.is_empty() && !split {
            return Err(match self.remote_sources().first() {
                Some((key, value)) => format!(
                    "LLaMA-Factory loads it from {key} {value:?}; trainer reads local files only: \
                     download the data and name its files in file_name (or train_file and test_file)"
                ),
                None => "needs file_name, or train_file and test_file".to_owned(),
            });
        }
        if !self.file_name.is_empty() && split {
            return Err(
                "has both file_name and train_file/test_file; give one or the other".to_owned(),
            );
        }
        if split && (self.train_file.is_empty() || self.test_file.is_empty()) {
            return Err(
                "needs both train_file and test_file (or file_name with held_out)".to_owned(),
            );
        }
        if let Some(fraction) = self.held_out {
            if split {
                return Err("held_out applies to file_name only".to_owned());
            }
            if !(0.0..1.0).contains(&fraction) {
                return Err("held_out must be in [0, 1)".to_owned());
            }
        }
        if self.ranking {
            return Err(
                "ranking = true: a preference dataset, which LLaMA-Factory uses for reward \
                 modelling and DPO only and refuses for supervised fine-tuning (loader.py: \
                 \"not applicable in the current training stage\"); instruction tuning needs \
                 a dataset of responses"
                    .to_owned(),
            );
        }
        if let Some((column, why)) = self.columns.refused() {
            return Err(format!("columns.{column}: {why}"));
        }
        if self.file_sha1.is_some() && self.file_name.len() != 1 {
            return Err(
                "file_sha1 checks a single file_name (as LLaMA-Factory's checksum)".to_owned(),
            );
        }
        if self.instruction.is_some() && self.derive_instruction.is_some() {
            return Err(
                "has both instruction and derive_instruction; the instruction comes from one"
                    .to_owned(),
            );
        }
        let c = &self.columns;
        match self.formatting {
            Formatting::Alpaca if c.messages != Column::Default || self.tags != Tags::default() => {
                Err("columns.messages and tags are for formatting = \"sharegpt\"".to_owned())
            }
            Formatting::Alpaca if c.prompt == Column::Absent && self.instruction.is_none() => Err(
                "columns.prompt is \"\" (no prompt column): give the task's instruction in \
                 instruction"
                    .to_owned(),
            ),
            Formatting::Alpaca if c.response == Column::Absent => {
                Err("columns.response is \"\": a task needs reference outputs".to_owned())
            }
            Formatting::Sharegpt
                if [&c.prompt, &c.query, &c.response, &c.history]
                    .iter()
                    .any(|column| column.named().is_some()) =>
            {
                Err("columns prompt, query, response and history are for formatting = \"alpaca\"; sharegpt reads columns.messages".to_owned())
            }
            Formatting::Sharegpt if c.messages == Column::Absent => {
                Err("columns.messages is \"\": a sharegpt task needs its conversations".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// A file name or a list of file names.
fn file_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    strings(&value).ok_or_else(|| {
        D::Error::custom(format!(
            "expected a file name or a list of file names, got {}",
            show_value(&value)
        ))
    })
}

/// A [`Column`]: a name, or `""` / `null` for none.
fn column<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Column, D::Error> {
    Ok(match optional_name(deserializer)? {
        None => Column::Absent,
        Some(field) => Column::Field(field),
    })
}

/// A name where `""` and `null` mean none (as LLaMA-Factory's files write "not given").
pub(crate) fn optional_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|name| !name.is_empty()))
}
