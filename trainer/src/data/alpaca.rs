//! Alpaca / LLaMA-Factory instruction data with fixed field names (`format = "alpaca"`): one
//! file of records `{"instruction": str, "input": str?, "output": str | [str], "task": str?,
//! "id": str?}`, JSON Lines or one JSON array whatever the extension ([`RecordFile`]).
//!
//! Records are mapped as a described dataset's alpaca records with the default columns
//! ([`super::described::Columns`]); records without `task` belong to a task named after the
//! file stem. Records whose outputs are all blank are skipped and counted; a record of the
//! wrong shape is a [`DataError::Field`] naming the file, line, field and value.

use std::path::Path;

use serde_json::Value;

use super::records::RecordFile;
use super::{DataError, Example, described};

/// The records of one task of an Alpaca file.
#[derive(Debug, Clone, PartialEq)]
pub struct AlpacaTask {
    /// The `task` field, or the file stem.
    pub name: String,
    /// Usable records in file order.
    pub examples: Vec<Example>,
    /// Records skipped because all their outputs were blank.
    pub empty_outputs: usize,
}

/// Reads `path` and returns its tasks in order of first appearance.
///
/// # Errors
/// [`DataError::Io`], [`DataError::Json`] (naming the line), [`DataError::Field`] naming
/// `file:line` and the field, [`DataError::NoRecords`] for a file without records.
pub fn read(path: &Path) -> Result<Vec<AlpacaTask>, DataError> {
    let file = RecordFile::read(path)?;
    let default_task = path
        .file_stem()
        .map_or_else(|| "data".to_owned(), |s| s.to_string_lossy().into_owned());
    let mut tasks: Vec<AlpacaTask> = Vec::new();
    for record in file.records() {
        let name = match record.get("task") {
            None => default_task.clone(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(v) => return Err(record.error("task", "expected a non-empty string", v)),
        };
        let slot = match tasks.iter().position(|t| t.name == name) {
            Some(slot) => slot,
            None => {
                tasks.push(AlpacaTask {
                    name,
                    examples: Vec::new(),
                    empty_outputs: 0,
                });
                tasks.len() - 1
            }
        };
        let task = &mut tasks[slot];
        let n = task.examples.len() + task.empty_outputs;
        match described::alpaca_example(&task.name, n, record)? {
            Some(example) => task.examples.push(example),
            None => task.empty_outputs += 1,
        }
    }
    if tasks.is_empty() {
        return Err(DataError::NoRecords {
            file: path.display().to_string(),
        });
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_records_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [("empty.json", "[]"), ("blank.jsonl", "\n\n")] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let err = read(&path).unwrap_err().to_string();
            assert!(
                err.starts_with(&path.display().to_string()) && err.contains("no records"),
                "{err}"
            );
        }
    }
}
