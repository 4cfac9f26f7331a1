//! What a run writes about itself: `run.json` (the manifest), each stage's files and
//! `results.json`, and the upper bounds it reads from a finished `single` run.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use inscl::artifact::{
    self, EmbeddingsFile, ReplaySettings, RunManifest, RunResults, SCHEMA_VERSION, StageRecord,
    TaskEmbeddings, TaskInfo,
};
use inscl::metrics::{ContinualSummary, ScoreMatrix};

use super::error::io_error;
use super::state::RunState;
use super::{RunError, RunFolder, faults};
use crate::config::{Config, EmbeddingSource, RunStrategy};
use crate::data::{Dataset, InstructionGroup};
use crate::learner::ContinualLearner;

/// `run.json` of a new run.
pub(super) fn manifest(
    config: &Config,
    dataset: &Dataset,
    groups: &[Vec<InstructionGroup>],
    learner: &dyn ContinualLearner,
    versions: &[(String, String)],
) -> RunManifest {
    let mut all_versions: std::collections::BTreeMap<String, String> =
        versions.iter().cloned().collect();
    all_versions.insert("inscl".into(), inscl_version().into());
    all_versions.insert("trainer".into(), env!("CARGO_PKG_VERSION").into());
    RunManifest {
        schema_version: SCHEMA_VERSION,
        name: config.run_name(),
        model: config.model.path.clone(),
        order: dataset.order.clone(),
        tasks: dataset
            .tasks
            .iter()
            .zip(groups)
            .map(|(task, groups)| TaskInfo {
                name: task.name.clone(),
                instructions: groups.len(),
                train_instances: task.train.len(),
                test_instances: task.test.len(),
                data_report: Some(task.report.clone()),
            })
            .collect(),
        replay: ReplaySettings {
            strategy: config.strategy.name.name().into(),
            alpha: config.strategy.alpha,
            seed: config.run.seed,
            similarity: config.strategy.similarity,
            tags: config.strategy.effective_tag_normalizer(),
        },
        config: config.to_json(),
        versions: all_versions,
        device: learner.device(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

/// The core crate's version (both crates share the workspace version).
fn inscl_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The diagonal of a finished `single` run on the same tasks.
pub(super) fn read_upper_bounds(folder: &Path, dataset: &Dataset) -> Result<Vec<f64>, RunError> {
    let name = folder.display().to_string();
    let fail = |problem: String| RunError::UpperBounds {
        folder: name.clone(),
        problem,
    };
    let results: RunResults = artifact::read(&RunFolder::new(folder).results())?;
    let tasks: Vec<String> = dataset.tasks.iter().map(|t| t.name.clone()).collect();
    if results.tasks != tasks {
        return Err(fail(format!(
            "its tasks {:?} differ from this run's {:?}",
            results.tasks, tasks
        )));
    }
    if results.scores.stages() != tasks.len() {
        return Err(fail(format!(
            "it finished {} of {} stages",
            results.scores.stages(),
            tasks.len()
        )));
    }
    Ok((0..tasks.len())
        .map(|j| {
            results
                .scores
                .get(j, j)
                .expect("diagonal of a complete matrix")
        })
        .collect())
}

impl RunState<'_> {
    /// Saves the checkpoint, then writes `embeddings.json`, the stage file (which marks the
    /// stage finished) and `results.json`, and prunes old checkpoints.
    pub(super) fn write_stage(
        &mut self,
        learner: &dyn ContinualLearner,
        record: StageRecord,
        embeddings: Vec<TaskEmbeddings>,
    ) -> Result<(), RunError> {
        let stage = record.stage;
        self.folder
            .save_checkpoint(learner, stage)
            .map_err(|source| RunError::ContinualLearner {
                stage,
                what: "saving the checkpoint",
                error: source,
            })?;
        let source = self.config.embedding.source;
        artifact::write_atomic(
            &self.folder.embeddings(),
            &EmbeddingsFile {
                schema_version: SCHEMA_VERSION,
                model: match source {
                    EmbeddingSource::File => self.config.embedding.file.clone(),
                    _ => Some(self.config.model.path.clone()),
                },
                layer: self.config.embedding.layer,
                source: Some(source.name().to_owned()),
                pooling: (source != EmbeddingSource::File).then(|| "mean".to_owned()),
                stage: (source == EmbeddingSource::Current).then_some(stage),
                tasks: embeddings,
            },
        )?;
        faults::point("stage-write");
        artifact::write_atomic(&self.folder.stage(stage), &record)?;
        self.rows
            .push(record.eval.iter().map(|e| e.rouge_l).collect());
        faults::point("results-write");
        artifact::write_atomic(&self.folder.results(), &self.results()?)?;
        self.folder
            .prune_checkpoints(stage, self.config.output.keep_checkpoints)
            .map_err(io_error(self.folder.root()))?;
        Ok(())
    }

    /// `results.json` over the finished stages.
    pub(super) fn results(&self) -> Result<RunResults, RunError> {
        let tasks: Vec<String> = self.dataset.tasks.iter().map(|t| t.name.clone()).collect();
        let (scores, upper) = match self.config.strategy.name {
            // One joint model: every "stage" row is the same final row.
            RunStrategy::Multitask => (
                ScoreMatrix::from_square(vec![self.rows[0].clone(); tasks.len()])?,
                self.upper_bounds.clone(),
            ),
            RunStrategy::Single => {
                let scores = ScoreMatrix::new(self.rows.clone())?;
                let diagonal = (self.rows.len() == tasks.len()).then(|| {
                    (0..tasks.len())
                        .map(|j| self.rows[j][j])
                        .collect::<Vec<_>>()
                });
                (scores, diagonal)
            }
            RunStrategy::Sequential(_) => (
                ScoreMatrix::new(self.rows.clone())?,
                self.upper_bounds.clone(),
            ),
        };
        let stages = scores.stages();
        let zero_shot = self.zero_shot.as_ref().map(|z| z[..stages].to_vec());
        // Relative Gain divides by the upper bounds: only defined when all are positive.
        let upper = upper
            .filter(|u| u.iter().all(|&v| v > 0.0))
            .map(|u| u[..stages].to_vec());
        let summary =
            ContinualSummary::from_scores(&scores, zero_shot.as_deref(), upper.as_deref())?;
        Ok(RunResults {
            schema_version: SCHEMA_VERSION,
            tasks: tasks[..stages].to_vec(),
            scores,
            zero_shot,
            upper_bounds: upper,
            summary,
        })
    }
}
