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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use inscl::artifact::{
    self, ArmSummary, PairedComparison, RunManifest, RunResults, SCHEMA_VERSION, ScoreCurves,
    StudyArm, StudyCell, StudyFile,
};
use inscl::metrics::ContinualSummary;
use inscl::metrics::study::{Described, compare_paired, describe};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, RunStrategy};
use crate::learner::Learner;
use crate::method::MethodName;
use crate::progress::Progress;
use crate::run::{self, RunError, RunFolder, RunOptions};

use lock::{CellLock, CellOutcome, LockedBy};
use slurm::SlurmConfig;

/// A study: the grid and the run settings every cell shares. Read from a TOML file
/// (`trainer/configs/study-inscl16-small.toml` is an example) and/or flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Folder name under `output`.
    pub name: String,
    /// Replay strategies compared (`none`, `random`, `dynamic`, `insinfo`, `inscl`,
    /// `multitask`).
    pub strategies: Vec<RunStrategy>,
    /// Continual-learning methods crossed with the strategies (`seq`, `ewc`, ...). Empty: the
    /// one method of the run configuration (`method.name` after `set`, `seq` by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<MethodName>,
    /// Run seeds; every arm and order runs with each.
    pub seeds: Vec<u64>,
    /// Task orders: the data's named orders (`curriculum`, `reverse`, ...) or the study's own
    /// from `task_orders`.
    pub orders: Vec<String>,
    /// Adds one `single` run per order and fills Relative Gain.
    #[serde(default)]
    pub relative_gain: bool,
    /// `section.field=value` overrides of the embedded run configuration, for every cell.
    #[serde(default)]
    pub set: Vec<String>,
    /// Folder of study folders, relative to the working directory.
    #[serde(default = "default_output")]
    pub output: String,
    /// Task orders the study defines (`[task_orders]`, name → task names in training order),
    /// usable in `orders` beside the data's own; a cell of one trains `data.tasks` = its list
    /// (then cut by `data.first`, as any list).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_orders: BTreeMap<String, Vec<String>>,
    /// Resources of each cell's Slurm array task (`[slurm]`, [`slurm`]).
    #[serde(default, skip_serializing_if = "SlurmConfig::is_empty")]
    pub slurm: SlurmConfig,
}

fn default_output() -> String {
    "studies".to_owned()
}

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
    Learner {
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

/// One run of the grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The continual-learning method.
    pub method: MethodName,
    /// The replay strategy.
    pub strategy: RunStrategy,
    /// The named task order.
    pub order: String,
    /// The run seed.
    pub seed: u64,
}

impl Cell {
    /// The cell's arm (method and strategy).
    pub fn arm(&self) -> StudyArm {
        StudyArm::new(self.method.name(), self.strategy.name())
    }

    /// The run folder's name: `<arm>-<order>-s<seed>` with the arm's label
    /// ([`StudyArm::label`]): `inscl-curriculum-s0`, `inscl+ewc-curriculum-s0`.
    pub fn name(&self) -> String {
        format!("{}-{}-s{}", self.arm().label(), self.order, self.seed)
    }
}

impl StudyConfig {
    /// A study named `name` with empty axes, no shared settings, under `studies/`.
    pub fn new(name: impl Into<String>) -> Self {
        StudyConfig {
            name: name.into(),
            strategies: Vec::new(),
            methods: Vec::new(),
            seeds: Vec::new(),
            orders: Vec::new(),
            relative_gain: false,
            set: Vec::new(),
            output: default_output(),
            task_orders: BTreeMap::new(),
            slurm: SlurmConfig::default(),
        }
    }

