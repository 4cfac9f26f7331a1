//! `trainer study`: strategies × seeds × task orders in one command, every cell an ordinary
//! run folder, and what the cells say together with its uncertainty (`study.json`,
//! [`inscl::artifact::StudyFile`]).
//!
//! A study folder `studies/NAME/` holds `runs/CELL/` for every cell (`<strategy>-<order>-s<seed>`)
//! and, when Relative Gain is asked for, one `single-<order>-s<seed>` run per order (the first
//! seed) whose diagonal gives RG's upper bounds. Cells run one after the other: a finished
//! cell is skipped and a half-finished one resumed (`trainer run --resume`), so a killed study
//! started again loses no finished work and ends with the same `study.json`. `trainer compare`,
//! the studio and `--resume` work on every cell as on any run.
//!
//! The statistics ([`inscl::metrics::study`]): per strategy and metric (AP, F.Ra, BWT, FWT, RG)
//! n, mean, sd and the 95% t-interval over its cells; per pair of strategies the differences
//! over matched (seed, order) cells with a seeded percentile bootstrap 95% CI and the exact
//! sign-flip permutation p-value; per strategy and order the R matrix averaged over seeds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use inscl::artifact::{
    self, PairedComparison, RunManifest, RunResults, SCHEMA_VERSION, ScoreCurves, StrategySummary,
    StudyCell, StudyFile,
};
use inscl::metrics::ContinualSummary;
use inscl::metrics::study::{Described, compare_paired, describe};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{Config, RunStrategy};
use crate::learner::Learner;
use crate::progress::Progress;
use crate::run::{self, RunError, RunFolder, RunOptions};

/// A study: the grid and the run settings every cell shares. Read from a TOML file
/// (`trainer/configs/study-inscl16-small.toml` is an example) and/or flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Folder name under `output`.
    pub name: String,
    /// Strategies compared (`none`, `random`, `dynamic`, `insinfo`, `inscl`, `multitask`).
    pub strategies: Vec<RunStrategy>,
    /// Run seeds; every strategy and order runs with each.
    pub seeds: Vec<u64>,
    /// Named task orders of the data (`curriculum`, `reverse`, ...).
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
        /// The cell's name (`<strategy>-<order>-s<seed>`).
        cell: String,
        /// Why.
        source: anyhow::Error,
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
    /// The replay strategy.
    pub strategy: RunStrategy,
    /// The named task order.
    pub order: String,
    /// The run seed.
    pub seed: u64,
}

impl Cell {
    /// The run folder's name: `<strategy>-<order>-s<seed>`.
    pub fn name(&self) -> String {
        format!("{}-{}-s{}", self.strategy, self.order, self.seed)
    }
}

