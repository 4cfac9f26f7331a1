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
//! [`Entry`], [`Columns`] and [`Tags`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use inscl::artifact::DataReport;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::Error as _};
use serde_json::Value;

use super::conversation::{Tags, conversation, history, transcript};
use super::prompt_only::{Cutter, InstructionRule};
use super::records::{Record, RecordFile, strings};
use super::{
    DataError, Dataset, Example, TaskData, held_out_split, resolve_order_or_file, show_value,
};
use crate::config::DataConfig;

/// The file looked for when `data.path` is a folder.
pub const DESCRIPTION_FILE: &str = "dataset_info.json";

/// The reserved top-level key of named task orders: `{"orders": {name: [task, ...]}}`.
pub const ORDERS_KEY: &str = "orders";

/// One task of a dataset description.
///
/// Its records come from `file_name` (one file or a list; a seeded `held_out` fraction,
/// default `data.held_out`, becomes the test split), or from `train_file` and `test_file`
/// (each one file or a list). A record whose every reference output is blank is skipped and
/// counted ([`DataReport::empty_outputs`]); a record that lacks a mapped field, or has one of
/// the wrong type, is an error naming the file, line and field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Files split into train and test by `held_out`.
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
}

/// How records are laid out (LLaMA-Factory's `formatting`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Formatting {
    /// One request per record: the instruction is `system` (if mapped) and `prompt` joined by
    /// a blank line, the input is the `history` transcript (if mapped) and `query` joined by a
    /// blank line, the outputs are `response`.
    #[default]
    Alpaca,
    /// A conversation per record (`messages`): an optional leading system turn, then user
    /// and assistant turns alternating, ending with an assistant turn. The last assistant
    /// turn is the output, the user turn before it the prompt, and the turns before those
    /// become the input's transcript (as `history` does for alpaca); earlier assistant turns
    /// are context, not targets.
    Sharegpt,
}

/// Field names of a task's records (LLaMA-Factory's `columns`), each defaulting to
/// LLaMA-Factory's name. Text fields take a string or a list of strings: a list is joined with
/// blank lines, except `response`, whose list is several references (training uses the
/// first, evaluation scores against all). A field named here must be in every record (null
/// reads as empty); an optional field left at its default may be absent, and a default name
/// that another column names is not read twice (`"prompt": "input"` leaves the query empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    /// The instruction, or the whole prompt of prompt-only records (default `instruction`;
    /// required, non-empty).
    pub prompt: Option<String>,
    /// The instance input (default `input`; optional).
    pub query: Option<String>,
    /// The reference output(s) (default `output`; required).
    pub response: Option<String>,
    /// A system prompt put before the instruction (read only when named).
    pub system: Option<String>,
    /// Earlier turns of alpaca records, a list of `[prompt, response]` pairs, rendered as
    /// `User: …` / `Assistant: …` lines at the start of the input (read only when named).
    pub history: Option<String>,
    /// The conversation of sharegpt records (default `conversations`).
    pub messages: Option<String>,
    /// Instance ids, strings or numbers (default `id`, optional; otherwise `<task>-<n>`).
    pub id: Option<String>,
    /// A field holding a task name: when named, only the records whose value equals this
    /// entry's key are read, so several entries can share one file (read only when named).
    pub task: Option<String>,
}

/// A parsed dataset description.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The description file, as shown in errors.
    pub file: String,
    /// Named orders (`orders`), plus `file`, the tasks in file order, unless defined.
    pub orders: BTreeMap<String, Vec<String>>,
    /// The tasks in file order.
    pub tasks: Vec<(String, Entry)>,
}

