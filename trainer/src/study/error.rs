//! Why a study could not run or be summarised.

use inscl::artifact::{self};

use crate::run::RunError;

use super::lock::LockedBy;

/// Why a study could not run or be summarised.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A study file could not be read or written.
    #[error("{file}: {error}")]
    Io {
        /// The file, as given.
        file: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A study file is not what it should be (the message says why).
    #[error("{file}: {message}")]
    Parse {
        /// The file, as given.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A grid that cannot be run.
    #[error("study {name}: {problem}")]
    Grid {
        /// The study's name.
        name: String,
        /// What is wrong with the grid.
        problem: String,
    },
    /// A cell index outside the grid.
    #[error("study {name}: there is no cell {index}; the grid has {count} cells, 0 to {}", count.saturating_sub(1))]
    NoCell {
        /// The study's name.
        name: String,
        /// The index asked for.
        index: usize,
        /// The grid's number of cells.
        count: usize,
    },
    /// The cell at an index is not the one a job was submitted for: the study configuration
    /// changed since.
    #[error(
        "study {name}: cell {index} is {found}, not {expected}: the study configuration changed \
         since the job was submitted; submit the study again"
    )]
    CellMoved {
        /// The study's name.
        name: String,
        /// The cell index of the job.
        index: usize,
        /// The cell the job was submitted for.
        expected: String,
        /// The cell now at that index.
        found: String,
    },
    /// A cell's run folder holds a run of another configuration.
    #[error(
        "study cell {cell}: {folder} holds a run of another configuration (field {field} differs); \
         remove it or choose another study name"
    )]
    Mismatch {
        /// The cell's name (`<strategy>-<order>-s<seed>`).
        cell: String,
        /// The cell's run folder.
        folder: String,
        /// The first field path that differs.
        field: String,
    },
    /// Another process holds the cell's lock.
    #[error("study cell {cell} is being run by {holder} (lock {lock}); not starting it twice")]
    Busy {
        /// The cell's name.
        cell: String,
        /// Who holds the lock (boxed: it is the largest variant).
        holder: Box<LockedBy>,
        /// The lock file.
        lock: String,
    },
    #[error("study cell {cell}: {source}")]
    /// A cell failed.
    Run {
        /// The cell's name (`<strategy>-<order>-s<seed>`).
        cell: String,
        #[source]
        /// Why.
        source: Box<RunError>,
    },
    /// The model of a cell could not be opened.
    #[error("study cell {cell}: opening the model: {source:#}")]
    ContinualLearner {
        /// The cell's name.
        cell: String,
        /// Why.
        source: anyhow::Error,
    },
    /// A scheduler command (`sbatch`, `squeue`) that failed.
    #[error("{command}: {message}")]
    Scheduler {
        /// The command run.
        command: String,
        /// What it printed, or why it could not run.
        message: String,
    },
    #[error(transparent)]
    /// A run artifact or `study.json` cannot be read or written.
    Artifact(#[from] artifact::ArtifactError),
    #[error(transparent)]
    /// A cell's configuration is invalid.
    Config(#[from] crate::config::ConfigError),
}
