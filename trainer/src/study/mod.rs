//! `trainer study`: methods × strategies × seeds × task orders in one command, every cell an
//! ordinary run folder, and what the cells say together with its uncertainty (`study.json`,
//! [`inscl::artifact::StudyFile`]).
//!
//! A study folder `studies/NAME/` holds `runs/CELL/` for every cell
//! (`<strategy>-<order>-s<seed>`, `<strategy>+<method>-<order>-s<seed>` for a method other than
//! `seq`) and, when Relative Gain is asked for, one `single-<order>-s<seed>` run per order (the
//! first seed) whose diagonal gives RG's upper bounds. [`run_study`] runs the cells one after
//! the other; [`run_cell`] runs one cell by its index ([`StudyConfig::cells`] numbers them), which
//! is what a scheduler calls (Slurm array tasks: [`slurm`]). A finished cell is skipped and a
//! half-finished one resumed (`trainer run --resume`), so a killed study started again loses no
//! finished work and ends with the same `study.json`; an exclusive lock per cell ([`lock`])
//! keeps two processes from running the same cell. `trainer compare`, the studio and `--resume`
//! work on every cell as on any run.
//!
//! The statistics ([`inscl::metrics::study`]): per arm (method and strategy) and metric (AP,
//! F.Ra, BWT, FWT, RG) n, mean, sd and the 95% t-interval over its cells; per pair of arms that
//! differ in one factor the differences over matched (seed, order) cells with a seeded
//! percentile bootstrap 95% CI and the exact sign-flip permutation p-value; per arm and order
//! the R matrix averaged over seeds.

pub mod lock;
pub mod slurm;
pub mod status;

mod config;
mod error;
mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use inscl::artifact::{self, RunManifest, StudyFile};

use crate::config::{Config, RunStrategy};
use crate::learner::ContinualLearner;
use crate::progress::Progress;
use crate::run::{self, RunError, RunFolder, RunOptions};

use lock::{CellLock, CellOutcome};

pub use config::{Cell, StudyConfig};
pub use error::StudyError;
pub use summary::{format_study, summarize};

/// How to run a study besides its configuration.
pub struct StudyOptions<'a> {
    /// Folder that relative paths (data, model, output) start from.
    pub root: PathBuf,
    /// Set (e.g. by Ctrl-C) to stop the current cell resumably.
    pub interrupt: Arc<AtomicBool>,
    /// Opens the learner of a cell's configuration (the CLI opens the burn LLaMA).
    pub open_learner: &'a mut dyn FnMut(&Config) -> anyhow::Result<Box<dyn ContinualLearner>>,
    /// Progress of each cell's run (one bar set per cell).
    pub progress: &'a mut dyn FnMut() -> Progress,
    /// One line per cell: `done/total`, the cell, ETA.
    pub report: &'a mut dyn FnMut(&str),
}

/// Runs every unfinished cell of `study` in index order, then writes and returns
/// `study.json`.
///
/// # Errors
/// [`StudyError`] naming the cell (also [`StudyError::Busy`] when another process runs one);
/// the study folder then holds every finished cell, and running the study again continues
/// where it stopped.
pub fn run_study(
    study: &StudyConfig,
    options: &mut StudyOptions<'_>,
) -> Result<StudyFile, StudyError> {
    let cells = study.cells()?;
    let folder = study.folder(&options.root);
    let started = Instant::now();
    let mut ran = 0usize;
    for (index, cell) in cells.iter().enumerate() {
        let config = study.cell_config(cell)?;
        let state = cell_state(cell, &config, &cell_folder(&folder, cell))?;
        let left = cells.len() - index;
        let eta = (ran > 0).then(|| started.elapsed().as_secs_f64() / ran as f64 * left as f64);
        (options.report)(&format!(
            "study {}: cell {}/{} {} ({}; {} left{})",
            study.name,
            index + 1,
            cells.len(),
            cell.name(),
            state.verb(),
            left - usize::from(state == CellState::Finished),
            eta.map(|s| format!(", ETA {:.0} min", s / 60.0))
                .unwrap_or_default()
        ));
        if state == CellState::Finished {
            continue;
        }
        run_locked(cell, &config, &folder, options)?;
        ran += 1;
    }
    let summary = summarize(study, &folder)?;
    artifact::write_atomic(&folder.join("study.json"), &summary)?;
    Ok(summary)
}

/// Runs cell `index` of `study` alone ([`StudyConfig::cells`] numbers them): starts it,
/// resumes it when half done, or does nothing when it is finished. `expected`, when given, is
/// the cell's name the caller expects at that index (a scheduler's job names the cell it was
/// submitted for). Does not write `study.json` ([`summarize`] does, once the cells are done).
///
/// # Errors
/// [`StudyError::NoCell`], [`StudyError::CellMoved`], [`StudyError::Busy`] when another
/// process holds the cell, or the run's error naming the cell.
pub fn run_cell(
    study: &StudyConfig,
    index: usize,
    expected: Option<&str>,
    options: &mut StudyOptions<'_>,
) -> Result<(), StudyError> {
    let count = study.cells()?.len();
    let cell = study.cell(index)?;
    if let Some(expected) = expected.filter(|&e| e != cell.name()) {
        return Err(StudyError::CellMoved {
            name: study.name.clone(),
            index,
            expected: expected.to_owned(),
            found: cell.name(),
        });
    }
    let config = study.cell_config(&cell)?;
    let folder = study.folder(&options.root);
    let state = cell_state(&cell, &config, &cell_folder(&folder, &cell))?;
    (options.report)(&format!(
        "study {}: cell {index} of 0..{} {} ({})",
        study.name,
        count - 1,
        cell.name(),
        state.verb()
    ));
    if state != CellState::Finished {
        run_locked(&cell, &config, &folder, options)?;
    }
    Ok(())
}