impl Description {
    /// Reads and checks the description `file`.
    ///
    /// # Errors
    /// [`DataError::Io`], [`DataError::Json`], or [`DataError::Description`] naming the entry
    /// at fault (unknown or mistyped field, a task defined twice, no files or both kinds of
    /// files, `held_out` out of range, a column of the other formatting).
    pub fn read(file: &Path) -> Result<Self, DataError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|error| DataError::Io {
            file: name.clone(),
            error,
        })?;
        let Ordered(entries) = serde_json::from_str(&text).map_err(|error| DataError::Json {
            file: name.clone(),
            error,
        })?;
        let problem = |key: &str, problem: String| DataError::Description {
            file: name.clone(),
            key: key.to_owned(),
            problem,
        };
        let mut orders = BTreeMap::new();
        let mut tasks: Vec<(String, Entry)> = Vec::new();
        for (key, value) in entries {
            if key == ORDERS_KEY {
                orders = serde_json::from_value(value)
                    .map_err(|e| problem(&key, format!("expected {{name: [task, ...]}}: {e}")))?;
                continue;
            }
            if tasks.iter().any(|(seen, _)| *seen == key) {
                return Err(problem(&key, "defined twice".to_owned()));
            }
            let entry: Entry =
                serde_json::from_value(value).map_err(|e| problem(&key, e.to_string()))?;
            entry.check().map_err(|p| problem(&key, p.to_owned()))?;
            tasks.push((key, entry));
        }
        orders
            .entry("file".to_owned())
            .or_insert_with(|| tasks.iter().map(|(key, _)| key.clone()).collect());
        Ok(Description {
            file: name,
            orders,
            tasks,
        })
    }
}

impl Entry {
    /// The first inconsistency of the entry, if any.
    fn check(&self) -> Result<(), &'static str> {
        let split = !self.train_file.is_empty() || !self.test_file.is_empty();
        if self.file_name.is_empty() && !split {
            return Err("needs file_name, or train_file and test_file");
        }
        if !self.file_name.is_empty() && split {
            return Err("has both file_name and train_file/test_file; give one or the other");
        }
        if split && (self.train_file.is_empty() || self.test_file.is_empty()) {
            return Err("needs both train_file and test_file (or file_name with held_out)");
        }
        if let Some(fraction) = self.held_out {
            if split {
                return Err("held_out applies to file_name only");
            }
            if !(0.0..1.0).contains(&fraction) {
                return Err("held_out must be in [0, 1)");
            }
        }
        let c = &self.columns;
        match self.formatting {
            Formatting::Alpaca if c.messages.is_some() || self.tags != Tags::default() => {
                Err("columns.messages and tags are for formatting = \"sharegpt\"")
            }
            Formatting::Sharegpt
                if c.prompt.is_some()
                    || c.query.is_some()
                    || c.response.is_some()
                    || c.history.is_some() =>
            {
                Err(
                    "columns prompt, query, response and history are for formatting = \"alpaca\"; sharegpt reads columns.messages",
                )
            }
            _ => Ok(()),
        }
    }
}

/// The top-level object's entries in file order (a JSON map would sort them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of task descriptions")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
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

/// Loads the tasks of the description `file` in the configured order.
///
/// # Errors
/// [`DataError`] naming the description entry, data file, line and field at fault; a task
/// whose instructions cannot be derived is [`DataError::NoInstruction`].
pub fn load(config: &DataConfig, file: &Path) -> Result<Dataset, DataError> {
    let description = Description::read(file)?;
    let (order, names) = resolve_order_or_file(
        config,
        file,
        (description.file.clone(), description.orders.clone()),
        "described",
    )?;
    let folder = file.parent().unwrap_or(Path::new("."));
    let tasks = names
        .iter()
        .map(|name| {
            let (_, entry) = description
                .tasks
                .iter()
                .find(|(key, _)| key == name)
                .ok_or_else(|| DataError::UnknownTask {
                    task: name.clone(),
                    path: description.file.clone(),
                })?;
            load_task(name, entry, folder, config)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Dataset { order, tasks })
}

/// One record mapped onto our fields, its prompt not yet cut.
struct Draft<'a> {
    record: Record<'a>,
    /// Field of the prompt, for errors.
    prompt_field: String,
    system: String,
    prompt: String,
    /// Earlier turns as a transcript.
    context: String,
    query: String,
    /// Non-blank references (non-empty).
    output: Vec<String>,
    id: Option<String>,
}

