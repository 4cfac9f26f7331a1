//! `[data] format = "described"`: a benchmark brought as it is, described by a JSON file in the
//! manner of LLaMA-Factory's `dataset_info.json` (`data.path` is that file, or a folder holding
//! `dataset_info.json`). Each top-level key is one continual-learning task; the reserved key
//! `orders` holds named task orders:
//!
//! ```json
//! {
//!   "orders": {"short": ["reviews", "trace"]},
//!   "reviews": {"file_name": "reviews.json", "held_out": 0.25},
//!   "trace": {
//!     "train_file": "trace/train.json", "test_file": "trace/test.json",
//!     "columns": {"prompt": "prompt", "response": "answer"},
//!     "derive_instruction": {"separator": "\n\n"}
//!   },
//!   "chat": {
//!     "file_name": ["chat_a.jsonl", "chat_b.jsonl"], "formatting": "sharegpt",
//!     "columns": {"messages": "messages", "system": "system"},
//!     "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
//!   }
//! }
//! ```
//!
//! Without `data.order` or `data.tasks` the tasks run in the file's order (order name `file`).
//! Data files are relative to the description's folder, each JSON Lines or one JSON array
//! whatever its extension ([`RecordFile`]). How records become [`Example`]s is documented on
//! [`Entry`], [`Columns`] and [`Tags`]; instructions kept in a side file on
//! [`InstructionSource`].
//!
//! A description written for LLaMA-Factory loads as it is (hiyouga/LLaMA-Factory,
//! `src/llamafactory/data/parser.py` and `data/dataset_info.json`): its keys are known to
//! [`Entry`], `""` means "no such column" ([`Column::Absent`]), and only the entries a run uses
//! are checked, so entries that load from the Hub, or hold preference pairs, can stay in the
//! file. What is ignored gets one notice per key ([`Dataset::notices`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inscl::artifact::DataReport;
use rand::Rng;
use rand::seq::SliceRandom;
use serde::de::Deserializer;
use serde::{Deserialize, de::Error as _};
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::conversation::{Tags, conversation, history, transcript};
use super::instruction::InstructionSource;
use super::prompt_only::{Cutter, InstructionRule};
use super::records::{Record, RecordFile, strings};
use super::{
    DataError, Dataset, Example, Ordered, TaskData, held_out_split, named_rng,
    resolve_order_or_file, show_value,
};
use crate::config::DataConfig;

/// The file looked for when `data.path` is a folder.
pub const DESCRIPTION_FILE: &str = "dataset_info.json";

