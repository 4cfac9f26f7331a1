//! Alpaca / LLaMA-Factory instruction data: a JSON array or JSON-lines file of records
//! `{"instruction": str, "input": str?, "output": str | [str], "task": str?}`.
//!
//! Records without `task` belong to a task named after the file stem. Records whose outputs
//! are all blank are skipped; a record of the wrong shape is a [`DataError::Field`] naming
//! the file, the record (0-based index or line) and the value.

use std::path::Path;

use serde_json::Value;

use super::{DataError, Example, show_value};

/// Reads `path` (`.jsonl` = one record per line, anything else = one JSON array) and returns
/// the examples in file order, each tagged with its task.
///
/// # Errors
/// [`DataError::Io`], [`DataError::Json`] (naming the line for JSONL), [`DataError::Field`].
pub fn read(path: &Path) -> Result<Vec<Example>, DataError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| DataError::Io {
        file: file.clone(),
        error,
    })?;
    let default_task = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_owned());
    let records: Vec<(String, Value)> = if path.extension().is_some_and(|e| e == "jsonl") {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(n, line)| {
                serde_json::from_str(line)
                    .map(|v| (format!("line {}", n + 1), v))
                    .map_err(|error| DataError::Json {
                        file: format!("{file}:{}", n + 1),
                        error,
                    })
            })
            .collect::<Result<_, _>>()?
    } else {
        match serde_json::from_str(&text).map_err(|error| DataError::Json {
            file: file.clone(),
            error,
        })? {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (format!("[{i}]"), v))
                .collect(),
            other => {
                return Err(DataError::Field {
                    file,
                    field: "(top level)".into(),
                    problem: "expected a JSON array of records (or use a .jsonl file)",
                    value: show_value(&other),
                });
            }
        }
    };
    let mut examples = Vec::with_capacity(records.len());
    for (position, record) in records {
        let field_error = |field: &str, problem: &'static str, value: &Value| DataError::Field {
            file: file.clone(),
            field: format!("{position}.{field}"),
            problem,
            value: show_value(value),
        };
        let text_field = |field: &str, required: bool| -> Result<String, DataError> {
            match record.get(field) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) if !required => Ok(String::new()),
                None => Err(field_error(field, "missing", &record)),
                Some(v) => Err(field_error(field, "expected a string", v)),
            }
        };
        let instruction = text_field("instruction", true)?;
        if instruction.trim().is_empty() {
            return Err(field_error("instruction", "empty", &record));
        }
        let input = text_field("input", false)?;
        let output: Vec<String> = match record.get("output") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    field_error(
                        "output",
                        "expected a string or list of strings",
                        &record["output"],
                    )
                })?,
            Some(v) => {
                return Err(field_error(
                    "output",
                    "expected a string or list of strings",
                    v,
                ));
            }
            None => return Err(field_error("output", "missing", &record)),
        };
        let output: Vec<String> = output
            .into_iter()
            .filter(|o| !o.trim().is_empty())
            .collect();
        if output.is_empty() {
            continue;
        }
        let task = match record.get("task") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            None | Some(Value::Null) => default_task.clone(),
            Some(v) => return Err(field_error("task", "expected a non-empty string", v)),
        };
        let id = match record.get("id") {
            Some(Value::String(s)) => s.clone(),
            _ => format!("{task}-{}", examples.len()),
        };
        examples.push(Example {
            task,
            id,
            instruction,
            input,
            output,
        });
    }
    Ok(examples)
}