    /// Reads a study TOML file.
    ///
    /// # Errors
    /// [`StudyError::Io`] / [`StudyError::Parse`] naming the file.
    pub fn read(file: &Path) -> Result<Self, StudyError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|error| StudyError::Io {
            file: name.clone(),
            error,
        })?;
        toml::from_str(&text).map_err(|e: toml::de::Error| StudyError::Parse {
            file: name,
            message: e.to_string(),
        })
    }

    /// The study as TOML, as [`StudyConfig::read`] reads it back.
    ///
    /// # Panics
    /// Never: every field serialises to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a study configuration serialises to TOML")
    }

    /// The study folder, `output/name` under `root`.
    pub fn folder(&self, root: &Path) -> PathBuf {
        root.join(&self.output).join(&self.name)
    }

    /// The methods axis: `methods`, or the run configuration's one method when it is empty.
    ///
    /// # Errors
    /// An invalid override in `set`, naming it.
    pub fn method_axis(&self) -> Result<Vec<MethodName>, StudyError> {
        Ok(if self.methods.is_empty() {
            vec![self.shared_config()?.method.method_name()]
        } else {
            self.methods.clone()
        })
    }

    /// The run configuration every cell starts from: the embedded default and `set`.
    fn shared_config(&self) -> Result<Config, StudyError> {
        Ok(Config::load(None, &self.set)?)
    }

    /// Every cell, numbered by its position (the index of `trainer study cell --index` and of
    /// a Slurm array task). The order is stable and documented:
    /// 1. with `relative_gain`, the `single` references, one per order in `orders` order (the
    ///    first seed, the run configuration's method);
    /// 2. then seed by seed (in `seeds` order), order by order, method by method, strategy by
    ///    strategy, so that a study stopped early has whole seeds and seeds added at the end
    ///    of `seeds` keep every earlier cell's index.
    ///
    /// # Errors
    /// [`StudyError::Grid`] for an empty axis, a repeated value, `single` among the
    /// strategies, a name that is not a plain folder name, or an empty study-defined order.
    pub fn cells(&self) -> Result<Vec<Cell>, StudyError> {
        let problem = |problem: String| StudyError::Grid {
            name: self.name.clone(),
            problem,
        };
        if self.strategies.is_empty() || self.seeds.is_empty() || self.orders.is_empty() {
            return Err(problem(
                "strategies, seeds and orders each need at least one value".into(),
            ));
        }
        if self.strategies.contains(&RunStrategy::Single) {
            return Err(problem(
                "`single` is not compared: set relative_gain = true to add one per order".into(),
            ));
        }
        let methods = self.method_axis()?;
        let strategies: Vec<String> = self
            .strategies
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        let method_names: Vec<String> = methods
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        for (axis, values) in [
            ("strategies", &strategies),
            ("methods", &method_names),
            ("seeds", &seeds),
            ("orders", &self.orders),
        ] {
            if let Some(repeat) = values
                .iter()
                .enumerate()
                .find_map(|(i, v)| values[..i].contains(v).then_some(v))
            {
                return Err(problem(format!("{axis} lists {repeat} twice")));
            }
        }
        let plain =
            |name: &str| !(name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.'));
        if !plain(&self.name) {
            return Err(problem(format!(
                "name {:?} must be a plain folder name",
                self.name
            )));
        }
        if let Some(order) = self.orders.iter().find(|o| !plain(o)) {
            return Err(problem(format!(
                "order {order:?} must be a plain folder name (it names cell folders)"
            )));
        }
        if let Some((order, _)) = self.task_orders.iter().find(|(_, tasks)| tasks.is_empty()) {
            return Err(problem(format!("task_orders.{order} lists no task")));
        }
        let mut cells: Vec<Cell> = Vec::new();
        if self.relative_gain {
            let method = self.shared_config()?.method.method_name();
            cells.extend(self.orders.iter().map(|order| Cell {
                method,
                strategy: RunStrategy::Single,
                order: order.clone(),
                seed: self.seeds[0],
            }));
        }
        for &seed in &self.seeds {
            for order in &self.orders {
                for &method in &methods {
                    for &strategy in &self.strategies {
                        cells.push(Cell {
                            method,
                            strategy,
                            order: order.clone(),
                            seed,
                        });
                    }
                }
            }
        }
        Ok(cells)
    }

    /// Cell `index` of [`StudyConfig::cells`].
    ///
    /// # Errors
    /// [`StudyError::NoCell`] outside the grid, or a grid error.
    pub fn cell(&self, index: usize) -> Result<Cell, StudyError> {
        let mut cells = self.cells()?;
        let count = cells.len();
        if index >= count {
            return Err(StudyError::NoCell {
                name: self.name.clone(),
                index,
                count,
            });
        }
        Ok(cells.swap_remove(index))
    }

    /// The run configuration of `cell`: the embedded default, the study's `set`, then the
    /// cell's method, strategy, seed, order (a study-defined order as `data.tasks`) and run
    /// folder.
    ///
    /// # Errors
    /// An invalid override, naming it.
    pub fn cell_config(&self, cell: &Cell) -> Result<Config, StudyError> {
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut overrides = self.set.clone();
        let order = match self.task_orders.get(&cell.order) {
            Some(tasks) => format!(
                "data.tasks={}",
                toml::Value::Array(
                    tasks
                        .iter()
                        .map(|t| toml::Value::String(t.clone()))
                        .collect()
                )
            ),
            None => format!("data.order={}", quoted(&cell.order)),
        };
        overrides.extend([
            format!("method.name={}", quoted(cell.method.name())),
            format!("strategy.name={}", quoted(cell.strategy.name())),
            format!("strategy.seed={}", cell.seed),
            "data.tasks=[]".to_owned(),
            order,
            format!(
                "output.dir={}",
                quoted(&format!("{}/{}/runs", self.output, self.name))
            ),
            format!("output.name={}", quoted(&cell.name())),
        ]);
        Ok(Config::load(None, &overrides)?)
    }
}

