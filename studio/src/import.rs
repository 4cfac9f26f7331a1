//! Logs of other tools, mapped onto the studio's run model where their fields allow.
//!
//! - InsCL's official code appends one JSON line per (stage model, evaluated task) to
//!   `output_state.jsonl`: `{"data_category": task, "model_category": stage output dir,
//!   "rouge-1": .., "rouge-2": .., "rouge-l": ..}`, each score a number in `[0, 1]` or a
//!   `{"f": .., "p": .., "r": ..}` object (the `rouge` package's output). Stages are taken
//!   in order of first appearance of `model_category`, tasks in order of first appearance of
//!   `data_category`; the F-measure ×100 fills R[stage][task].
//! - Hugging Face `trainer_state.json`: `log_history` entries that have a `loss` become the
//!   loss curve (`step`, `loss`, `learning_rate`); evaluation and summary entries are skipped.

use inscl::artifact::{LossPoint, RunResults, SCHEMA_VERSION};
use inscl::metrics::{ContinualSummary, ScoreMatrix};
use serde_json::Value;

/// Why a log could not be imported. Every message names the file.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImportError {
    /// A line (1-based) is not a JSON object.
    #[error("{file}: line {line} is not a JSON object: {message}")]
    Line {
        /// The file, as given.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A line lacks a field or has it with the wrong type.
    #[error("{file}: line {line} has no {field}")]
    Field {
        /// The file, as given.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The field missing or of the wrong type.
        field: &'static str,
    },
    /// The evaluation of a task after a stage is missing, so R has a hole.
    #[error("{file}: no score of task \"{task}\" after stage {stage} (\"{model}\")")]
    Missing {
        /// The file, as given.
        file: String,
        /// 1-based stage without the score.
        stage: usize,
        /// The stage's model name, as the log writes it.
        model: String,
        /// The task's name.
        task: String,
    },
    /// Nothing usable in the file.
    #[error("{file}: {what}")]
    Empty {
        /// The file, as given.
        file: String,
        /// What the file lacks.
        what: &'static str,
    },
    /// The scores do not form a score matrix.
    #[error("{file}: {message}")]
    Metrics {
        /// The file, as given.
        file: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads InsCL's `output_state.jsonl` into results (R as ROUGE-L ×100 and its summary).
///
/// # Errors
/// [`ImportError`] for a malformed line, a missing field or a missing (stage, task) score.
pub fn inscl_output_state(file: &str, text: &str) -> Result<RunResults, ImportError> {
    let mut models: Vec<String> = Vec::new();
    let mut tasks: Vec<String> = Vec::new();
    let mut cells: Vec<(usize, usize, f64)> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| ImportError::Line {
            file: file.to_owned(),
            line: line_no,
            message: e.to_string(),
        })?;
        let field = |name: &'static str| ImportError::Field {
            file: file.to_owned(),
            line: line_no,
            field: name,
        };
        let task = value["data_category"]
            .as_str()
            .ok_or_else(|| field("\"data_category\""))?;
        let model = value["model_category"]
            .as_str()
            .ok_or_else(|| field("\"model_category\""))?;
        let rouge = &value["rouge-l"];
        let score = rouge
            .as_f64()
            .or_else(|| rouge["f"].as_f64())
            .ok_or_else(|| field("numeric \"rouge-l\" (or \"rouge-l\".\"f\")"))?;
        let position = |names: &mut Vec<String>, name: &str| {
            names.iter().position(|n| n == name).unwrap_or_else(|| {
                names.push(name.to_owned());
                names.len() - 1
            })
        };
        let stage = position(&mut models, model);
        let task = position(&mut tasks, task);
        cells.push((stage, task, score));
    }
    if models.is_empty() {
        return Err(ImportError::Empty {
            file: file.to_owned(),
            what: "no evaluation lines",
        });
    }
    // The rouge package reports fractions; the studio shows ×100 like the trainer.
    let scale = if cells.iter().all(|c| c.2 <= 1.0) {
        100.0
    } else {
        1.0
    };
    let rows = (0..models.len())
        .map(|i| {
            (0..=i)
                .map(|j| {
                    cells
                        .iter()
                        .rev()
                        .find(|c| c.0 == i && c.1 == j)
                        .map(|c| c.2 * scale)
                        .ok_or_else(|| ImportError::Missing {
                            file: file.to_owned(),
                            stage: i + 1,
                            model: models[i].clone(),
                            task: tasks
                                .get(j)
                                .cloned()
                                .unwrap_or_else(|| format!("#{}", j + 1)),
                        })
                })
                .collect::<Result<Vec<f64>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metrics = |e: inscl::metrics::MetricsError| ImportError::Metrics {
        file: file.to_owned(),
        message: e.to_string(),
    };
    let scores = ScoreMatrix::new(rows).map_err(metrics)?;
    let summary = ContinualSummary::from_scores(&scores, None, None).map_err(metrics)?;
    tasks.truncate(models.len());
    Ok(RunResults {
        schema_version: SCHEMA_VERSION,
        tasks,
        scores,
        zero_shot: None,
        upper_bounds: None,
        summary,
    })
}

/// Reads the training-loss curve of a Hugging Face `trainer_state.json`.
///
/// # Errors
/// [`ImportError`] when the file is not JSON, has no `log_history` or no entry with a loss.
pub fn hf_trainer_state(file: &str, text: &str) -> Result<Vec<LossPoint>, ImportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ImportError::Line {
        file: file.to_owned(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let history = value["log_history"]
        .as_array()
        .ok_or_else(|| ImportError::Field {
            file: file.to_owned(),
            line: 1,
            field: "\"log_history\" array",
        })?;
    let points: Vec<LossPoint> = history
        .iter()
        .filter_map(|entry| {
            Some(LossPoint {
                step: usize::try_from(entry["step"].as_u64()?).ok()?,
                loss: entry["loss"].as_f64()?,
                lr: entry["learning_rate"].as_f64().unwrap_or(0.0),
            })
        })
        .collect();
    if points.is_empty() {
        return Err(ImportError::Empty {
            file: file.to_owned(),
            what: "log_history has no entry with \"loss\" and \"step\"",
        });
    }
    Ok(points)
}
