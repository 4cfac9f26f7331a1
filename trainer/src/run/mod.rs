//! `trainer run`: continual instruction tuning through a task sequence (InsCL, Algorithm 1).
//!
//! Before stage 1, once per run: every instruction is tagged ([`crate::tags`]; the `llm`
//! source's tags are cached in the run folder), every task gets its generation budget from its
//! gold outputs ([`eval::generation_budget`]), and for `[embedding] source = "base"` every
//! task's instructions are embedded by the base model with adapters off (cached), so that every
//! W of every stage compares points of one space (`file`: an external encoder's vectors,
//! [`embedding`]); then every task is evaluated zero-shot (for FWT).
//!
//! Stage t (1-based), training task t ([`Stages::stage`]):
//! 1. the instruction embeddings of tasks 1..=t: the run's one space, or for `current` all of
//!    them embedded again by the model after stage t − 1 ([`Stages::stage_embeddings`]);
//! 2. plan the replay over tasks 1..=t ([`inscl::plan::plan_last_stage`]);
//! 3. mix task t's data with the replayed instances, shuffled by a stream seeded by
//!    (seed, stage) ([`Stages::training_mix`]);
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
pub mod eval;
pub mod faults;
pub mod folder;
mod tagging;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use inscl::artifact::{
    self, EmbeddingsFile, ReplaySettings, ReplayedInstances, RunManifest, RunResults,
    SCHEMA_VERSION, StageRecord, TaskEmbeddings, TaskEval, TaskInfo,
};
use inscl::metrics::{ContinualSummary, ScoreMatrix};
use inscl::plan::{PlanConfig, StagePlan, plan_last_stage};
use inscl::replay::Strategy;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::config::{Config, EmbeddingSource, RunStrategy};
use crate::data::{self, Dataset, Example, InstructionGroup, TaskData};
use crate::learner::{Learner, StepReport, TrainPlan};
use crate::progress::{Event, Progress};
use crate::tags::Tagger;
pub use folder::RunFolder;

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
    Learner {
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
    pub tag_model: Option<Box<dyn Learner>>,
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

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |error| RunError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// A seed for `purpose` at `stage`, independent of every other (seed, purpose, stage).
fn stage_seed(seed: u64, purpose: &str, stage: usize) -> u64 {
    let digest = Sha256::digest(format!("{seed}/{purpose}/{stage}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
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
    learner: &mut dyn Learner,
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
        .map_err(|source| RunError::Learner {
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
    let mut state = Stages {
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
    let tag_model: Option<&mut dyn Learner> = match &mut options.tag_model {
        Some(model) => Some(model.as_mut()),
        None => None,
    };
    state.run(learner, tag_model, &mut options.progress)
}

/// `run.json` of a new run.
fn manifest(
    config: &Config,
    dataset: &Dataset,
    groups: &[Vec<InstructionGroup>],
    learner: &dyn Learner,
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
            seed: config.strategy.seed,
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
fn read_upper_bounds(folder: &Path, dataset: &Dataset) -> Result<Vec<f64>, RunError> {
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

/// The state of a run between stages.
struct Stages<'a> {
    config: &'a Config,
    dataset: &'a Dataset,
    groups: &'a [Vec<InstructionGroup>],
    tagger: &'a Tagger,
    folder: &'a RunFolder,
    /// Folder that the configuration's relative paths start from.
    root: &'a Path,
    interrupt: Arc<AtomicBool>,
    /// Raw tags of every instruction of every task (`[task][instruction]`), made before
    /// stage 1.
    tags: Vec<Vec<Vec<String>>>,
    /// Generation budget of every task (tokens).
    budgets: Vec<usize>,
    /// For `embedding.source = base | file`: the vector of every instruction of every task,
    /// one space for the whole run. `None` for `current`, which embeds at every stage.
    fixed_space: Option<Vec<Vec<Vec<f32>>>>,
    /// ROUGE-L of every evaluated task after each finished stage.
    rows: Vec<Vec<f64>>,
    zero_shot: Option<Vec<f64>>,
    upper_bounds: Option<Vec<f64>>,
}

impl Stages<'_> {
    fn total_stages(&self) -> usize {
        match self.config.strategy.name {
            RunStrategy::Multitask => 1,
            _ => self.dataset.tasks.len(),
        }
    }

    /// Tasks trained at `stage` (all of them in the one `multitask` stage).
    fn trained_tasks(&self, stage: usize) -> std::ops::Range<usize> {
        match self.config.strategy.name {
            RunStrategy::Multitask => 0..self.dataset.tasks.len(),
            _ => stage - 1..stage,
        }
    }

    /// Tasks evaluated (and planned over) after `stage`: the first `seen_tasks(stage)`.
    fn seen_tasks(&self, stage: usize) -> usize {
        self.trained_tasks(stage).end
    }

    fn interrupted(&self, stage: usize) -> Result<(), RunError> {
        if self.interrupt.load(Ordering::SeqCst) {
            Err(RunError::Interrupted {
                stage,
                folder: self.folder.root().display().to_string(),
            })
        } else {
            Ok(())
        }
    }

    fn run(
        &mut self,
        learner: &mut dyn Learner,
        tag_model: Option<&mut dyn Learner>,
        progress: &mut Progress,
    ) -> Result<RunOutcome, RunError> {
        let total = self.total_stages();
        let finished = self.folder.finished_stages().min(total);
        progress.event(&Event::RunStarted {
            folder: self.folder.root().display().to_string(),
            strategy: self.config.strategy.name.name().into(),
            stages: total,
            finished,
            device: learner.device(),
        });
        self.restore(learner, finished)?;
        self.tag_instructions(learner, tag_model, progress)?;
        self.budgets = self.generation_budgets(learner)?;
        self.fixed_space = self.fixed_space(learner)?;
        if self.config.eval.zero_shot && self.zero_shot.is_none() {
            self.zero_shot_pass(learner, progress)?;
        }
        for stage in finished + 1..=total {
            self.interrupted(stage)?;
            self.stage(learner, progress, stage)?;
        }
        let results = self.results()?;
        // Written again: a run killed between its last stage file and these writes is
        // finished, but its `results.json` may be stale and an old checkpoint left.
        artifact::write_atomic(&self.folder.results(), &results)?;
        self.folder
            .prune_checkpoints(total, self.config.output.keep_checkpoints)
            .map_err(io_error(self.folder.root()))?;
        progress.event(&Event::RunFinished {
            folder: self.folder.root().display().to_string(),
            ap: results.summary.ap,
            forgetting: results.summary.forgetting,
            bwt: results.summary.bwt,
            fwt: results.summary.fwt,
        });
        Ok(RunOutcome {
            folder: self.folder.root().to_path_buf(),
            results,
        })
    }

    /// Reloads what the first `finished` stages left: scores, zero-shot scores and the
    /// learner's checkpoint.
    fn restore(&mut self, learner: &mut dyn Learner, finished: usize) -> Result<(), RunError> {
        let zero_path = self.folder.stage(0);
        if zero_path.is_file() {
            let record: StageRecord = artifact::read(&zero_path)?;
            self.zero_shot = Some(record.eval.iter().map(|e| e.rouge_l).collect());
        }
        if finished == 0 {
            return Ok(());
        }
        for stage in 1..=finished {
            let record: StageRecord = artifact::read(&self.folder.stage(stage))?;
            self.rows
                .push(record.eval.iter().map(|e| e.rouge_l).collect());
        }
        let checkpoint = self.folder.checkpoint(finished);
        if !checkpoint.is_dir() {
            return Err(RunError::MissingCheckpoint {
                folder: self.folder.root().display().to_string(),
                stage: finished,
                checkpoint: checkpoint.display().to_string(),
            });
        }
        learner
            .load_checkpoint(&checkpoint)
            .map_err(|source| RunError::Learner {
                stage: finished,
                what: "loading the checkpoint",
                error: source,
            })
    }

    /// Every task's generation budget: [`eval::generation_budget`] of its training outputs'
    /// token lengths, or `eval.max_new_tokens` for all without `eval.budget_from_data`.
    fn generation_budgets(&self, learner: &dyn Learner) -> Result<Vec<usize>, RunError> {
        let eval = &self.config.eval;
        self.dataset
            .tasks
            .iter()
            .map(|task| {
                if !eval.budget_from_data {
                    return Ok(eval.max_new_tokens);
                }
                let golds: Vec<String> = task
                    .train
                    .iter()
                    .flat_map(|e| e.output.iter().cloned())
                    .collect();
                let lengths = learner
                    .token_counts(&golds)
                    .map_err(|source| RunError::Learner {
                        stage: 0,
                        what: "counting gold output tokens",
                        error: source,
                    })?;
                Ok(eval::generation_budget(
                    &lengths,
                    eval.budget_quantile,
                    eval.budget_margin,
                    eval.max_new_tokens,
                ))
            })
            .collect()
    }

    fn zero_shot_pass(
        &mut self,
        learner: &mut dyn Learner,
        progress: &mut Progress,
    ) -> Result<(), RunError> {
        progress.event(&Event::ZeroShot {
            tasks: self.dataset.tasks.len(),
        });
        let started = Instant::now();
        let eval = self.evaluate(learner, progress, 0, self.dataset.tasks.len())?;
        let eval_seconds = started.elapsed().as_secs_f64();
        self.zero_shot = Some(eval.iter().map(|e| e.rouge_l).collect());
        let record = StageRecord {
            schema_version: SCHEMA_VERSION,
            stage: 0,
            task: String::new(),
            plan: StagePlan {
                stage: 0,
                task: String::new(),
                budget: 0,
                previous: Vec::new(),
            },
            replayed: Vec::new(),
            train_examples: 0,
            loss: Vec::new(),
            eval,
            wall_seconds: eval_seconds,
            train_seconds: None,
            eval_seconds: Some(eval_seconds),
        };
        artifact::write_atomic(&self.folder.stage(0), &record)?;
        Ok(())
    }

    fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            alpha: self.config.strategy.alpha,
            strategy: match self.config.strategy.name {
                RunStrategy::Sequential(strategy) => strategy,
                RunStrategy::Multitask | RunStrategy::Single => Strategy::None,
            },
            seed: self.config.strategy.seed,
            similarity: self.config.strategy.similarity,
            tags: self.config.strategy.effective_tag_normalizer(),
        }
    }

    /// One stage: embed, plan the replay, mix, train, evaluate, write.
    fn stage(
        &mut self,
        learner: &mut dyn Learner,
        progress: &mut Progress,
        stage: usize,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        if self.config.strategy.name == RunStrategy::Single {
            learner.reset().map_err(|source| RunError::Learner {
                stage,
                what: "resetting to the base model",
                error: source,
            })?;
        }
        let seen = self.seen_tasks(stage);
        let embeddings = self.stage_embeddings(learner, stage, seen)?;
        let plan = self.plan_replay(&embeddings, stage)?;
        let (replay, replayed) = self.replay_examples(&plan);
        let mix = self.training_mix(stage, replay);
        progress.event(&Event::StageStarted {
            stage,
            stages: self.total_stages(),
            task: plan.task.clone(),
            examples: mix.len(),
            replayed: replayed.iter().map(|r| r.ids.len()).sum(),
        });
        let task_distances = self.method_distances(&embeddings, stage)?;
        let training = Instant::now();
        let loss = self.train(learner, progress, stage, &plan.task, &mix, task_distances)?;
        let train_seconds = training.elapsed().as_secs_f64();
        let evaluating = Instant::now();
        let eval = self.evaluate(learner, progress, stage, seen)?;
        let eval_seconds = evaluating.elapsed().as_secs_f64();
        let record = StageRecord {
            schema_version: SCHEMA_VERSION,
            stage,
            task: plan.task.clone(),
            plan,
            replayed,
            train_examples: mix.len(),
            loss,
            eval,
            wall_seconds: started.elapsed().as_secs_f64(),
            train_seconds: Some(train_seconds),
            eval_seconds: Some(eval_seconds),
        };
        let wall_seconds = record.wall_seconds;
        self.write_stage(learner, record, embeddings)?;
        progress.event(&Event::StageFinished {
            stage,
            wall_seconds,
        });
        Ok(())
    }

    /// The replay plan of `stage` over the seen tasks' `embeddings` (an empty plan for the one
    /// `multitask` stage, which trains on everything).
    fn plan_replay(
        &self,
        embeddings: &[TaskEmbeddings],
        stage: usize,
    ) -> Result<StagePlan, RunError> {
        if self.config.strategy.name == RunStrategy::Multitask {
            return Ok(StagePlan {
                stage,
                task: "multitask".to_owned(),
                budget: 0,
                previous: Vec::new(),
            });
        }
        plan_last_stage(embeddings, &self.plan_config())
            .map_err(|source| RunError::Plan { stage, source })
    }

    /// The training data of `stage`: the trained tasks' examples plus `replay`, shuffled by a
    /// stream seeded by (run seed, stage).
    fn training_mix(&self, stage: usize, replay: Vec<Example>) -> Vec<Example> {
        let mut mix: Vec<Example> = self
            .trained_tasks(stage)
            .flat_map(|t| self.dataset.tasks[t].train.iter().cloned())
            .chain(replay)
            .collect();
        mix.shuffle(&mut ChaCha8Rng::seed_from_u64(stage_seed(
            self.config.strategy.seed,
            "shuffle",
            stage,
        )));
        mix
    }

    /// Saves the checkpoint, then writes `embeddings.json`, the stage file (which marks the
    /// stage finished) and `results.json`, and prunes old checkpoints.
    fn write_stage(
        &mut self,
        learner: &dyn Learner,
        record: StageRecord,
        embeddings: Vec<TaskEmbeddings>,
    ) -> Result<(), RunError> {
        let stage = record.stage;
        self.folder
            .save_checkpoint(learner, stage)
            .map_err(|source| RunError::Learner {
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

    /// The plan's instances as examples, and their ids per previous task.
    fn replay_examples(&self, plan: &StagePlan) -> (Vec<Example>, Vec<ReplayedInstances>) {
        let mut examples = Vec::new();
        let mut replayed = Vec::new();
        for previous in plan.previous.iter().filter(|p| p.quota > 0) {
            let task = self
                .dataset
                .tasks
                .iter()
                .position(|t| t.name == previous.task)
                .expect("the plan names tasks of the run");
            let mut ids = Vec::with_capacity(previous.quota);
            for (instruction, group) in previous.instructions.iter().zip(&self.groups[task]) {
                for &local in &instruction.instances {
                    let example = &self.dataset.tasks[task].train[group.instances[local as usize]];
                    ids.push(example.id.clone());
                    examples.push(example.clone());
                }
            }
            replayed.push(ReplayedInstances {
                task: previous.task.clone(),
                ids,
            });
        }
        (examples, replayed)
    }

    /// The pairwise task distances a method that reads task similarity needs (same embeddings
    /// and similarity settings as the replay plan); empty for the other methods.
    fn method_distances(
        &self,
        embeddings: &[TaskEmbeddings],
        stage: usize,
    ) -> Result<Vec<Vec<f64>>, RunError> {
        if !self.config.method.settings().reads_task_similarity() {
            return Ok(Vec::new());
        }
        inscl::plan::task_distances(embeddings, &self.config.strategy.similarity)
            .map_err(|source| RunError::Plan { stage, source })
    }

    fn train(
        &self,
        learner: &mut dyn Learner,
        progress: &mut Progress,
        stage: usize,
        task: &str,
        mix: &[Example],
        task_distances: Vec<Vec<f64>>,
    ) -> Result<Vec<inscl::artifact::LossPoint>, RunError> {
        let plan = TrainPlan {
            stage,
            task: task.to_owned(),
            task_distances,
            seed: stage_seed(self.config.strategy.seed, "train", stage),
            config: self.config.training.clone(),
        };
        let mut bad_loss: Option<(usize, f64)> = None;
        let interrupt = self.interrupt.clone();
        let loss = learner
            .train(mix, &plan, &mut |report: &StepReport| {
                progress.event(&Event::Step {
                    stage,
                    step: report.step,
                    total_steps: report.total_steps,
                    loss: report.loss,
                    lr: report.lr,
                    tokens_per_s: report.tokens_per_s,
                });
                if !report.loss.is_finite() {
                    bad_loss.get_or_insert((report.step, report.loss));
                    return ControlFlow::Break(());
                }
                faults::point("train-step");
                if interrupt.load(Ordering::SeqCst) {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .map_err(|source| RunError::Learner {
                stage,
                what: "training",
                error: source,
            })?;
        let bad_loss = bad_loss.or_else(|| {
            loss.iter()
                .find(|p| !p.loss.is_finite())
                .map(|p| (p.step, p.loss))
        });
        if let Some((step, loss)) = bad_loss {
            return Err(RunError::NonFiniteLoss {
                stage,
                task: task.to_owned(),
                step,
                loss,
            });
        }
        self.interrupted(stage)?;
        Ok(loss)
    }

    /// Evaluates the first `seen` tasks.
    fn evaluate(
        &self,
        learner: &mut dyn Learner,
        progress: &mut Progress,
        stage: usize,
        seen: usize,
    ) -> Result<Vec<TaskEval>, RunError> {
        let mut evals = Vec::with_capacity(seen);
        for (task, &budget) in self.dataset.tasks[..seen].iter().zip(&self.budgets) {
            progress.event(&Event::EvalStarted {
                stage,
                task: task.name.clone(),
                instances: task.test.len(),
            });
            let interrupt = self.interrupt.clone();
            let started = Instant::now();
            let eval =
                eval::evaluate_task(learner, task, budget, self.config.eval.stem, &mut |done| {
                    progress.event(&Event::EvalProgress { done });
                    faults::point("eval-step");
                    if interrupt.load(Ordering::SeqCst) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .map_err(|source| RunError::Learner {
                    stage,
                    what: "evaluation",
                    error: source,
                })?;
            let Some(eval) = eval else {
                return Err(RunError::Interrupted {
                    stage,
                    folder: self.folder.root().display().to_string(),
                });
            };
            progress.event(&Event::EvalFinished {
                stage,
                task: task.name.clone(),
                rouge_l: eval.rouge_l,
                exact_match: eval.exact_match,
                seconds: started.elapsed().as_secs_f64(),
                generation: learner.last_generation_stats(),
            });
            evals.push(eval);
        }
        Ok(evals)
    }

    /// `results.json` over the finished stages.
    fn results(&self) -> Result<RunResults, RunError> {
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
