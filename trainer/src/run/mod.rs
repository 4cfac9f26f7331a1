//! `trainer run`: continual instruction tuning through a task sequence (InsCL, Algorithm 1).
//!
//! Before stage 1, once per run: every instruction is tagged ([`crate::tags`]; the `llm`
//! source's tags are cached in the run folder), every task gets its generation budget from its
//! gold outputs ([`eval::generation_budget`]), and for `[embedding] source = "base"` every
//! task's instructions are embedded by the base model with adapters off (cached), so that every
//! W of every stage compares points of one space (`file`: an external encoder's vectors,
//! [`embedding`]); then every task is evaluated zero-shot (for FWT).
//!
//! Stage t (1-based), training task t ([`RunState::stage`]):
//! 1. the instruction embeddings of tasks 1..=t: the run's one space, or for `current` all of
//!    them embedded again by the model after stage t − 1 ([`RunState::stage_embeddings`]);
//! 2. plan the replay over tasks 1..=t ([`inscl::plan::plan_last_stage`]);
//! 3. mix task t's data with the replayed instances, shuffled by a stream seeded by
//!    (seed, stage) ([`RunState::training_mix`]);
//! 4. train; 5. evaluate every task seen so far;
//! 6. checkpoint, then write `embeddings.json`, `stages/stage-NN.json`, `results.json`
//!    atomically (the stage file marks the stage finished; see [`folder`]).
//!
//! `single` resets the learner
//! before each stage and replays nothing (its diagonal gives Relative Gain's upper bounds);
//! `multitask` trains all tasks in one stage and evaluates all of them once.
//!
//! Resume continues after the last finished stage from its checkpoint; every random choice
//! is seeded per stage, so the artifacts equal an uninterrupted run's (except wall-clock
//! fields).

pub mod embedding;
mod error;
pub mod eval;
pub mod faults;
pub mod folder;
mod results;
mod state;
mod tagging;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use inscl::artifact::{self, RunManifest, RunResults};

use crate::config::Config;
use crate::data::{self, Dataset, InstructionGroup, TaskData};
use crate::learner::ContinualLearner;
use crate::progress::Progress;
use crate::tags::Tagger;
pub use error::RunError;
use error::io_error;
pub use folder::RunFolder;
use results::{manifest, read_upper_bounds};
use state::RunState;

/// How to run, besides the configuration.
pub struct RunOptions {
    /// Folder that relative paths of the configuration (data, model, output) start from.
    pub root: PathBuf,
    /// Continue this run folder instead of creating a new one.
    pub resume: Option<PathBuf>,
    /// Set (e.g. by Ctrl-C) to stop after the current write, leaving a resumable run.
    pub interrupt: Arc<AtomicBool>,
    /// Where progress goes.
    pub progress: Progress,
    /// Software versions recorded in `run.json` (e.g. the model layer's).
    pub versions: Vec<(String, String)>,
    /// The chat model of the `llm` tag source (`[tagger] model`); `None` = the learner's base
    /// weights.
    pub tag_model: Option<Box<dyn ContinualLearner>>,
    /// The data, loaded and checked before the model (its notices already shown); `None` =
    /// [`run`] loads it.
    pub dataset: Option<Dataset>,
}

impl RunOptions {
    /// Quiet options rooted at `root`, no resume, no interrupt.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunOptions {
            root: root.into(),
            resume: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            progress: Progress::quiet(),
            versions: Vec::new(),
            tag_model: None,
            dataset: None,
        }
    }
}

/// A finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The run folder.
    pub folder: PathBuf,
    /// What `results.json` holds.
    pub results: RunResults,
}

/// Reads the configuration stored in a run folder's `run.json` (for `--resume`).
///
/// # Errors
/// [`RunError::NotARun`], artifact or configuration errors.
pub fn resume_config(folder: &Path) -> Result<Config, RunError> {
    let run = RunFolder::new(folder);
    if !run.manifest().is_file() {
        return Err(RunError::NotARun {
            folder: folder.display().to_string(),
        });
    }
    let manifest: RunManifest = artifact::read(&run.manifest())?;
    Ok(Config::from_json(&manifest.config)?)
}

/// Runs (or resumes) the continual-learning run `config` describes with `learner`.
///
/// # Errors
/// [`RunError`]; the run folder then holds only complete files and can be resumed.
pub fn run(
    config: &Config,
    learner: &mut dyn ContinualLearner,
    options: &mut RunOptions,
) -> Result<RunOutcome, RunError> {
    let dataset = match options.dataset.take() {
        Some(dataset) => dataset,
        None => {
            let dataset = data::load(&config.data, &options.root)?;
            for notice in &dataset.notices {
                options.progress.println(&format!("notice: {notice}"));
            }
            dataset
        }
    };
    // An order inherited from the default is recorded as the one it resolved to (resume).
    let config = &Config {
        data: data::resolved_config(&config.data, &dataset),
        ..config.clone()
    };
    let tagger = Tagger::new(&config.strategy, &options.root)?;
    let upper_bounds = match &config.eval.upper_bounds {
        Some(folder) => Some(read_upper_bounds(&options.root.join(folder), &dataset)?),
        None => None,
    };
    let folder = match &options.resume {
        Some(folder) => {
            if !folder.join("run.json").is_file() {
                return Err(RunError::NotARun {
                    folder: folder.display().to_string(),
                });
            }
            RunFolder::new(folder)
        }
        None => {
            let path = options
                .root
                .join(&config.output.dir)
                .join(config.run_name());
            if path.exists() {
                return Err(RunError::Exists {
                    folder: path.display().to_string(),
                });
            }
            RunFolder::new(path)
        }
    };
    folder.prepare().map_err(io_error(folder.root()))?;
    learner
        .keep_kernels_in(&folder.kernel_cache())
        .map_err(|source| RunError::ContinualLearner {
            stage: 0,
            what: "keeping the GPU kernel cache",
            error: source,
        })?;
    let groups: Vec<Vec<InstructionGroup>> = dataset
        .tasks
        .iter()
        .map(TaskData::instruction_groups)
        .collect();
    if options.resume.is_none() {
        artifact::write_atomic(
            &folder.manifest(),
            &manifest(config, &dataset, &groups, learner, &options.versions),
        )?;
    }
    let mut state = RunState {
        config,
        dataset: &dataset,
        groups: &groups,
        tagger: &tagger,
        folder: &folder,
        root: &options.root,
        interrupt: options.interrupt.clone(),
        tags: Vec::new(),
        budgets: Vec::new(),
        fixed_space: None,
        rows: Vec::new(),
        zero_shot: None,
        upper_bounds,
    };
    let tag_model: Option<&mut dyn ContinualLearner> = match &mut options.tag_model {
        Some(model) => Some(model.as_mut()),
        None => None,
    };
    state.run(learner, tag_model, &mut options.progress)
}
