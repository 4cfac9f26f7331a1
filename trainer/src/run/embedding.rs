//! The run's instruction embeddings: the space every task distance W of the run compares.
//!
//! - `[embedding] source = "base"`: the pretrained weights embed every instruction once
//!   ([`Weights::Base`]), cached in the run folder (`cache/embed-KEY.json`): one space for
//!   every stage.
//! - `current`: at each stage the learner's present weights embed every seen task again (cached
//!   per stage), so both sides of each W come from one model.
//! - `file`: an external sentence encoder's vectors ([`read_vector_file`]).
//!
//! Vector files are keyed by instruction id ([`crate::data::instruction_id`]) or text.
//!
//! Accepted shapes, told apart by content whatever the extension ([`RecordFile`]):
//! - JSON Lines, one record per line: `{"instruction_id": ID, "embedding": [f32, ...]}` or
//!   `{"text": TEXT, "embedding": [...]}`;
//! - a JSON array of such records;
//! - an `embeddings.json` of another run or of `trainer plan` (`{"tasks": [{"instructions":
//!   [{"id", "text", "embedding"}]}]}`; instructions are matched by text).
//!
//! Every instruction of the run must have a vector, all of one dimension, finite and not all
//! zero (cosine cost divides by the norm); anything else is an error naming the file and the
//! record or instruction.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use inscl::artifact::{self, InstructionEmbedding, TaskEmbeddings};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::state::RunState;
use super::{RunError, faults};
use crate::config::EmbeddingSource;
use crate::data::InstructionGroup;
use crate::data::records::RecordFile;
use crate::learner::{ContinualLearner, Weights};

