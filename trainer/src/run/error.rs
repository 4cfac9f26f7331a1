//! Why a run stopped.

use std::path::Path;

use inscl::artifact;

use super::embedding;
use crate::data;

/// Why a run stopped. Nothing half-written is left behind in any case.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    /// The configuration is invalid.
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    /// The data cannot be read.
    Data(#[from] data::DataError),
    #[error(transparent)]
    /// The tags cannot be made.
    Tags(#[from] crate::tags::TagError),
    #[error(transparent)]
    /// The `embedding.file` vectors cannot be used.
    VectorFile(#[from] embedding::VectorFileError),
    #[error("stage {stage}: replay plan: {source}")]
    /// The core crate refused to plan a stage.
    Plan {
        /// 1-based stage.
        stage: usize,
        /// The planner's error.
        source: inscl::plan::PlanError,
    },
    #[error(transparent)]
    /// An artifact cannot be read or written.
    Artifact(#[from] artifact::ArtifactError),
    #[error("score matrix: {0}")]
    /// The scores do not form a score matrix.
    Metrics(#[from] inscl::metrics::MetricsError),
    /// The run folder exists and `--resume` was not given.
    #[error(
        "{folder} already exists: resume it with `trainer run --resume {folder}` or choose another --name"
    )]
    Exists {
        /// The run folder.
        folder: String,
    },
    /// `--resume` on a folder without `run.json`.
    #[error("{folder} is not a run folder (no run.json)")]
    NotARun {
        /// The run folder.
        folder: String,
    },
    /// A finished stage whose checkpoint is gone.
    #[error(
        "cannot resume {folder}: stage {stage} is finished but its checkpoint {checkpoint} is missing"
    )]
    MissingCheckpoint {
        /// The run folder.
        folder: String,
        /// 1-based stage.
        stage: usize,
        /// The checkpoint folder that is missing.
        checkpoint: String,
    },
    /// The training loss became NaN or infinite.
    #[error(
        "stage {stage} (task \"{task}\"): training loss is {loss} at step {step}; stopped before writing the stage \
         (lower training.lr or raise training.clip_norm; the run can be resumed from the previous stage)"
    )]
    NonFiniteLoss {
        /// 1-based stage.
        stage: usize,
        /// The task's name.
        task: String,
        /// Optimiser step within the stage, 1-based.
        step: usize,
        /// The loss value (NaN or ±inf).
        loss: f64,
    },
    /// Ctrl-C.
    #[error("interrupted during stage {stage}; resume with `trainer run --resume {folder}`")]
    Interrupted {
        /// 1-based stage.
        stage: usize,
        /// The run folder.
        folder: String,
    },
    /// The learner failed. The cause is in the message (with its chain), so not also a
    /// `source`: printed with its sources, it would repeat.
    #[error("stage {stage}: {what}: {error:#}")]
    ContinualLearner {
        /// 1-based stage.
        stage: usize,
        /// What the learner was doing.
        what: &'static str,
        /// The learner's error.
        error: anyhow::Error,
    },
    /// The upper-bound run does not fit this run.
    #[error("eval.upper_bounds {folder}: {problem}")]
    UpperBounds {
        /// The run folder.
        folder: String,
        /// What does not fit.
        problem: String,
    },
    /// A file or folder of the run could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: String,
        /// The learner's error.
        error: std::io::Error,
    },
}

pub(super) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |error| RunError::Io {
        path: path.display().to_string(),
        error,
    }
}
