//! Record files of the record-based formats ([`super::alpaca`], [`super::described`]): JSON
//! Lines or one JSON array of objects, told apart by content whatever the extension (a `.json`
//! file of JSON Lines and a one-line JSON array both load), each record with the line it
//! starts on for error messages.

use std::path::Path;

use serde::de::IgnoredAny;
use serde_json::Value;

use super::{DataError, show_value};

/// The records of one file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFile {
    /// The path as shown in errors.
    pub file: String,
    /// (line, index in the array or `None` for JSON Lines, record object).
    records: Vec<(usize, Option<usize>, Value)>,
}

/// One record of a [`RecordFile`], able to name itself in errors.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    file: &'a str,
    /// 1-based line where the record starts.
    pub line: usize,
    index: Option<usize>,
    /// The record object.
    pub value: &'a Value,
}

impl RecordFile {
    /// Reads `path`: a stream of JSON objects (JSON Lines, or objects separated by any
    /// whitespace) or a single JSON array of objects. An empty file has no records.
    ///
    /// # Errors
    /// [`DataError::Io`]; [`DataError::Json`] whose message carries the line and column;
    /// [`DataError::Field`] naming `file:line` for a record that is not an object.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| DataError::Io {
            file: file.clone(),
            error,
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let newlines: Vec<usize> = text.match_indices('\n').map(|(at, _)| at).collect();
        let line_of = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;

        let mut values: Vec<(usize, Value)> = Vec::new();
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut end = 0;
        while let Some(value) = stream.next() {
            let value = value.map_err(|error| DataError::Json {
                file: file.clone(),
                error,
            })?;
            values.push((end + whitespace_len(&text[end..]), value));
            end = stream.byte_offset();
        }
        let records: Vec<(usize, Option<usize>, Value)> = match values.as_mut_slice() {
            [(open, Value::Array(items))] => element_starts(text, *open, items.len())
                .into_iter()
                .zip(std::mem::take(items))
                .enumerate()
                .map(|(index, (start, item))| (line_of(start), Some(index), item))
                .collect(),
            _ => values
                .into_iter()
                .map(|(start, value)| (line_of(start), None, value))
                .collect(),
        };
        let read = RecordFile { file, records };
        for record in read.records() {
            if !record.value.is_object() {
                return Err(record.error(
                    "(record)",
                    "expected a JSON object (one per line, or in one JSON array)",
                    record.value,
                ));
            }
        }
        Ok(read)
    }

    /// Whether the file holds no record (an empty file, or an empty JSON array).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records in file order.
    pub fn records(&self) -> impl Iterator<Item = Record<'_>> {
        self.records.iter().map(|(line, index, value)| Record {
            file: &self.file,
            line: *line,
            index: *index,
            value,
        })
    }
}

impl<'a> Record<'a> {
    /// `file:line`, as errors name the record.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// `field` of this record as errors name it: `[index].field` in a JSON array, else
    /// `field`.
    pub fn field_path(&self, field: &str) -> String {
        match self.index {
            Some(index) => format!("[{index}].{field}"),
            None => field.to_owned(),
        }
    }

    /// A [`DataError::Field`] at [`Record::location`], field [`Record::field_path`].
    pub fn error(&self, field: &str, problem: &'static str, value: &Value) -> DataError {
        DataError::Field {
            file: self.location(),
            field: self.field_path(field),
            problem,
            value: show_value(value),
        }
    }

    /// Field `field`: `None` when absent or null.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.value.get(field).filter(|v| !v.is_null())
    }

    /// Field `field` as a list of texts: a string is one text, a list of strings several.
    ///
    /// # Errors
    /// [`DataError::Field`] when the field is missing (`missing`) or of another type.
    pub fn texts(&self, field: &str) -> Result<Vec<String>, DataError> {
        let value = self
            .get(field)
            .ok_or_else(|| self.error(field, "missing", self.value))?;
        strings(value)
            .ok_or_else(|| self.error(field, "expected a string or list of strings", value))
    }

    /// Field `field` as one text, a list of strings joined with blank lines (as SuperNI's
    /// list-valued `Definition`); absent or null is `""` unless `required`.
    ///
    /// # Errors
    /// As [`Record::texts`] (a missing field only when `required`).
    pub fn text(&self, field: &str, required: bool) -> Result<String, DataError> {
        if !required && self.get(field).is_none() {
            return Ok(String::new());
        }
        Ok(self.texts(field)?.join("\n\n"))
    }
}

/// A string, or a list of strings, as a list; `None` for any other JSON type.
pub(crate) fn strings(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// Bytes of whitespace at the start of `text`.
fn whitespace_len(text: &str) -> usize {
    text.len() - text.trim_start().len()
}

/// Byte offsets of the `count` elements of the (already validated) JSON array whose `[` is
/// at `open`.
fn element_starts(text: &str, open: usize, count: usize) -> Vec<usize> {
    let mut starts = Vec::with_capacity(count);
    let mut at = open + 1;
    for _ in 0..count {
        at += whitespace_len(&text[at..]);
        starts.push(at);
        let mut element = serde_json::Deserializer::from_str(&text[at..]).into_iter::<IgnoredAny>();
        let parsed = element.next();
        debug_assert!(matches!(parsed, Some(Ok(_))), "validated array element");
        at += element.byte_offset();
        at += whitespace_len(&text[at..]);
        // The `,` after the element (or the closing `]`).
        at += 1;
    }
    starts
}
