//! Why the data could not be loaded, and the shortened values its messages show.

use super::FETCH_DATA_HINT;

/// Why the data could not be loaded. Every variant names the file, field or task at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A data path that does not exist.
    #[error("{path} does not exist; run {FETCH_DATA_HINT} to put the benchmark data in data/")]
    Missing {
        /// The path, as given.
        path: String,
    },
    /// Reading a file failed.
    #[error("{file}: {error}")]
    Io {
        /// The file read.
        file: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file that is not JSON.
    #[error("{file}: not valid JSON: {error}")]
    Json {
        /// The file read.
        file: String,
        /// The underlying error.
        error: serde_json::Error,
    },
    /// A field of the wrong type or value.
    #[error("{file}: field {field}: {problem}, got {value}")]
    Field {
        /// The file read.
        file: String,
        /// The field, as named in the file.
        field: String,
        /// What is wrong with it.
        problem: &'static str,
        /// The value found (shortened).
        value: String,
    },
    /// An order name the data source does not define.
    #[error("unknown order \"{order}\" in {file}; known orders: {known}")]
    UnknownOrder {
        /// The order asked for.
        order: String,
        /// The file read.
        file: String,
        /// The orders the source has.
        known: String,
    },
    /// No order name and no explicit task list for a source without a natural order.
    #[error(
        "{source_kind} data at {path} needs data.tasks or data.order ({path} has no orders.json)"
    )]
    NoOrder {
        /// The kind of source (`benchmark`, `superni`, ...).
        source_kind: &'static str,
        /// The path, as given.
        path: String,
    },
    /// A task named in the order or task list that the source does not have.
    #[error("task \"{task}\" not found in {path}")]
    UnknownTask {
        /// The task's name.
        task: String,
        /// The path, as given.
        path: String,
    },
    /// A task listed twice; `list` says where: `data.tasks` or an order of a file.
    #[error("task \"{task}\" appears twice in {list}")]
    DuplicateTask {
        /// The task's name.
        task: String,
        /// Where the task list came from.
        list: String,
    },
    /// A folder given as `data.path` without the description file the format reads.
    #[error(
        "{folder} is a folder without {file}; set data.path to the {file} file or put one in the folder"
    )]
    NoDescription {
        /// The folder given.
        folder: String,
        /// The file read.
        file: &'static str,
    },
    /// An entry of a dataset description that is not usable.
    #[error("{file}: entry \"{key}\": {problem}")]
    Description {
        /// The file read.
        file: String,
        /// The entry of the description.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A prompt-only task whose instruction cannot be derived by its rule.
    #[error(
        "{file}: field {field}: no instruction of task \"{task}\" can be derived by {rule}: {reason}"
    )]
    NoInstruction {
        /// The file read.
        file: String,
        /// The field, as named in the file.
        field: String,
        /// The task's name.
        task: String,
        /// The derivation rule, as written.
        rule: String,
        /// Why the value is refused.
        reason: String,
    },
    /// A task all of whose records have blank outputs.
    #[error(
        "task \"{task}\": all {skipped} records have empty outputs; nothing to train or score (source: {source_path})"
    )]
    AllEmpty {
        /// The task's name.
        task: String,
        /// Records skipped for empty outputs.
        skipped: usize,
        /// The file or description read.
        source_path: String,
    },
    /// A task with an empty split after parsing (and de-duplication), with why.
    #[error("task \"{task}\" has no usable {split} instances: {reason} (source: {source_path})")]
    EmptySplit {
        /// The task's name.
        task: String,
        /// `train` or `test`.
        split: &'static str,
        /// Why the split is empty.
        reason: String,
        /// The file or description read.
        source_path: String,
    },
    /// A data file whose SHA-1 differs from its description's `file_sha1`.
    #[error(
        "{file}: SHA-1 {actual} differs from the description's file_sha1 {expected}; the file is not the one described (update or remove file_sha1 if the change is intended)"
    )]
    Checksum {
        /// The data file.
        file: String,
        /// The description's `file_sha1`.
        expected: String,
        /// The file's SHA-1.
        actual: String,
    },
    /// The task list is empty.
    #[error("the task list is empty (data.first = 0 or an empty order)")]
    NoTasks,
    /// A data file without a single record.
    #[error("{file}: no records (an empty file or an empty JSON array)")]
    NoRecords {
        /// The file read.
        file: String,
    },
}

/// A JSON value shortened for error messages (at most 80 characters).
pub(crate) fn show_value(value: &serde_json::Value) -> String {
    show_text(&value.to_string())
}

/// A text shortened for error messages (at most 80 characters, then `…`).
pub(crate) fn show_text(text: &str) -> String {
    show_text_max(text, 80)
}

/// A text shortened to at most `max` characters, then `…`.
pub(crate) fn show_text_max(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