/// Why the vector file cannot serve the run.
#[derive(Debug, thiserror::Error)]
pub enum VectorFileError {
    /// Not readable, not JSON, or a record that is not an object.
    #[error("embedding.file: {0}")]
    Read(#[from] crate::data::DataError),
    /// A line or document that is not a vector record.
    #[error(
        "embedding.file {file}, {record}: expected {{\"instruction_id\" | \"text\": ..., \"embedding\": [numbers]}}: {problem}"
    )]
    Record {
        /// The vector file.
        file: String,
        /// The record, by its key.
        record: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A vector of another dimension than the first one.
    #[error(
        "embedding.file {file}, {record}: the embedding has {found} dimensions, the first one has {expected}"
    )]
    Dimension {
        /// The vector file.
        file: String,
        /// The record, by its key.
        record: String,
        /// The record's dimension.
        found: usize,
        /// The first record's dimension.
        expected: usize,
    },
    /// An instruction of the run without a vector.
    #[error(
        "embedding.file {file} has no vector for instruction {id} of task \"{task}\" (text: {text:?}); add a record with \"instruction_id\": \"{id}\" or its \"text\""
    )]
    Missing {
        /// The vector file.
        file: String,
        /// The instruction's task.
        task: String,
        /// The instruction id.
        id: String,
        /// The instruction's text (shortened).
        text: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorRecord {
    #[serde(default)]
    instruction_id: Option<String>,
    #[serde(default)]
    text: Option<String>,
    embedding: Vec<f32>,
}

/// The vectors of a file, by id and by text.
#[derive(Debug, Default)]
struct Vectors {
    by_id: HashMap<String, Vec<f32>>,
    by_text: HashMap<String, Vec<f32>>,
}

/// The vector of every instruction of every task (`tasks[t]` are task t's instruction groups,
/// named `names[t]`), read from `path`.
///
/// # Errors
/// [`VectorFileError`] naming the file and the record or instruction at fault.
pub fn read_vector_file(
    path: &Path,
    names: &[String],
    tasks: &[Vec<InstructionGroup>],
) -> Result<Vec<Vec<Vec<f32>>>, VectorFileError> {
    let file = path.display().to_string();
    let vectors = parse(&file, &RecordFile::read(path)?)?;
    names
        .iter()
        .zip(tasks)
        .map(|(task, groups)| {
            groups
                .iter()
                .map(|group| {
                    vectors
                        .by_id
                        .get(&group.id)
                        .or_else(|| vectors.by_text.get(&group.text))
                        .cloned()
                        .ok_or_else(|| VectorFileError::Missing {
                            file: file.clone(),
                            task: task.clone(),
                            id: group.id.clone(),
                            text: crate::data::show_text(&group.text),
                        })
                })
                .collect()
        })
        .collect()
}

fn parse(file: &str, read: &RecordFile) -> Result<Vectors, VectorFileError> {
    let record_error = |record: String, problem: String| VectorFileError::Record {
        file: file.to_owned(),
        record,
        problem,
    };
    let all: Vec<_> = read.records().collect();
    let mut records: Vec<(String, VectorRecord)> = Vec::new();
    match all.as_slice() {
        [only] if only.get("tasks").is_some() => {
            let parsed: inscl::artifact::EmbeddingsFile =
                serde_json::from_value(only.value.clone())
                    .map_err(|e| record_error("the document".into(), e.to_string()))?;
            for (t, task) in parsed.tasks.into_iter().enumerate() {
                for (q, instruction) in task.instructions.into_iter().enumerate() {
                    records.push((
                        format!("tasks[{t}].instructions[{q}]"),
                        VectorRecord {
                            instruction_id: None,
                            text: Some(instruction.text),
                            embedding: instruction.embedding,
                        },
                    ));
                }
            }
        }
        _ => {
            for record in all {
                let name = format!("line {}", record.line);
                let parsed = serde_json::from_value(record.value.clone())
                    .map_err(|e| record_error(name.clone(), e.to_string()))?;
                records.push((name, parsed));
            }
        }
    }
    let mut vectors = Vectors::default();
    let mut dimension: Option<usize> = None;
    for (name, record) in records {
        let expected = *dimension.get_or_insert(record.embedding.len());
        if record.embedding.len() != expected {
            return Err(VectorFileError::Dimension {
                file: file.to_owned(),
                record: name,
                found: record.embedding.len(),
                expected,
            });
        }
        if record.embedding.is_empty()
            || record.embedding.iter().any(|x| !x.is_finite())
            || record.embedding.iter().all(|&x| x == 0.0)
        {
            return Err(record_error(
                name,
                "the embedding must be non-empty, finite and not all zero".into(),
            ));
        }
        match (record.instruction_id, record.text) {
            (Some(id), text) => {
                if let Some(text) = text {
                    vectors.by_text.insert(text, record.embedding.clone());
                }
                vectors.by_id.insert(id, record.embedding);
            }
            (None, Some(text)) => {
                vectors.by_text.insert(text, record.embedding);
            }
            (None, None) => {
                return Err(record_error(
                    name,
                    "the record has neither \"instruction_id\" nor \"text\"".into(),
                ));
            }
        }
    }
    Ok(vectors)
}

impl RunState<'_> {
    /// For `base` and `file`: the one embedding space of the run, every task's instructions
    /// (base vectors are cached in the run folder). `None` for `current`.
    pub(super) fn fixed_space(
        &self,
        learner: &mut dyn ContinualLearner,
    ) -> Result<Option<Vec<Vec<Vec<f32>>>>, RunError> {
        match self.config.embedding.source {
            EmbeddingSource::Current => Ok(None),
            EmbeddingSource::Base => self
                .embed_tasks(learner, 0, self.dataset.tasks.len(), Weights::Base)
                .map(Some),
            EmbeddingSource::File => {
                let file = self
                    .config
                    .embedding
                    .file
                    .as_deref()
                    .expect("validated: source = file has a file");
                let names: Vec<String> =
                    self.dataset.tasks.iter().map(|t| t.name.clone()).collect();
                Ok(Some(read_vector_file(
                    &self.root_path(file),
                    &names,
                    self.groups,
                )?))
            }
        }
    }

    /// A path of the configuration, relative to the run's root folder.
    fn root_path(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    /// The vectors of the first `tasks` tasks' instructions under `weights`, from the run
    /// folder's cache or the learner. `stage` is part of the cache key for `current` (the
    /// model differs per stage); `0` for `base`.
    fn embed_tasks(
        &self,
        learner: &mut dyn ContinualLearner,
        stage: usize,
        tasks: usize,
        weights: Weights,
    ) -> Result<Vec<Vec<Vec<f32>>>, RunError> {
        let texts: Vec<String> = self.groups[..tasks]
            .iter()
            .flatten()
            .map(|g| g.text.clone())
            .collect();
        let mut hasher = Sha256::new();
        hasher.update(format!(
            "{}\0{:?}\0{stage}\0{:?}\0",
            self.config.model.path, weights, self.config.embedding.layer
        ));
        for text in &texts {
            hasher.update(text.as_bytes());
            hasher.update([0]);
        }
        let key: String = hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cache = self.folder.embedding_cache(&key);
        let cached: Option<Vec<Vec<f32>>> = std::fs::read_to_string(&cache)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .filter(|vectors: &Vec<Vec<f32>>| vectors.len() == texts.len());
        let vectors = match cached {
            Some(vectors) => vectors,
            None => {
                let failed = |source| RunError::ContinualLearner {
                    stage,
                    what: "embedding instructions",
                    error: source,
                };
                let vectors = learner.embed(&texts, weights).map_err(failed)?;
                if vectors.len() != texts.len() {
                    return Err(failed(anyhow::anyhow!(
                        "{} embeddings for {} texts",
                        vectors.len(),
                        texts.len()
                    )));
                }
                let text = serde_json::to_string(&vectors).expect("vectors serialise");
                faults::point("embed-cache-write");
                artifact::write_text_atomic(&cache, &text)?;
                vectors
            }
        };
        let mut vectors = vectors.into_iter();
        Ok(self.groups[..tasks]
            .iter()
            .map(|groups| vectors.by_ref().take(groups.len()).collect())
            .collect())
    }

    /// The instructions of the first `seen` tasks with counts, tags and the vectors the plan of
    /// `stage` compares: the run's one space, or for `current` the learner's present weights.
    pub(super) fn stage_embeddings(
        &self,
        learner: &mut dyn ContinualLearner,
        stage: usize,
        seen: usize,
    ) -> Result<Vec<TaskEmbeddings>, RunError> {
        let vectors = match &self.fixed_space {
            Some(space) => space[..seen].to_vec(),
            None => self.embed_tasks(learner, stage, seen, Weights::Current)?,
        };
        Ok(vectors
            .into_iter()
            .enumerate()
            .map(|(task, vectors)| TaskEmbeddings {
                name: self.dataset.tasks[task].name.clone(),
                instructions: self.groups[task]
                    .iter()
                    .zip(vectors)
                    .zip(&self.tags[task])
                    .map(|((group, embedding), tags)| InstructionEmbedding {
                        id: group.id.clone(),
                        text: group.text.clone(),
                        count: group.instances.len() as u32,
                        tags: tags.clone(),
                        embedding,
                    })
                    .collect(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> (Vec<String>, Vec<Vec<InstructionGroup>>) {
        let group = |text: &str| InstructionGroup {
            id: crate::data::instruction_id(text),
            text: text.into(),
            instances: vec![0],
        };
        (
            vec!["a".into(), "b".into()],
            vec![
                vec![group("Classify."), group("Summarise.")],
                vec![group("Add.")],
            ],
        )
    }

    fn read(text: &str) -> Result<Vec<Vec<Vec<f32>>>, VectorFileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors.json");
        std::fs::write(&path, text).unwrap();
        let (names, tasks) = groups();
        read_vector_file(&path, &names, &tasks)
    }

    #[test]
    fn jsonl_array_and_embeddings_file_by_id_or_text() {
        let id = crate::data::instruction_id("Classify.");
        let jsonl = format!(
            "{{\"instruction_id\": \"{id}\", \"embedding\": [1, 0]}}\n\n\
             {{\"text\": \"Summarise.\", \"embedding\": [0, 1]}}\n\
             {{\"text\": \"Add.\", \"embedding\": [1, 1]}}\n"
        );
        let expected = vec![vec![vec![1.0, 0.0], vec![0.0, 1.0]], vec![vec![1.0, 1.0]]];
        assert_eq!(read(&jsonl).unwrap(), expected);
        let array = format!(
            "[{}]",
            jsonl
                .lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(read(&array).unwrap(), expected);
        let run_file = r#"{"tasks": [{"name": "x", "instructions": [
            {"id": "q0", "text": "Classify.", "count": 1, "embedding": [1, 0]},
            {"id": "q1", "text": "Summarise.", "count": 1, "embedding": [0, 1]},
            {"id": "q2", "text": "Add.", "count": 1, "embedding": [1, 1]}]}]}"#;
        assert_eq!(read(run_file).unwrap(), expected);
    }

    #[test]
    fn missing_instruction_and_wrong_dimension_are_named() {
        let err = read(r#"{"text": "Classify.", "embedding": [1, 0]}"#)
            .unwrap_err()
            .to_string();
        let id = crate::data::instruction_id("Summarise.");
        assert!(
            err.contains(&format!("no vector for instruction {id} of task \"a\""))
                && err.contains("\"Summarise.\""),
            "{err}"
        );
        let err = read("{\"text\": \"Classify.\", \"embedding\": [1, 0]}\n{\"text\": \"Add.\", \"embedding\": [1, 0, 2]}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2: the embedding has 3 dimensions, the first one has 2"),
            "{err}"
        );
        let err = read("{\"text\": \"Add.\", \"embedding\": [0, 0]}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 1") && err.contains("not all zero"),
            "{err}"
        );
        let err = read("{\"embedding\": [1]}").unwrap_err().to_string();
        assert!(err.contains("neither"), "{err}");
        let err = read("{\"text\": \"Add.\", \"vector\": [1]}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && err.contains("vector"), "{err}");
    }
}