/// The reserved top-level key of named task orders: `{"orders": {name: [task, ...]}}`.
pub const ORDERS_KEY: &str = "orders";

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
    fn named_fields(&self) -> Vec<&str> {
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
    fn ignored_keys(&self) -> Vec<(&'static str, &'static str)> {
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

/// Loads the tasks of the description `file` in the configured order; only the entries of
/// those tasks are checked. Notices (ignored LLaMA-Factory keys, one per key; inputs that
/// every prompt already holds, one per task) go to [`Dataset::notices`].
///
/// # Errors
/// [`DataError`] naming the description entry, data file, line and field at fault; a task
/// whose instructions cannot be derived is [`DataError::NoInstruction`].
pub fn load(config: &DataConfig, file: &Path) -> Result<Dataset, DataError> {
    let description = Description::read(file)?;
    let mut notices = Vec::new();
    let (order, names) = resolve_order_or_file(
        config,
        file,
        (description.file.clone(), description.orders.clone()),
        "described",
        &mut notices,
    )?;
    let folder = file.parent().unwrap_or(Path::new("."));
    // key -> (why, entries), in order of first appearance.
    let mut ignored: Vec<(&'static str, &'static str, Vec<&str>)> = Vec::new();
    let mut tasks = Vec::new();
    for name in &names {
        let entry = description.entry(name)?;
        for (key, why) in entry.ignored_keys() {
            match ignored.iter_mut().find(|(k, _, _)| *k == key) {
                Some((_, _, entries)) => entries.push(name),
                None => ignored.push((key, why, vec![name])),
            }
        }
        tasks.push(load_task(
            name,
            &entry,
            (&description.file, folder),
            config,
            &mut notices,
        )?);
    }
    let mut key_notices: Vec<String> = ignored
        .into_iter()
        .map(|(key, why, entries)| {
            format!(
                "{}: {key} of {} ignored: {why}",
                description.file,
                quoted_list("entry", "entries", &entries)
            )
        })
        .collect();
    key_notices.append(&mut notices);
    Ok(Dataset {
        order,
        tasks,
        notices: key_notices,
    })
}

/// `entry "a"` or `entries "a", "b"`.
fn quoted_list(one: &str, many: &str, names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    format!(
        "{} {}",
        if names.len() == 1 { one } else { many },
        quoted.join(", ")
    )
}

/// One record mapped onto our fields, its prompt not yet cut.
#[derive(Clone)]
struct Draft<'a> {
    record: Record<'a>,
    /// Field of the prompt, for errors.
    prompt_field: String,
    system: String,
    /// The prompt: the instruction (or the text a rule cuts it from), or with an entry's
    /// `instruction`, the first part of the input.
    prompt: String,
    /// Earlier turns as a transcript.
    context: String,
    /// Field of the query, when one was read.
    query_field: Option<String>,
    query: String,
    /// Non-blank references (non-empty).
    output: Vec<String>,
    id: Option<String>,
    /// 0 for the record itself, k for its k-th extra copy (`num_samples` beyond the records).
    copy: usize,
}

/// How a task's instructions come about.
enum Instructions<'r> {
    /// The prompt is the instruction.
    Prompt,
    /// A rule cuts each prompt into instruction and input.
    Cut(&'r InstructionRule, Cutter),
    /// One given instruction; the prompt is part of the input.
    Given(String),
}

/// The records of one part of an entry (`file_name`, `train_file` or `test_file`).
struct Part<'a> {
    /// The part's files, as shown in errors.
    files: Vec<String>,
    drafts: Vec<Draft<'a>>,
    /// Records of other tasks (`columns.task`).
    other_tasks: usize,
    /// Records whose outputs are all blank.
    empty: usize,
    records: usize,
}

impl Part<'_> {
    /// Why the part has no usable record (it has files and none is usable).
    fn unusable(&self, name: &str, entry: &Entry) -> String {
        let response = match entry.formatting {
            Formatting::Alpaca => entry
                .columns
                .response
                .field(Some("output"))
                .unwrap_or("output"),
            Formatting::Sharegpt => "its last assistant turn",
        };
        let task_field = entry.columns.task.named().unwrap_or("task");
        match (self.other_tasks, self.empty) {
            (other, 0) => format!("none of its {other} records has {task_field} = {name:?}"),
            (0, empty) => format!("all {empty} records have empty outputs (field {response})"),
            (other, empty) => format!(
                "of its {} records, {other} belong to other tasks ({task_field}) and {empty} have empty outputs (field {response})",
                self.records
            ),
        }
    }
}