/// Takes `cell`'s lock, runs (or resumes) it unless another process finished it meanwhile,
/// and records how the attempt ended in the lock file.
fn run_locked(
    cell: &Cell,
    config: &Config,
    study_folder: &Path,
    options: &mut StudyOptions<'_>,
) -> Result<(), StudyError> {
    let lock = CellLock::acquire(&lock::lock_file(study_folder, &cell.name()), &cell.name())?;
    let run_folder = cell_folder(study_folder, cell);
    let result = match cell_state(cell, config, &run_folder) {
        Ok(CellState::Finished) => Ok(()),
        Ok(state) => run_unlocked(cell, config, &run_folder, state, options),
        Err(error) => Err(error),
    };
    let outcome = match &result {
        Ok(()) => CellOutcome::Finished,
        Err(StudyError::Run { source, .. }) if matches!(**source, RunError::Interrupted { .. }) => {
            CellOutcome::Interrupted
        }
        Err(error) => CellOutcome::Failed(error.to_string()),
    };
    lock.release(outcome)?;
    result
}

/// Opens the cell's learner and runs its configuration, resuming a partial run folder.
fn run_unlocked(
    cell: &Cell,
    config: &Config,
    run_folder: &Path,
    state: CellState,
    options: &mut StudyOptions<'_>,
) -> Result<(), StudyError> {
    let mut learner =
        (options.open_learner)(config).map_err(|source| StudyError::ContinualLearner {
            cell: cell.name(),
            source,
        })?;
    let mut run_options = RunOptions::new(&options.root);
    run_options.interrupt = options.interrupt.clone();
    run_options.progress = (options.progress)();
    if matches!(state, CellState::Partial { .. }) {
        run_options.resume = Some(run_folder.to_owned());
    }
    run::run(config, learner.as_mut(), &mut run_options).map_err(|source| StudyError::Run {
        cell: cell.name(),
        source: Box::new(source),
    })?;
    Ok(())
}

/// `runs/CELL` of the study folder.
fn cell_folder(study_folder: &Path, cell: &Cell) -> PathBuf {
    study_folder.join("runs").join(cell.name())
}

/// What a cell's run folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellState {
    /// No run yet.
    New,
    /// A run with `finished` of its stages done (zero-shot included in none).
    Partial {
        /// Stages done.
        finished: usize,
        /// Stages of the run.
        stages: usize,
    },
    /// Every stage and `results.json`.
    Finished,
}

impl CellState {
    /// What running the cell does now.
    fn verb(self) -> &'static str {
        match self {
            CellState::Finished => "finished, skipped",
            CellState::Partial { .. } => "resuming",
            CellState::New => "starting",
        }
    }
}

/// Whether `folder` holds nothing, a half-finished or a finished run of `config`.
///
/// # Errors
/// [`StudyError::Mismatch`] when it holds a run of another configuration; an unreadable
/// `run.json`.
pub fn cell_state(cell: &Cell, config: &Config, folder: &Path) -> Result<CellState, StudyError> {
    let run = RunFolder::new(folder);
    if !run.manifest().is_file() {
        return Ok(CellState::New);
    }
    // One read of run.json: the stored configuration and the task count.
    let manifest: RunManifest = artifact::read(&run.manifest())?;
    let stored = Config::from_json(&manifest.config).map_err(|source| StudyError::Run {
        cell: cell.name(),
        source: Box::new(source.into()),
    })?;
    if let Some(field) = first_difference(&config.to_json(), &stored.to_json(), "") {
        return Err(StudyError::Mismatch {
            cell: cell.name(),
            folder: folder.display().to_string(),
            field,
        });
    }
    let stages = match config.strategy.name {
        RunStrategy::Multitask => 1,
        _ => manifest.tasks.len(),
    };
    let finished = run.finished_stages();
    Ok(if finished >= stages && run.results().is_file() {
        CellState::Finished
    } else {
        CellState::Partial { finished, stages }
    })
}

/// The first field path where two configurations differ, ignoring `output` (where the run
/// folder is, not what was run).
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, prefix: &str) -> Option<String> {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => x
            .keys()
            .chain(y.keys())
            .filter(|key| !(prefix.is_empty() && *key == "output"))
            .find_map(|key| {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                match (x.get(key), y.get(key)) {
                    (Some(u), Some(v)) => first_difference(u, v, &path),
                    _ => Some(path),
                }
            }),
        _ => (a != b).then(|| prefix.to_owned()),
    }
}
