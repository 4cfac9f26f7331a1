//! Where a study stands, read from its folder alone (no scheduler needed): every cell done,
//! running (its lock is held), failed (its last attempt ended with an error, or was killed
//! before it could record an end) or pending (never started, or stopped on request), with its
//! finished stages and, for Slurm jobs, its log file.

use std::path::{Path, PathBuf};

use super::lock::{self, CellOutcome, LockedBy};
use super::{Cell, CellState, StudyConfig, StudyError, cell_folder, cell_state, slurm};

/// Where one cell stands.
/// Where a cell stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellProgress {
    /// Its run finished.
    Done,
    /// A process holds its lock.
    Running {
        /// Who holds the lock.
        holder: LockedBy,
    },
    /// Its last attempt failed; why.
    Failed {
        /// The recorded outcome.
        reason: String,
    },
    /// Never started, or stopped on request; runs (or resumes) when started.
    Pending,
}

/// One cell of [`study_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellStatus {
    /// The cell's index ([`StudyConfig::cells`]).
    pub index: usize,
    /// The cell.
    pub cell: Cell,
    /// Where it stands.
    pub progress: CellProgress,
    /// `(finished, total)` stages of a partial run folder.
    pub stages: Option<(usize, usize)>,
    /// The cell's Slurm log, when there is one.
    pub log: Option<PathBuf>,
}

impl CellStatus {
    /// Done or running: nothing to start.
    pub fn settled(&self) -> bool {
        matches!(
            self.progress,
            CellProgress::Done | CellProgress::Running { .. }
        )
    }
}

/// Every cell of `study` (under `root`) and where it stands.
///
/// # Errors
/// A grid or configuration error; an unreadable lock file or `run.json`. A cell folder of
/// another configuration is a failed cell, not an error.
pub fn study_status(study: &StudyConfig, root: &Path) -> Result<Vec<CellStatus>, StudyError> {
    let folder = study.folder(root);
    study
        .cells()?
        .into_iter()
        .enumerate()
        .map(|(index, cell)| {
            let config = study.cell_config(&cell)?;
            let state = cell_state(&cell, &config, &cell_folder(&folder, &cell));
            let probe = lock::probe(&lock::lock_file(&folder, &cell.name()))?;
            let stages = match state {
                Ok(CellState::Partial { finished, stages }) => Some((finished, stages)),
                _ => None,
            };
            let progress = match state {
                Ok(CellState::Finished) => CellProgress::Done,
                _ if probe.held => CellProgress::Running {
                    holder: LockedBy(probe.record.map(|r| r.holder)),
                },
                Err(error @ StudyError::Mismatch { .. }) => CellProgress::Failed {
                    reason: error.to_string(),
                },
                Err(error) => return Err(error),
                Ok(_) => match probe.record {
                    Some(record) => match record.ended.map(|end| end.outcome) {
                        Some(CellOutcome::Failed(error)) => CellProgress::Failed { reason: error },
                        None => CellProgress::Failed {
                            reason: format!(
                                "killed or crashed without recording an end (time limit, \
                                 preemption, scancel, out of memory); last run by {}",
                                record.holder
                            ),
                        },
                        Some(CellOutcome::Interrupted | CellOutcome::Finished) => {
                            CellProgress::Pending
                        }
                    },
                    None => CellProgress::Pending,
                },
            };
            let log = slurm::cell_log(&folder, index);
            Ok(CellStatus {
                index,
                cell,
                progress,
                stages,
                log: log.is_file().then_some(log),
            })
        })
        .collect()
}

/// The status table: a count line, then one line per cell (index, cell, state, detail).
pub fn format_status(study: &StudyConfig, cells: &[CellStatus]) -> String {
    let count = |f: fn(&CellProgress) -> bool| cells.iter().filter(|c| f(&c.progress)).count();
    let mut out = format!(
        "study {}: {} cells: {} done, {} running, {} failed, {} pending\n",
        study.name,
        cells.len(),
        count(|p| matches!(p, CellProgress::Done)),
        count(|p| matches!(p, CellProgress::Running { .. })),
        count(|p| matches!(p, CellProgress::Failed { .. })),
        count(|p| matches!(p, CellProgress::Pending)),
    );
    let width = cells
        .iter()
        .map(|c| c.cell.name().chars().count())
        .chain(["cell".len()])
        .max()
        .unwrap_or_default();
    out.push_str(&format!(
        "{:>5}  {:<width$}  {:<7}  detail\n",
        "index", "cell", "state"
    ));
    for status in cells {
        let (state, mut detail) = match &status.progress {
            CellProgress::Done => ("done", Vec::new()),
            CellProgress::Running { holder } => ("running", vec![format!("by {holder}")]),
            CellProgress::Failed { reason } => ("failed", vec![reason.clone()]),
            CellProgress::Pending => ("pending", Vec::new()),
        };
        if let Some((finished, total)) = status.stages {
            detail.push(format!("{finished} of {total} stages done"));
        }
        if let Some(log) = &status.log {
            detail.push(format!("log {}", log.display()));
        }
        out.push_str(&format!(
            "{:>5}  {:<width$}  {:<7}  {}\n",
            status.index,
            status.cell.name(),
            state,
            detail.join("; ")
        ));
    }
    out
}