/// Task `name` of the description: its records read, mapped onto examples (prompts cut by
/// the entry's rule), and split.
fn load_task(
    name: &str,
    entry: &Entry,
    folder: &Path,
    config: &DataConfig,
) -> Result<TaskData, DataError> {
    let read = |files: &[String]| {
        files
            .iter()
            .map(|f| RecordFile::read(&folder.join(f)))
            .collect::<Result<Vec<_>, _>>()
    };
    let parts = [
        read(&entry.file_name)?,
        read(&entry.train_file)?,
        read(&entry.test_file)?,
    ];
    let mut empty_outputs = 0;
    let mut drafts: [Vec<Draft>; 3] = Default::default();
    for (files, drafts) in parts.iter().zip(&mut drafts) {
        for record in files.iter().flat_map(RecordFile::records) {
            let Some(draft) = draft(name, record, entry)? else {
                continue;
            };
            if draft.output.is_empty() {
                empty_outputs += 1;
            } else {
                drafts.push(draft);
            }
        }
    }
    // A task without usable records has nothing to cut (and is reported as such by the caller).
    let first = drafts.iter().flatten().next();
    let cutter: Option<(&InstructionRule, Cutter)> = match (&entry.derive_instruction, first) {
        (Some(rule), Some(first)) => {
            let prompts: Vec<&str> = drafts.iter().flatten().map(|d| d.prompt.as_str()).collect();
            let cutter = rule
                .cutter(&prompts)
                .map_err(|reason| DataError::NoInstruction {
                    file: first.record.location(),
                    field: first.record.field_path(&first.prompt_field),
                    task: name.to_owned(),
                    rule: rule.describe(),
                    reason,
                })?;
            Some((rule, cutter))
        }
        _ => None,
    };
    let mut count = 0;
    let [all, train, test] = drafts.map(|drafts| {
        drafts
            .into_iter()
            .map(|d| {
                count += 1;
                example(name, count - 1, d, cutter.as_ref().map(|(r, c)| (*r, c)))
            })
            .collect::<Result<Vec<_>, _>>()
    });
    let (train, test) = if entry.file_name.is_empty() {
        (train?, test?)
    } else {
        held_out_split(
            all?,
            entry.held_out.unwrap_or(config.held_out),
            config.split_seed,
            name,
        )
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

/// The example of `draft`, the `n`-th usable record of task `name`.
fn example(
    name: &str,
    n: usize,
    draft: Draft,
    cutter: Option<(&InstructionRule, &Cutter)>,
) -> Result<Example, DataError> {
    let (instruction, rest) = match cutter {
        None => (draft.prompt, String::new()),
        Some((rule, cutter)) => {
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
    Ok(Example {
        task: name.to_owned(),
        id: draft.id.unwrap_or_else(|| format!("{name}-{n}")),
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
        Some(draft) if !draft.output.is_empty() => example(task, n, draft, None).map(Some),
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
    if let Some(field) = &columns.task
        && record.text(field, true)? != name
    {
        return Ok(None);
    }
    // A default field name that another column names is not read twice.
    let named = [
        &columns.prompt,
        &columns.query,
        &columns.response,
        &columns.system,
        &columns.history,
        &columns.messages,
        &columns.id,
        &columns.task,
    ];
    let free =
        |field: &'static str| (!named.iter().any(|n| n.as_deref() == Some(field))).then_some(field);
    let optional = |named: &Option<String>, default: Option<&str>| -> Result<String, DataError> {
        match (named, default) {
            (Some(field), _) => {
                if record.value.get(field).is_none() {
                    return Err(record.error(field, "missing", record.value));
                }
                record.text(field, false)
            }
            (None, Some(field)) => record.text(field, false),
            (None, None) => Ok(String::new()),
        }
    };
    let system = optional(&columns.system, None)?;
    let id = match columns.id.as_deref().or(free("id")) {
        None => None,
        Some(field) => match record.get(field) {
            None if columns.id.is_some() => {
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
    let draft = match entry.formatting {
        Formatting::Alpaca => {
            let prompt_field = columns.prompt.as_deref().unwrap_or("instruction");
            let prompt = record.text(prompt_field, true)?;
            let context = match &columns.history {
                None => String::new(),
                Some(field) => transcript(&history(record, field)?),
            };
            Draft {
                record,
                prompt_field: prompt_field.to_owned(),
                system,
                prompt,
                context,
                query: optional(&columns.query, free("input"))?,
                output: non_blank(record.texts(columns.response.as_deref().unwrap_or("output"))?),
                id,
            }
        }
        Formatting::Sharegpt => {
            let field = columns.messages.as_deref().unwrap_or("conversations");
            let conversation = conversation(record, field, &entry.tags)?;
            let system = join([system, conversation.system]);
            Draft {
                record,
                prompt_field: conversation.prompt_field,
                system,
                prompt: conversation.prompt,
                context: transcript(&conversation.earlier),
                query: String::new(),
                output: non_blank(vec![conversation.response]),
                id,
            }
        }
    };
    if draft.prompt.trim().is_empty() {
        return Err(record.error(&draft.prompt_field, "empty", &Value::String(draft.prompt)));
    }
    Ok(Some(draft))
}
