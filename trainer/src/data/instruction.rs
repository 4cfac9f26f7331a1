//! Instructions kept outside the records (`instruction` of a dataset description entry): many
//! continual-learning benchmarks store records as `{sentence, label}` and the instruction of each
//! task or category in a separate JSON file, with the label options appended when the prompt is
//! built. O-LoRA's `CL_Benchmark` is one (cmnfriend/O-LoRA, `src/uie_dataset_lora.py`:
//! `instruction_config.json` keyed by category, `labels.json` per task, and the instruction
//! `instruction + "Option: " + ", ".join(labels) + " \n"`).
//!
//! ```json
//! "agnews": {
//!   "train_file": "TC/agnews/train.json", "test_file": "TC/agnews/test.json",
//!   "columns": {"query": "sentence", "response": "label"},
//!   "instruction": {"file": "instruction_config.json", "key": "TC",
//!                   "template": "{instruction}Option: {options} \n", "options": "TC/agnews/labels.json"}
//! }
//! ```

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::{DataError, show_value};

/// Where a task's one instruction comes from: `"instruction": "literal text"`, or an object
/// ([`InstructionSpec`]) naming a JSON file keyed by task or category, or a literal `text`, with
/// an optional template that appends the label options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum InstructionSource {
    /// The instruction itself.
    Literal(String),
    /// A file and key, or a text, with an optional template.
    Spec(InstructionSpec),
}

/// The object form of [`InstructionSource`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionSpec {
    /// A JSON object keyed by task or category, relative to the description. A value is the
    /// instruction as a string, an object with an `instruction` field, or a list of those
    /// whose first is taken (O-LoRA's `[{"instruction_type": "zero-shot", "instruction": ...}]`,
    /// its `single` strategy).
    #[serde(default)]
    pub file: Option<String>,
    /// The key in `file`; default: the entry's name (the task).
    #[serde(default)]
    pub key: Option<String>,
    /// The instruction as text (instead of `file`).
    #[serde(default)]
    pub text: Option<String>,
    /// How the instruction is written out: `{instruction}` is the text from `file` or `text`,
    /// `{options}` the label options joined by `", "`; default `"{instruction}"`.
    #[serde(default)]
    pub template: Option<String>,
    /// A JSON list of the label options (relative to the description), for `{options}`; without
    /// it the options are the task's distinct first reference outputs, in order of first
    /// appearance over its train then test records.
    #[serde(default)]
    pub options: Option<String>,
}

impl InstructionSource {
    /// The instruction text of task `task`; `outputs` are the first reference output of each
    /// of its records (train, then test), the label options when no options file is named.
    /// Files are relative to `folder`.
    ///
    /// # Errors
    /// A field problem naming the description entry (`Err(String)`: the caller adds the entry),
    /// or [`DataError`] naming the instruction or options file, the key and the value at fault.
    pub fn text<'o>(
        &self,
        task: &str,
        folder: &Path,
        outputs: impl Iterator<Item = &'o str>,
    ) -> Result<Result<String, String>, DataError> {
        let spec = match self {
            InstructionSource::Literal(text) => return Ok(non_empty(text.clone(), "instruction")),
            InstructionSource::Spec(spec) => spec,
        };
        let instruction = match (&spec.file, &spec.text) {
            (Some(_), Some(_)) | (None, None) => {
                return Ok(Err(
                    "instruction needs one of file (with key) or text".to_owned()
                ));
            }
            (None, Some(text)) => text.clone(),
            (Some(file), None) => {
                let key = spec.key.as_deref().unwrap_or(task);
                keyed_instruction(&folder.join(file), key)?
            }
        };
        let template = spec.template.as_deref().unwrap_or("{instruction}");
        if !template.contains("{instruction}") {
            return Ok(Err(format!(
                "instruction.template {template:?} lacks {{instruction}}"
            )));
        }
        let options = if !template.contains("{options}") {
            String::new()
        } else {
            let options = match &spec.options {
                Some(file) => option_list(&folder.join(file))?,
                None => {
                    let mut seen: Vec<String> = Vec::new();
                    for output in outputs {
                        if !seen.iter().any(|s| s == output) {
                            seen.push(output.to_owned());
                        }
                    }
                    seen
                }
            };
            options.join(", ")
        };
        Ok(non_empty(
            template
                .replace("{instruction}", &instruction)
                .replace("{options}", &options),
            "instruction",
        ))
    }
}

fn non_empty(text: String, what: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(text)
    }
}

fn read_json(file: &Path) -> Result<(String, Value), DataError> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|error| DataError::Io {
        file: name.clone(),
        error,
    })?;
    let value = serde_json::from_str(&text).map_err(|error| DataError::Json {
        file: name.clone(),
        error,
    })?;
    Ok((name, value))
}

/// The instruction under `key` of the JSON object in `file`.
fn keyed_instruction(file: &Path, key: &str) -> Result<String, DataError> {
    let (name, value) = read_json(file)?;
    let problem = |field: String, problem: &'static str, value: &Value| DataError::Field {
        file: name.clone(),
        field,
        problem,
        value: show_value(value),
    };
    let object = value.as_object().ok_or_else(|| {
        problem(
            "(top level)".into(),
            "expected an object keyed by task or category",
            &value,
        )
    })?;
    let Some(entry) = object.get(key) else {
        let known: Vec<&str> = object.keys().map(String::as_str).collect();
        return Err(DataError::Field {
            file: name.clone(),
            field: key.to_owned(),
            problem: "missing (the instruction's key: instruction.key, default the task's name)",
            value: format!("keys {}", known.join(", ")),
        });
    };
    let first = match entry {
        Value::Array(items) => items
            .first()
            .ok_or_else(|| problem(key.to_owned(), "expected at least one instruction", entry))?,
        other => other,
    };
    let text = match first {
        Value::String(text) => Some(text.as_str()),
        Value::Object(fields) => fields.get("instruction").and_then(Value::as_str),
        _ => None,
    };
    text.filter(|t| !t.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            problem(
                key.to_owned(),
                "expected a non-empty string, an object with an \"instruction\" string, or a list of those",
                entry,
            )
        })
}

/// The label options in `file`: a JSON list of strings.
fn option_list(file: &Path) -> Result<Vec<String>, DataError> {
    let (name, value) = read_json(file)?;
    super::records::strings(&value)
        .filter(|options| !options.is_empty() && value.is_array())
        .ok_or_else(|| DataError::Field {
            file: name,
            field: "(top level)".into(),
            problem: "expected a non-empty JSON list of label options (strings)",
            value: show_value(&value),
        })
}