/// How to run a study besides its configuration.
pub struct StudyOptions<'a> {
    /// Folder that relative paths (data, model, output) start from.
    pub root: PathBuf,
    /// Set (e.g. by Ctrl-C) to stop the current cell resumably.
    pub interrupt: Arc<AtomicBool>,
    /// Opens the learner of a cell's configuration (the CLI opens the burn LLaMA).
    pub open_learner: &'a mut dyn FnMut(&Config) -> anyhow::Result<Box<dyn Learner>>,
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
    let mut learner = (options.open_learner)(config).map_err(|source| StudyError::Learner {
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

/// `study.json` from the finished cells in `folder` (deterministic: the same run folders give
/// the same file). Unfinished cells are left out.
///
/// # Errors
/// A cell's artifact that cannot be read, naming the file.
pub fn summarize(study: &StudyConfig, folder: &Path) -> Result<StudyFile, StudyError> {
    let cells = study.cells()?;
    let mut finished: Vec<(Cell, RunResults)> = Vec::new();
    for cell in cells {
        let config = study.cell_config(&cell)?;
        let run_folder = cell_folder(folder, &cell);
        if cell_state(&cell, &config, &run_folder)? == CellState::Finished {
            let results: RunResults = artifact::read(&RunFolder::new(&run_folder).results())?;
            finished.push((cell, results));
        }
    }
    // Relative Gain's upper bounds: the diagonal of each order's `single` run.
    let upper: BTreeMap<&str, Vec<f64>> = finished
        .iter()
        .filter(|(cell, _)| cell.strategy == RunStrategy::Single)
        .filter_map(|(cell, results)| {
            results
                .upper_bounds
                .clone()
                .map(|bounds| (cell.order.as_str(), bounds))
        })
        .collect();
    let study_cells: Vec<StudyCell> = finished
        .iter()
        .filter(|(cell, _)| cell.strategy != RunStrategy::Single)
        .map(|(cell, results)| StudyCell {
            strategy: cell.strategy.to_string(),
            method: cell.method.to_string(),
            order: cell.order.clone(),
            seed: cell.seed,
            run: format!("runs/{}", cell.name()),
            metrics: cell_metrics(results, upper.get(cell.order.as_str())),
        })
        .collect();
    let mut file = StudyFile {
        schema_version: SCHEMA_VERSION,
        name: study.name.clone(),
        strategies: study
            .strategies
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        methods: study
            .method_axis()?
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        seeds: study.seeds.clone(),
        orders: study.orders.clone(),
        task_orders: study
            .task_orders
            .iter()
            .filter(|(order, _)| study.orders.contains(order))
            .map(|(order, tasks)| (order.clone(), tasks.clone()))
            .collect(),
        settings: study.set.clone(),
        cells: study_cells,
        summaries: Vec::new(),
        comparisons: Vec::new(),
        curves: Vec::new(),
    };
    let arms = file.arms();
    let values = |arm: &StudyArm, metric: &str| -> Vec<f64> {
        file.cells
            .iter()
            .filter(|c| c.arm() == *arm)
            .filter_map(|c| c.metrics.get(metric).copied())
            .collect()
    };
    let summaries = arms
        .iter()
        .map(|arm| ArmSummary {
            strategy: arm.strategy.clone(),
            method: arm.method.clone(),
            metrics: StudyFile::METRICS
                .iter()
                .map(|&m| (m.to_owned(), describe(&values(arm, m))))
                .filter(|(_, d)| d.n > 0)
                .collect(),
        })
        .collect();
    let mut comparisons = Vec::new();
    for (i, a) in arms.iter().enumerate() {
        // Pairs that differ in one factor: a difference of two changes names neither.
        for b in arms[i + 1..]
            .iter()
            .filter(|b| b.method == a.method || b.strategy == a.strategy)
        {
            let (a_label, b_label) = (a.label(), b.label());
            comparisons.push(PairedComparison {
                metrics: StudyFile::METRICS
                    .iter()
                    .filter_map(|&metric| {
                        let (xs, ys) = matched(&file.cells, a, b, metric);
                        (!xs.is_empty()).then(|| {
                            let seed = bootstrap_seed(&a_label, &b_label, metric);
                            (metric.to_owned(), compare_paired(&xs, &ys, seed))
                        })
                    })
                    .collect(),
                a: a_label,
                b: b_label,
            });
        }
    }
    let curves = arms
        .iter()
        .flat_map(|arm| {
            study.orders.iter().filter_map(|order| {
                let runs: Vec<&RunResults> = finished
                    .iter()
                    .filter(|(c, _)| c.arm() == *arm && c.order == *order)
                    .map(|(_, r)| r)
                    .collect();
                score_curves(arm, order, &runs)
            })
        })
        .collect();
    file.summaries = summaries;
    file.comparisons = comparisons;
    file.curves = curves;
    Ok(file)
}

/// A run's metrics by name; RG from `upper` (the order's `single` diagonal) when every bound
/// is positive, as `trainer run` does.
fn cell_metrics(results: &RunResults, upper: Option<&Vec<f64>>) -> BTreeMap<String, f64> {
    let s = &results.summary;
    let relative_gain = upper
        .filter(|u| u.len() == results.tasks.len() && u.iter().all(|&v| v > 0.0))
        .and_then(|u| {
            ContinualSummary::from_scores(&results.scores, results.zero_shot.as_deref(), Some(u))
                .ok()
        })
        .and_then(|summary| summary.relative_gain);
    [
        ("ap", Some(s.ap)),
        ("forgetting", Some(s.forgetting)),
        ("bwt", Some(s.bwt)),
        ("fwt", s.fwt),
        ("relative_gain", relative_gain),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
    .collect()
}

/// The values of `metric` of arms `a` and `b` over the (seed, order) cells both have, in cell
/// order.
fn matched(cells: &[StudyCell], a: &StudyArm, b: &StudyArm, metric: &str) -> (Vec<f64>, Vec<f64>) {
    cells
        .iter()
        .filter(|x| x.arm() == *a)
        .filter_map(|x| {
            let y = cells
                .iter()
                .find(|y| y.arm() == *b && y.seed == x.seed && y.order == x.order)?;
            Some((*x.metrics.get(metric)?, *y.metrics.get(metric)?))
        })
        .unzip()
}

/// The bootstrap seed of one comparison: from the names, so that it is the same in every
/// study that compares them.
fn bootstrap_seed(a: &str, b: &str, metric: &str) -> u64 {
    let digest = Sha256::digest(format!("bootstrap/{a}/{b}/{metric}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The R matrix of `runs` (same arm and order) averaged over them, with its sd.
fn score_curves(arm: &StudyArm, order: &str, runs: &[&RunResults]) -> Option<ScoreCurves> {
    let first = runs.first()?;
    let rows = first.scores.rows().len();
    let complete: Vec<&&RunResults> = runs
        .iter()
        .filter(|r| r.tasks == first.tasks && r.scores.rows().len() == rows)
        .collect();
    // Each entry of R described once over the runs; mean and sd are read off it.
    let described: Vec<Vec<Described>> = first
        .scores
        .rows()
        .iter()
        .enumerate()
        .map(|(i, row)| {
            (0..row.len())
                .map(|j| {
                    let values: Vec<f64> = complete.iter().map(|r| r.scores.rows()[i][j]).collect();
                    describe(&values)
                })
                .collect()
        })
        .collect();
    let table = |f: fn(&Described) -> f64| -> Vec<Vec<f64>> {
        described
            .iter()
            .map(|row| row.iter().map(f).collect())
            .collect()
    };
    Some(ScoreCurves {
        strategy: arm.strategy.clone(),
        method: arm.method.clone(),
        order: order.to_owned(),
        tasks: first.tasks.clone(),
        n: complete.len(),
        mean: table(|d| d.mean),
        sd: table(|d| d.sd.unwrap_or(0.0)),
    })
}

/// The study table: per arm mean ± sd [95% CI] of every metric, then every paired comparison
/// with its bootstrap CI and p-value.
pub fn format_study(study: &StudyFile) -> String {
    let label = StudyFile::metric_label;
    let methods = if study.methods.len() > 1 {
        format!("{} methods × ", study.methods.len())
    } else {
        String::new()
    };
    let mut out = format!(
        "study {}: {methods}{} strategies × {} seeds × {} orders ({} finished runs)\n",
        study.name,
        study.strategies.len(),
        study.seeds.len(),
        study.orders.len(),
        study.cells.len()
    );
    let arm_width = study
        .summaries
        .iter()
        .map(|s| s.arm().label().chars().count())
        .chain(["strategy".len()])
        .max()
        .unwrap_or_default();
    let pair_width = study
        .comparisons
        .iter()
        .map(|c| c.a.chars().count() + c.b.chars().count() + 3)
        .chain(["paired (a - b)".len()])
        .max()
        .unwrap_or_default();
    let interval =
        |ci: Option<[f64; 2]>| ci.map_or_else(|| "-".into(), |[l, h]| format!("[{l:.2}, {h:.2}]"));
    out.push_str(&format!(
        "{:<arm_width$} {:<5} {:>3} {:>8} {:>7} {:>19}\n",
        "strategy", "metric", "n", "mean", "sd", "95% CI"
    ));
    for summary in &study.summaries {
        for metric in StudyFile::METRICS {
            let Some(d) = summary.metrics.get(metric) else {
                continue;
            };
            out.push_str(&format!(
                "{:<arm_width$} {:<5} {:>3} {:>8.2} {:>7} {:>19}\n",
                summary.arm().label(),
                label(metric),
                d.n,
                d.mean,
                d.sd.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
                interval(d.ci95)
            ));
        }
    }
    out.push_str(&format!(
        "\n{:<pair_width$} {:<5} {:>3} {:>8} {:>19} {:>8}\n",
        "paired (a - b)", "metric", "n", "mean", "bootstrap 95% CI", "p"
    ));
    for comparison in &study.comparisons {
        for metric in StudyFile::METRICS {
            let Some(p) = comparison.metrics.get(metric) else {
                continue;
            };
            out.push_str(&format!(
                "{:<pair_width$} {:<5} {:>3} {:>8.2} {:>19} {:>8}\n",
                format!("{} - {}", comparison.a, comparison.b),
                label(metric),
                p.difference.n,
                p.difference.mean,
                interval(p.bootstrap_ci95),
                p.p_value.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
            ));
        }
    }
    out
}
