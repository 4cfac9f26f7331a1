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

mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inscl::artifact::DataReport;
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::conversation::{conversation, history, transcript};
use super::prompt_only::{Cutter, InstructionRule};
use super::records::{Record, RecordFile};
use super::{DataError, Dataset, Example, TaskData, held_out_split, resolve_order_or_file};
use crate::config::DataConfig;
pub(crate) use schema::optional_name;
pub use schema::{Column, Columns, Description, Entry, Formatting};

/// The file looked for when `data.path` is a folder.
pub const DESCRIPTION_FILE: &str = "dataset_info.json";

/// The reserved top-level key of named task orders: `{"orders": {name: [task, ...]}}`.
pub const ORDERS_KEY: &str = "orders";

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
// Long: one pass of reading, mapping and checking whose steps share the entry's errors and
// notices; split further it would hand a dozen locals from step to step.
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
    let mut rng = inscl::seed::stream(seed, "num-samples", name);
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
// Long: one branch per LLaMA-Factory formatting (alpaca, sharegpt, prompt-only), each a few
// column reads.
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
