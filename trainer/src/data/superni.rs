//! One SuperNI task file in the original schema of `allenai/natural-instructions`
//! (`tasks/<name>.json`), tolerant of the schema drift found in real files.
//!
//! Accepted drift (all seen in `../shared/data`): `Definition`, `Categories`, `Reasoning`,
//! `Domains` as a string or a list of strings (a list `Definition` is one text joined with
//! blank lines; list metadata are several tags); metadata fields missing; instances without
//! `id`; `output` as a string or a list of strings (a list is several references: training
//! uses the first, evaluation scores against all). Instances whose outputs are all empty are
//! skipped (there is nothing to learn or score). Anything else of the wrong type is a
//! [`DataError::Field`] naming the file, field and value.

use std::path::Path;

use serde_json::Value;

use super::records::strings;
use super::{DataError, Example, show_value};

/// A parsed SuperNI task file.
#[derive(Debug, Clone, PartialEq)]
pub struct SuperNiTask {
    /// Task name: the file stem (`task363_sst2_polarity_classification`) or the benchmark
    /// folder name.
    pub name: String,
    /// The task definition (instruction); a list-valued `Definition` is joined with blank lines.
    pub definition: String,
    /// `Categories`, `Reasoning` and `Domains` values, in that order, as written.
    pub metadata: Vec<String>,
    /// Usable instances in file order.
    pub instances: Vec<Instance>,
    /// Instances skipped because all their outputs were empty.
    pub skipped: usize,
}

/// One instance of a SuperNI task.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// `id` from the file, or `<task>-<index>` when the file has none (older SuperNI versions).
    pub id: String,
    /// The instance input.
    pub input: String,
    /// Reference outputs (non-empty, each non-blank).
    pub output: Vec<String>,
}

impl SuperNiTask {
    /// Reads and parses `path`, naming the task `name`.
    ///
    /// # Errors
    /// [`DataError::Io`], [`DataError::Json`], or [`DataError::Field`] for a missing or
    /// malformed `Definition` / `Instances` or a metadata field that is neither a string nor
    /// a list of strings.
    pub fn read(path: &Path, name: &str) -> Result<Self, DataError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| DataError::Io {
            file: file.clone(),
            error,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|error| DataError::Json {
            file: file.clone(),
            error,
        })?;
        Self::parse(&file, name, &value)
    }

    /// Parses an already decoded task object; `file` names it in errors.
    ///
    /// # Errors
    /// As [`SuperNiTask::read`].
    pub fn parse(file: &str, name: &str, value: &Value) -> Result<Self, DataError> {
        let field_error = |field: &str, problem: &'static str, value: &Value| DataError::Field {
            file: file.to_owned(),
            field: field.to_owned(),
            problem,
            value: show_value(value),
        };
        let object = value
            .as_object()
            .ok_or_else(|| field_error("(top level)", "expected a JSON object", value))?;
        let definition = match object.get("Definition") {
            None => return Err(field_error("Definition", "missing", &Value::Null)),
            Some(v) => strings(v)
                .ok_or_else(|| {
                    field_error("Definition", "expected a string or list of strings", v)
                })?
                .join("\n\n"),
        };
        if definition.trim().is_empty() {
            return Err(field_error(
                "Definition",
                "empty",
                object.get("Definition").unwrap_or(&Value::Null),
            ));
        }
        let mut metadata = Vec::new();
        for field in ["Categories", "Reasoning", "Domains"] {
            if let Some(v) = object.get(field) {
                metadata.extend(strings(v).ok_or_else(|| {
                    field_error(field, "expected a string or list of strings", v)
                })?);
            }
        }
        let raw_instances = match object.get("Instances") {
            None => return Err(field_error("Instances", "missing", &Value::Null)),
            Some(Value::Array(items)) => items,
            Some(v) => return Err(field_error("Instances", "expected a list", v)),
        };
        let mut instances = Vec::with_capacity(raw_instances.len());
        let mut skipped = 0;
        for (index, item) in raw_instances.iter().enumerate() {
            let at = |key: &str| format!("Instances[{index}].{key}");
            let input = match item.get("input") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => return Err(field_error(&at("input"), "expected a string", v)),
                None => return Err(field_error(&at("input"), "missing", item)),
            };
            let output: Vec<String> = match item.get("output") {
                Some(v) => strings(v).ok_or_else(|| {
                    field_error(&at("output"), "expected a string or list of strings", v)
                })?,
                None => return Err(field_error(&at("output"), "missing", item)),
            };
            let output: Vec<String> = output
                .into_iter()
                .filter(|o| !o.trim().is_empty())
                .collect();
            if output.is_empty() {
                skipped += 1;
                continue;
            }
            let id = match item.get("id") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => format!("{name}-{index}"),
                Some(v) => return Err(field_error(&at("id"), "expected a string", v)),
            };
            instances.push(Instance { id, input, output });
        }
        Ok(SuperNiTask {
            name: name.to_owned(),
            definition,
            metadata,
            instances,
            skipped,
        })
    }

    /// The instances as [`Example`]s of continual-learning task `task` (which differs from
    /// [`SuperNiTask::name`] when a category groups several SuperNI tasks).
    pub fn examples(&self, task: &str) -> Vec<Example> {
        self.instances
            .iter()
            .map(|instance| Example {
                task: task.to_owned(),
                id: instance.id.clone(),
                instruction: self.definition.clone(),
                input: instance.input.clone(),
                output: instance.output.clone(),
            })
            .collect()
    }
}