/// Task `name` of the description (the file as errors name it, and its folder): its records
/// read, mapped onto examples (instructions from the prompts, a rule or the entry), and split.
fn load_task(
    name: &str,
    entry: &Entry,
    (description, folder): (&str, &Path),
    config: &DataConfig,
    notices: &mut Vec<String>,
) -> Result<TaskData, DataError> {
    let read = |names: &[String]| -> Result<Vec<RecordFile>, DataError> {
        let mut files = Vec::new();
        for name in names {
            for path in files_of(&folder.join(name))? {
                let file = RecordFile::read(&path)?;
                if file.is_empty() {
                    return Err(DataError::NoRecords { file: file.file });
                }
                files.push(file);
            }
        }
        Ok(files)
    };
    let read_parts = [
        read(&entry.file_name)?,
        read(&entry.train_file)?,
        read(&entry.test_file)?,
    ];
    if let Some(expected) = &entry.file_sha1 {
        match read_parts[0].as_slice() {
            [file] => check_sha1(&file.file, expected)?,
            files => {
                return Err(DataError::Description {
                    file: description.to_owned(),
                    key: name.to_owned(),
                    problem: format!(
                        "file_sha1 checks a single file; file_name is a folder of {} files",
                        files.len()
                    ),
                });
            }
        }
    }
    let mut parts: Vec<Part> = Vec::new();
    for files in &read_parts {
        let mut part = Part {
            files: files.iter().map(|f| f.file.clone()).collect(),
            drafts: Vec::new(),
            other_tasks: 0,
            empty: 0,
            records: 0,
        };
        for record in files.iter().flat_map(RecordFile::records) {
            part.records += 1;
            match draft(name, record, entry)? {
                None => part.other_tasks += 1,
                Some(draft) if draft.output.is_empty() => part.empty += 1,
                Some(draft) => part.drafts.push(draft),
            }
        }
        parts.push(part);
    }
    let empty_outputs: usize = parts.iter().map(|p| p.empty).sum();
    if parts.iter().all(|p| p.drafts.is_empty()) {
        let files: Vec<String> = parts.iter().flat_map(|p| p.files.clone()).collect();
        if empty_outputs > 0 && parts.iter().all(|p| p.other_tasks == 0) {
            return Err(DataError::AllEmpty {
                task: name.to_owned(),
                skipped: empty_outputs,
                source_path: files.join(", "),
            });
        }
    }
    for (part, split) in parts.iter().zip(["", "train", "test"]) {
        if !part.files.is_empty() && part.drafts.is_empty() {
            return Err(DataError::EmptySplit {
                task: name.to_owned(),
                split: if split.is_empty() {
                    "train or test"
                } else {
                    split
                },
                reason: part.unusable(name, entry),
                source_path: part.files.join(", "),
            });
        }
    }
    if let Some(notice) = doubled_inputs(name, parts.iter().flat_map(|p| &p.drafts)) {
        notices.push(notice);
    }
    if let Some(count) = entry.num_samples {
        let sampled = if entry.file_name.is_empty() { 1 } else { 0 };
        let drafts = std::mem::take(&mut parts[sampled].drafts);
        parts[sampled].drafts = sample(drafts, count, config.split_seed, name);
    }
    let instructions = instructions(name, entry, (description, folder), &parts)?;
    let mut count = 0;
    let mut examples = parts.into_iter().map(|part| {
        part.drafts
            .into_iter()
            .map(|d| {
                count += 1;
                example(name, count - 1, d, &instructions)
            })
            .collect::<Result<Vec<_>, _>>()
    });
    let (all, train, test) = (
        examples.next().expect("three parts")?,
        examples.next().expect("three parts")?,
        examples.next().expect("three parts")?,
    );
    let (train, test) = if entry.file_name.is_empty() {
        (train, test)
    } else {
        let records = all.len();
        let held_out = entry.held_out.unwrap_or(config.held_out);
        let (train, test) = held_out_split(all, held_out, config.split_seed, name);
        for (split, examples) in [("train", &train), ("test", &test)] {
            if examples.is_empty() {
                return Err(DataError::EmptySplit {
                    task: name.to_owned(),
                    split,
                    reason: format!(
                        "held_out = {held_out} splits its {records} usable record(s) into {} train and {} test",
                        train.len(),
                        test.len()
                    ),
                    source_path: entry
                        .file_name
                        .iter()
                        .map(|f| folder.join(f).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        (train, test)
    };
    Ok(TaskData {
        name: name.to_owned(),
        train,
        test,
        metadata: BTreeMap::new(),
        report: DataReport {
            empty_outputs,
            ..DataReport::default()
        },
    })
}

/// `path`, or the files of the folder `path` in name order (LLaMA-Factory reads every file of
/// a `file_name` folder).
fn files_of(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let io = |error| DataError::Io {
        file: path.display().to_string(),
        error,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|entry| entry.map(|e| e.path()).map_err(io))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::NoRecords {
            file: format!("{} (a folder without files)", path.display()),
        });
    }
    Ok(files)
}

/// Checks `file`'s SHA-1 against `expected` (LLaMA-Factory's `file_sha1`, hex).
fn check_sha1(file: &str, expected: &str) -> Result<(), DataError> {
    let bytes = std::fs::read(file).map_err(|error| DataError::Io {
        file: file.to_owned(),
        error,
    })?;
    let actual: String = Sha1::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(DataError::Checksum {
            file: file.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// Share of a task's queries found inside their prompts above which every input is taken to
/// be doubled: "every, or almost every" query.
const DOUBLED_SHARE: f64 = 0.9;

/// The notice for task `name` when (almost) every record's query is already part of its
/// prompt, so the input would appear twice.
fn doubled_inputs<'d, 'a: 'd>(
    name: &str,
    drafts: impl Iterator<Item = &'d Draft<'a>>,
) -> Option<String> {
    let (mut with_query, mut doubled) = (0usize, 0usize);
    let mut fields = None;
    for draft in drafts {
        let (Some(query_field), query) = (&draft.query_field, draft.query.trim()) else {
            continue;
        };
        if query.is_empty() {
            continue;
        }
        with_query += 1;
        if draft.prompt.contains(query) {
            doubled += 1;
            fields = Some((draft.prompt_field.clone(), query_field.clone()));
        }
    }
    let (prompt_field, query_field) = fields?;
    (doubled as f64 >= DOUBLED_SHARE * with_query as f64).then(|| {
        format!(
            "task {name:?}: the query (field {query_field}) of {doubled} of {with_query} records is already in its prompt \
             (field {prompt_field}), so each input would appear twice; if the prompt holds the input, \
             set \"query\": \"\" in the entry's columns"
        )
    })
}

/// `count` drafts as LLaMA-Factory's `num_samples`: a seeded random subset, or every draft
/// plus seeded random repeats when `count` exceeds them; kept in data order.
fn sample<'a>(drafts: Vec<Draft<'a>>, count: usize, seed: u64, name: &str) -> Vec<Draft<'a>> {
    let n = drafts.len();
    let mut rng = named_rng(seed, "num-samples", name);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let mut picks: Vec<usize> = order.into_iter().take(count).collect();
    while picks.len() < count {
        picks.push(rng.random_range(0..n));
    }
    picks.sort_unstable();
    let mut copies = vec![0usize; n];
    picks
        .into_iter()
        .map(|i| {
            let mut draft = drafts[i].clone();
            draft.copy = copies[i];
            copies[i] += 1;
            draft
        })
        .collect()
}

/// How the instructions of task `name` come about, from the entry and its records.
fn instructions<'e>(
    name: &str,
    entry: &'e Entry,
    (description, folder): (&str, &Path),
    parts: &[Part],
) -> Result<Instructions<'e>, DataError> {
    let drafts = || parts.iter().flat_map(|p| &p.drafts);
    if let Some(source) = &entry.instruction {
        // Label options from the train records first (file_name, train_file), then test.
        let outputs = drafts().map(|d| d.output[0].as_str());
        return source
            .text(name, folder, outputs)?
            .map(Instructions::Given)
            .map_err(|problem| DataError::Description {
                file: description.to_owned(),
                key: name.to_owned(),
                problem,
            });
    }
    let (Some(rule), Some(first)) = (&entry.derive_instruction, drafts().next()) else {
        return Ok(Instructions::Prompt);
    };
    let prompts: Vec<&str> = drafts().map(|d| d.prompt.as_str()).collect();
    let cutter = rule
        .cutter(&prompts)
        .map_err(|reason| DataError::NoInstruction {
            file: first.record.location(),
            field: first.record.field_path(&first.prompt_field),
            task: name.to_owned(),
            rule: rule.describe(),
            reason,
        })?;
    Ok(Instructions::Cut(rule, cutter))
}

/// The example of `draft`, the `n`-th usable record of task `name`.
fn example(
    name: &str,
    n: usize,
    draft: Draft,
    instructions: &Instructions,
) -> Result<Example, DataError> {
    let (instruction, rest) = match instructions {
        Instructions::Prompt => (draft.prompt, String::new()),
        Instructions::Given(instruction) => (instruction.clone(), draft.prompt),
        Instructions::Cut(rule, cutter) => {
            cutter
                .cut(&draft.prompt)
                .ok_or_else(|| DataError::NoInstruction {
                    file: draft.record.location(),
                    field: draft.record.field_path(&draft.prompt_field),
                    task: name.to_owned(),
                    rule: rule.describe(),
                    reason: format!("it does not apply to {:?}", super::show_text(&draft.prompt)),
                })?
        }
    };
    let id = draft.id.unwrap_or_else(|| format!("{name}-{n}"));
    Ok(Example {
        task: name.to_owned(),
        id: match draft.copy {
            0 => id,
            copy => format!("{id}#{copy}"),
        },
        instruction: join([draft.system, instruction]),
        input: join([draft.context, rest, draft.query]),
        output: draft.output,
    })
}

/// The example of an alpaca record with the default columns (the `alpaca` data format) as
/// the `n`-th record of task `task`; `None` when its outputs are all blank.
///
/// # Errors
/// [`DataError::Field`] naming the record's file, line and field.
pub(crate) fn alpaca_example(
    task: &str,
    n: usize,
    record: Record,
) -> Result<Option<Example>, DataError> {
    let entry = Entry::default();
    match draft(task, record, &entry)? {
        Some(draft) if !draft.output.is_empty() => {
            example(task, n, draft, &Instructions::Prompt).map(Some)
        }
        _ => Ok(None),
    }
}

/// The non-empty parts joined with blank lines.
fn join<const N: usize>(parts: [String; N]) -> String {
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The draft of `record`, or `None` for a record of another task (`columns.task`).
fn draft<'a>(
    name: &str,
    record: Record<'a>,
    entry: &Entry,
) -> Result<Option<Draft<'a>>, DataError> {
    let columns = &entry.columns;
    if let Some(field) = columns.task.named()
        && record.text(field, true)? != name
    {
        return Ok(None);
    }
    // A default field name that another column names is not read twice.
    let named = columns.named_fields();
    let free = |field: &'static str| (!named.contains(&field)).then_some(field);
    // (field read, text): a named field must be in every record, a default one may be absent.
    let optional = |column: &Column,
                    default: Option<&'static str>|
     -> Result<(Option<String>, String), DataError> {
        match (column, default.and_then(free)) {
            (Column::Field(field), _) => {
                if record.value.get(field).is_none() {
                    return Err(record.error(field, "missing", record.value));
                }
                Ok((Some(field.clone()), record.text(field, false)?))
            }
            (Column::Default, Some(field)) => {
                Ok((Some(field.to_owned()), record.text(field, false)?))
            }
            _ => Ok((None, String::new())),
        }
    };
    let (_, system) = optional(&columns.system, None)?;
    let id = match columns.id.field(free("id")) {
        None => None,
        Some(field) => match record.get(field) {
            None if columns.id.named().is_some() => {
                return Err(record.error(field, "missing", record.value));
            }
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(v) => return Err(record.error(field, "expected a string or number", v)),
        },
    };
    let non_blank = |outputs: Vec<String>| {
        outputs
            .into_iter()
            .filter(|o| !o.trim().is_empty())
            .collect()
    };
    let given = entry.instruction.is_some();
    let draft = match entry.formatting {
        Formatting::Alpaca => {
            // With a given instruction the prompt is read only when named (it is input then).
            let (prompt_field, prompt) = if given {
                let (field, prompt) = optional(&columns.prompt, None)?;
                (field.unwrap_or_default(), prompt)
            } else {
                let field = columns.prompt.field(Some("instruction")).expect("checked");
                (field.to_owned(), record.text(field, true)?)
            };
            let context = match columns.history.named() {
                None => String::new(),
                Some(field) => transcript(&history(record, field)?),
            };
            let (query_field, query) = optional(&columns.query, Some("input"))?;
            let response = columns.response.field(Some("output")).expect("checked");
            Draft {
                record,
                prompt_field,
                system,
                prompt,
                context,
                query_field,
                query,
                output: non_blank(record.texts(response)?),
                id,
                copy: 0,
            }
        }
        Formatting::Sharegpt => {
            let field = columns
                .messages
                .field(Some("conversations"))
                .expect("checked");
            let conversation = conversation(record, field, &entry.tags)?;
            let system = join([system, conversation.system]);
            Draft {
                record,
                prompt_field: conversation.prompt_field,
                system,
                prompt: conversation.prompt,
                context: transcript(&conversation.earlier),
                query_field: None,
                query: String::new(),
                output: non_blank(vec![conversation.response]),
                id,
                copy: 0,
            }
        }
    };
    if !given && draft.prompt.trim().is_empty() {
        return Err(record.error(&draft.prompt_field, "empty", &Value::String(draft.prompt)));
    }
    Ok(Some(draft))
}