impl StudyConfig {
    /// A study named `name` with empty axes, no shared settings, under `studies/`.
    pub fn new(name: impl Into<String>) -> Self {
        StudyConfig {
            name: name.into(),
            strategies: Vec::new(),
            seeds: Vec::new(),
            orders: Vec::new(),
            relative_gain: false,
            set: Vec::new(),
            output: default_output(),
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

    /// The study folder, `output/name` under `root`.
    pub fn folder(&self, root: &Path) -> PathBuf {
        root.join(&self.output).join(&self.name)
    }

    /// Every cell in run order: the `single` references first (one per order, first seed),
    /// then seed by seed, order by order, strategy by strategy, so that a study stopped early
    /// has whole seeds.
    ///
    /// # Errors
    /// [`StudyError::Grid`] for an empty axis, a repeated value, `single` among the
    /// strategies, or a name that is not a plain folder name.
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
        let names: Vec<String> = self
            .strategies
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        let seeds: Vec<String> = self.seeds.iter().map(u64::to_string).collect();
        for (axis, values) in [
            ("strategies", &names),
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
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(problem(format!(
                "name {:?} must be a plain folder name",
                self.name
            )));
        }
        let mut cells: Vec<Cell> = Vec::new();
        if self.relative_gain {
            cells.extend(self.orders.iter().map(|order| Cell {
                strategy: RunStrategy::Single,
                order: order.clone(),
                seed: self.seeds[0],
            }));
        }
        for &seed in &self.seeds {
            for order in &self.orders {
                for &strategy in &self.strategies {
                    cells.push(Cell {
                        strategy,
                        order: order.clone(),
                        seed,
                    });
                }
            }
        }
        Ok(cells)
    }

    /// The run configuration of `cell`: the embedded default, the study's `set`, then the
    /// cell's strategy, seed, order and run folder.
    ///
    /// # Errors
    /// An invalid override, naming it.
    pub fn cell_config(&self, cell: &Cell) -> Result<Config, StudyError> {
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut overrides = self.set.clone();
        overrides.extend([
            format!("strategy.name={}", quoted(cell.strategy.name())),
            format!("strategy.seed={}", cell.seed),
            format!("data.order={}", quoted(&cell.order)),
            "data.tasks=[]".to_owned(),
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

/// Runs every unfinished cell of `study`, then writes and returns `study.json`.
///
/// # Errors
/// [`StudyError`] naming the cell; the study folder then holds every finished cell, and
/// running the study again continues where it stopped.
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
        let run_folder = folder.join("runs").join(cell.name());
        let state = cell_state(cell, &config, &run_folder)?;
        let left = cells.len() - index;
        let eta = (ran > 0).then(|| started.elapsed().as_secs_f64() / ran as f64 * left as f64);
        (options.report)(&format!(
            "study {}: cell {}/{} {} ({}; {} left{})",
            study.name,
            index + 1,
            cells.len(),
            cell.name(),
            match state {
                CellState::Finished => "finished, skipped",
                CellState::Partial => "resuming",
                CellState::New => "starting",
            },
            left - usize::from(state == CellState::Finished),
            eta.map(|s| format!(", ETA {:.0} min", s / 60.0))
                .unwrap_or_default()
        ));
        if state == CellState::Finished {
            continue;
        }
        let mut learner =
            (options.open_learner)(&config).map_err(|source| StudyError::Learner {
                cell: cell.name(),
                source,
            })?;
        let mut run_options = RunOptions::new(&options.root);
        run_options.interrupt = options.interrupt.clone();
        run_options.progress = (options.progress)();
        if state == CellState::Partial {
            run_options.resume = Some(run_folder.clone());
        }
        run::run(&config, learner.as_mut(), &mut run_options).map_err(|source| {
            StudyError::Run {
                cell: cell.name(),
                source: Box::new(source),
            }
        })?;
        ran += 1;
    }
    let summary = summarize(study, &folder)?;
    artifact::write_atomic(&folder.join("study.json"), &summary)?;
    Ok(summary)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CellState {
    New,
    Partial,
    Finished,
}

/// Whether `folder` holds nothing, a half-finished or a finished run of `config`.
fn cell_state(cell: &Cell, config: &Config, folder: &Path) -> Result<CellState, StudyError> {
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
    Ok(
        if run.finished_stages() >= stages && run.results().is_file() {
            CellState::Finished
        } else {
            CellState::Partial
        },
    )
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
        let run_folder = folder.join("runs").join(cell.name());
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
            order: cell.order.clone(),
            seed: cell.seed,
            run: format!("runs/{}", cell.name()),
            metrics: cell_metrics(results, upper.get(cell.order.as_str())),
        })
        .collect();
    let strategies: Vec<String> = study
        .strategies
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    let values = |strategy: &str, metric: &str| -> Vec<f64> {
        study_cells
            .iter()
            .filter(|c| c.strategy == strategy)
            .filter_map(|c| c.metrics.get(metric).copied())
            .collect()
    };
    let summaries = strategies
        .iter()
        .map(|strategy| StrategySummary {
            strategy: strategy.clone(),
            metrics: StudyFile::METRICS
                .iter()
                .map(|&m| (m.to_owned(), describe(&values(strategy, m))))
                .filter(|(_, d)| d.n > 0)
                .collect(),
        })
        .collect();
    let mut comparisons = Vec::new();
    for (i, a) in strategies.iter().enumerate() {
        for b in &strategies[i + 1..] {
            comparisons.push(PairedComparison {
                a: a.clone(),
                b: b.clone(),
                metrics: StudyFile::METRICS
                    .iter()
                    .filter_map(|&metric| {
                        let (xs, ys) = matched(&study_cells, a, b, metric);
                        (!xs.is_empty()).then(|| {
                            let seed = bootstrap_seed(a, b, metric);
                            (metric.to_owned(), compare_paired(&xs, &ys, seed))
                        })
                    })
                    .collect(),
            });
        }
    }
    let curves = strategies
        .iter()
        .flat_map(|strategy| {
            study.orders.iter().filter_map(|order| {
                let runs: Vec<&RunResults> = finished
                    .iter()
                    .filter(|(c, _)| c.strategy.to_string() == *strategy && c.order == *order)
                    .map(|(_, r)| r)
                    .collect();
                score_curves(strategy, order, &runs)
            })
        })
        .collect();
    Ok(StudyFile {
        schema_version: SCHEMA_VERSION,
        name: study.name.clone(),
        strategies,
        seeds: study.seeds.clone(),
        orders: study.orders.clone(),
        settings: study.set.clone(),
        cells: study_cells,
        summaries,
        comparisons,
        curves,
    })
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

/// The values of `metric` of strategies `a` and `b` over the (seed, order) cells both have,
/// in cell order.
fn matched(cells: &[StudyCell], a: &str, b: &str, metric: &str) -> (Vec<f64>, Vec<f64>) {
    cells
        .iter()
        .filter(|x| x.strategy == a)
        .filter_map(|x| {
            let y = cells
                .iter()
                .find(|y| y.strategy == b && y.seed == x.seed && y.order == x.order)?;
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

/// The R matrix of `runs` (same strategy and order) averaged over them, with its sd.
fn score_curves(strategy: &str, order: &str, runs: &[&RunResults]) -> Option<ScoreCurves> {
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
        strategy: strategy.to_owned(),
        order: order.to_owned(),
        tasks: first.tasks.clone(),
        n: complete.len(),
        mean: table(|d| d.mean),
        sd: table(|d| d.sd.unwrap_or(0.0)),
    })
}

/// The study table: per strategy mean ± sd [95% CI] of every metric, then every paired
/// comparison with its bootstrap CI and p-value.
pub fn format_study(study: &StudyFile) -> String {
    let label = StudyFile::metric_label;
    let mut out = format!(
        "study {}: {} strategies × {} seeds × {} orders ({} finished runs)\n",
        study.name,
        study.strategies.len(),
        study.seeds.len(),
        study.orders.len(),
        study.cells.len()
    );
    out.push_str(&format!(
        "{:<10} {:<5} {:>3} {:>8} {:>7} {:>19}\n",
        "strategy", "metric", "n", "mean", "sd", "95% CI"
    ));
    for summary in &study.summaries {
        for metric in StudyFile::METRICS {
            let Some(d) = summary.metrics.get(metric) else {
                continue;
            };
            out.push_str(&format!(
                "{:<10} {:<5} {:>3} {:>8.2} {:>7} {:>19}\n",
                summary.strategy,
                label(metric),
                d.n,
                d.mean,
                d.sd.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
                d.ci95
                    .map_or_else(|| "-".into(), |[l, h]| format!("[{l:.2}, {h:.2}]"))
            ));
        }
    }
    out.push_str(&format!(
        "\n{:<18} {:<5} {:>3} {:>8} {:>19} {:>8}\n",
        "paired (a - b)", "metric", "n", "mean", "bootstrap 95% CI", "p"
    ));
    for comparison in &study.comparisons {
        for metric in StudyFile::METRICS {
            let Some(p) = comparison.metrics.get(metric) else {
                continue;
            };
            out.push_str(&format!(
                "{:<18} {:<5} {:>3} {:>8.2} {:>19} {:>8}\n",
                format!("{} - {}", comparison.a, comparison.b),
                label(metric),
                p.difference.n,
                p.difference.mean,
                p.bootstrap_ci95
                    .map_or_else(|| "-".into(), |[l, h]| format!("[{l:.2}, {h:.2}]")),
                p.p_value.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
            ));
        }
    }
    out
}
