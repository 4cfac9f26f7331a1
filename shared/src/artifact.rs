//! The versioned JSON schema of run artifacts.
//!
//! `trainer run` writes a run folder; the studio reads the same files in the browser:
//!
//! | file | type | content |
//! |---|---|---|
//! | `run.json` | [`RunManifest`] | configuration, task sequence, versions, device |
//! | `stages/stage-NN.json` | [`StageRecord`] | W row, replay plan, replayed instance ids, loss curve, evaluation of every seen task |
//! | `stages/stage-00.json` | [`StageRecord`] | zero-shot evaluation of every task before stage 1 (stage 0, empty `task`, no training) |
//! | `results.json` | [`RunResults`] | score matrix R, zero-shot and upper-bound scores, summary metrics |
//! | `embeddings.json` | [`EmbeddingsFile`] | per task: instruction ids, texts, counts, tags and f32 embeddings |
//! | `study.json` (of a study folder) | [`StudyFile`] | a grid of runs (methods × strategies × seeds × orders): per-cell metrics, per-arm mean / sd / CI, paired comparisons, mean score curves |
//!
//! Every file is one JSON object carrying `"schema_version"` and a `"kind"` tag
//! (see [`Artifact`]), so a dropped file identifies itself. A file of another schema version,
//! of the wrong kind, truncated or not JSON is rejected with an [`ArtifactError`] that names
//! the file. [`EmbeddingsFile`] is also the input of `trainer plan`, where `kind` and
//! `schema_version` may be omitted.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::insinfo::TagNormalizer;
use crate::metrics::{ContinualSummary, ScoreMatrix};
// The embeddings a plan reads are the plan's types; `embeddings.json` stores them as they are.
use crate::plan::StagePlan;
pub use crate::plan::{InstructionEmbedding, TaskEmbeddings};
use crate::replay::Strategy;
use crate::similarity::SimilarityConfig;

/// Version of the artifact schema written by this crate. Readers reject any other version.
pub const SCHEMA_VERSION: u32 = 1;

/// Any artifact file, tagged by its `"kind"` field (`run`, `stage`, `results`, `embeddings`,
/// `study`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Artifact {
    /// `run.json`.
    Run(RunManifest),
    /// `stages/stage-NN.json`.
    Stage(StageRecord),
    /// `results.json`.
    Results(RunResults),
    /// `embeddings.json`.
    Embeddings(EmbeddingsFile),
    /// `study.json` of a study folder.
    Study(StudyFile),
}

impl Artifact {
    /// Parses any artifact, checking `schema_version` before the body so that a file from
    /// another version gets a version error rather than a confusing field error.
    ///
    /// `source` names the file in errors (a path or a dropped file's name).
    ///
    /// # Errors
    /// [`ArtifactError`]: not JSON, truncated, unknown version, unknown kind, bad field.
    pub fn from_json(source: &str, text: &str) -> Result<Self, ArtifactError> {
        check_version(source, text, false)?;
        serde_json::from_str(text).map_err(|e| ArtifactError::from_serde(source, &e))
    }

    /// The `"kind"` tag of this artifact.
    pub fn kind(&self) -> &'static str {
        match self {
            Artifact::Run(_) => "run",
            Artifact::Stage(_) => "stage",
            Artifact::Results(_) => "results",
            Artifact::Embeddings(_) => "embeddings",
            Artifact::Study(_) => "study",
        }
    }
}

/// A typed artifact body that knows its `"kind"` tag, so it can be written and read on its own.
pub trait ArtifactBody: Serialize + DeserializeOwned + Clone {
    /// The `"kind"` tag written with this body.
    const KIND: &'static str;
    /// Wraps the body into the tagged [`Artifact`].
    fn into_artifact(self) -> Artifact;

    /// Serialises as pretty JSON with its `"kind"` tag.
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.clone().into_artifact())
            .expect("artifact types serialise infallibly (string keys, finite floats)")
    }

    /// Parses a file that must be of this kind and of [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`ArtifactError`] naming `source`: not JSON, truncated, wrong version, wrong kind,
    /// or a missing/invalid field (with its line and column).
    fn from_json(source: &str, text: &str) -> Result<Self, ArtifactError> {
        check_version(source, text, Self::KIND == EmbeddingsFile::KIND)?;
        let header: KindHeader =
            serde_json::from_str(text).map_err(|e| ArtifactError::from_serde(source, &e))?;
        if let Some(kind) = header.kind
            && kind != Self::KIND
        {
            return Err(ArtifactError::WrongKind {
                file: source.to_owned(),
                expected: Self::KIND,
                found: kind,
            });
        }
        serde_json::from_str(text).map_err(|e| ArtifactError::from_serde(source, &e))
    }
}

macro_rules! artifact_body {
    ($ty:ident, $variant:ident, $kind:literal) => {
        impl ArtifactBody for $ty {
            const KIND: &'static str = $kind;
            fn into_artifact(self) -> Artifact {
                Artifact::$variant(self)
            }
        }
    };
}
artifact_body!(RunManifest, Run, "run");
artifact_body!(StageRecord, Stage, "stage");
artifact_body!(RunResults, Results, "results");
artifact_body!(EmbeddingsFile, Embeddings, "embeddings");
artifact_body!(StudyFile, Study, "study");

#[derive(Deserialize)]
struct VersionHeader {
    schema_version: Option<u32>,
    #[serde(flatten)]
    _rest: BTreeMap<String, IgnoredAny>,
}

#[derive(Deserialize)]
struct KindHeader {
    kind: Option<String>,
    #[serde(flatten)]
    _rest: BTreeMap<String, IgnoredAny>,
}

fn check_version(source: &str, text: &str, version_optional: bool) -> Result<(), ArtifactError> {
    let header: VersionHeader =
        serde_json::from_str(text).map_err(|e| ArtifactError::from_serde(source, &e))?;
    match header.schema_version {
        Some(SCHEMA_VERSION) => Ok(()),
        None if version_optional => Ok(()),
        None => Err(ArtifactError::MissingVersion {
            file: source.to_owned(),
        }),
        Some(found) => Err(ArtifactError::UnsupportedVersion {
            file: source.to_owned(),
            found,
        }),
    }
}

fn current_version() -> u32 {
    SCHEMA_VERSION
}

/// Why an artifact could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The text ends before the JSON value does (an interrupted copy or write).
    #[error("{file}: truncated JSON (ends at line {line}, column {column})")]
    Truncated {
        /// The file, as given.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// The text is not JSON at all.
    #[error("{file}: not valid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// The file, as given.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, from the JSON parser.
        message: String,
    },
    /// JSON, but a field is missing or has the wrong type or value.
    #[error("{file}: invalid artifact at line {line}, column {column}: {message}")]
    Invalid {
        /// The file, as given.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong, from the JSON parser.
        message: String,
    },
    /// No `schema_version` field.
    #[error("{file}: no \"schema_version\" field; is this an inscl run artifact?")]
    MissingVersion {
        /// The file, as given.
        file: String,
    },
    /// A `schema_version` this build does not read.
    #[error(
        "{file}: schema_version {found} is not supported (this build reads version {})",
        SCHEMA_VERSION
    )]
    UnsupportedVersion {
        /// The file, as given.
        file: String,
        /// The version (or kind) the file has.
        found: u32,
    },
    /// The file is an artifact of another kind than the one asked for.
    #[error("{file}: expected a \"{expected}\" artifact, found \"{found}\"")]
    WrongKind {
        /// The file, as given.
        file: String,
        /// The kind asked for.
        expected: &'static str,
        /// The version (or kind) the file has.
        found: String,
    },
    /// Reading or writing the file failed.
    #[error("{file}: {error}")]
    Io {
        /// The file, as given.
        file: String,
        /// The underlying error.
        error: std::io::Error,
    },
}

impl ArtifactError {
    fn from_serde(source: &str, e: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let (file, line, column) = (source.to_owned(), e.line(), e.column());
        match e.classify() {
            Category::Eof => ArtifactError::Truncated { file, line, column },
            Category::Syntax | Category::Io => ArtifactError::Syntax {
                file,
                line,
                column,
                message: e.to_string(),
            },
            Category::Data => ArtifactError::Invalid {
                file,
                line,
                column,
                message: e.to_string(),
            },
        }
    }
}

/// Writes `body` as JSON to `path` atomically: a temporary file in the same folder is written,
/// flushed to disk and renamed over `path`, so readers see the old file or the new one, never
/// half of one. Native targets only.
///
/// # Errors
/// [`ArtifactError::Io`] naming `path`.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_atomic<T: ArtifactBody>(
    path: &std::path::Path,
    body: &T,
) -> Result<(), ArtifactError> {
    write_text_atomic(path, &body.to_json())
}

/// Writes `text` to `path` atomically: into `.NAME.tmp` beside it, synced, then renamed over
/// `path`, so a reader (or a resumed run) sees the old file or the new one, never a part; a
/// failed write (a full disk) removes `.NAME.tmp`. Native targets only.
///
/// # Errors
/// [`ArtifactError::Io`] naming `path`.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_text_atomic(path: &std::path::Path, text: &str) -> Result<(), ArtifactError> {
    use std::io::Write;
    let io = |error| ArtifactError::Io {
        file: path.display().to_string(),
        error,
    };
    let file_name = path.file_name().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path has no file name",
        ))
    })?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk: the write's error is the one to report, not the clean-up's.
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// Reads an artifact of type `T` from `path`. Native targets only.
///
/// # Errors
/// [`ArtifactError`] naming `path` (I/O, JSON, version, kind).
#[cfg(not(target_arch = "wasm32"))]
pub fn read<T: ArtifactBody>(path: &std::path::Path) -> Result<T, ArtifactError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ArtifactError::Io {
        file: source.clone(),
        error,
    })?;
    T::from_json(&source, &text)
}

/// `run.json`: what was run, on what, with which settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// Run name (the folder name under `runs/`).
    pub name: String,
    /// Model identifier (path, GGUF file or hub id) as given in the configuration.
    pub model: String,
    /// Name of the task order (e.g. `order1`, `curriculum`) or `custom`.
    pub order: String,
    /// The tasks in training order.
    pub tasks: Vec<TaskInfo>,
    /// The continual-learning strategy and the replay settings.
    pub replay: ReplaySettings,
    /// The complete trainer configuration (model, optimiser, LoRA, evaluation limits, ...),
    /// kept verbatim so that runs can be compared field by field.
    pub config: serde_json::Value,
    /// Versions of the software that produced the run, e.g. `{"inscl": "0.1.0"}`.
    pub versions: BTreeMap<String, String>,
    /// The compute device, as reported by the trainer (e.g. `cpu (flex, 2 threads)`).
    pub device: String,
    /// Unix time in seconds when the run started.
    pub created_unix: u64,
}

/// A task of the sequence and its sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Task name (unique in the run).
    pub name: String,
    /// Distinct instructions in the training split.
    pub instructions: usize,
    /// Training instances.
    pub train_instances: usize,
    /// Evaluated test instances.
    pub test_instances: usize,
    /// Problems found in the task's data while loading it; absent in runs written before
    /// the report existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_report: Option<DataReport>,
}

/// The data problems of one task, counted while loading it: after the held-out split, before
/// deduplication and the `max_train` / `max_test` caps. Two instances are the same when their
/// instruction and input texts are equal (outputs are not compared).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataReport {
    /// Records skipped because every reference output was empty or blank.
    pub empty_outputs: usize,
    /// Training instances that repeat an earlier training instance.
    pub train_duplicates: usize,
    /// Test instances that repeat an earlier test instance.
    pub test_duplicates: usize,
    /// Test instances that are also training instances (train/test overlap), counted once
    /// each, duplicates included.
    pub overlap: usize,
    /// Instances removed by `data.dedup` (the repeats and the overlapping test instances;
    /// 0 when deduplication is off).
    pub removed: usize,
}

/// Replay settings of a run: everything [`crate::plan::plan_sequence`] needs besides embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplaySettings {
    /// Strategy (`none`, `random`, `dynamic`, `insinfo`, `inscl`, or the references
    /// `multitask` / `single`, which are not replay strategies and are stored as their name).
    pub strategy: String,
    /// Replay budget per stage step α (InsCL: budget at stage i is α × (i − 1)).
    pub alpha: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Cost, weights and solver of the task distances.
    pub similarity: SimilarityConfig,
    /// Tag normalisation used for InsInfo.
    pub tags: TagNormalizer,
}

impl RunManifest {
    /// The continual-learning method of the run (`[method] name` of its configuration:
    /// `seq`, `ewc`, ...); `seq` for runs from before methods existed.
    pub fn method(&self) -> &str {
        self.config
            .get("method")
            .and_then(|m| m.get("name"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("seq")
    }
}

impl ReplaySettings {
    /// The replay strategy, or `None` for the non-sequential references (`multitask`, `single`).
    pub fn replay_strategy(&self) -> Option<Strategy> {
        self.strategy.parse().ok()
    }
}

/// One training stage: task `task` was trained (with replay) and every seen task evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// 1-based stage number.
    pub stage: usize,
    /// The task trained at this stage.
    pub task: String,
    /// The replay plan (its `previous[j].distance` is the W row of this stage).
    pub plan: StagePlan,
    /// The plan's chosen instances as instance ids of the data, per previous task in plan
    /// order (an id repeats when the plan repeats an instance). Empty without replay.
    #[serde(default)]
    pub replayed: Vec<ReplayedInstances>,
    /// Size of the training mix: the task's training instances plus the replayed ones
    /// (0 for the zero-shot record).
    #[serde(default)]
    pub train_examples: usize,
    /// Training loss curve of this stage.
    pub loss: Vec<LossPoint>,
    /// Evaluation of every task seen so far, in task order.
    pub eval: Vec<TaskEval>,
    /// Wall-clock seconds of the stage: embeddings, replay plan, training and evaluation (the
    /// zero-shot record: its evaluation; 0 in files written before the split below).
    pub wall_seconds: f64,
    /// Of `wall_seconds`, the optimiser steps; absent for the zero-shot record and in older
    /// files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    /// Of `wall_seconds`, the evaluation of every seen task (generation and scoring); absent
    /// in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_seconds: Option<f64>,
}

/// The instances replayed from one previous task at a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayedInstances {
    /// Previous task name.
    pub task: String,
    /// Instance ids, grouped by instruction in plan order.
    pub ids: Vec<String>,
}

/// One optimiser step of the loss curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Optimiser step within the stage (1-based).
    pub step: usize,
    /// Mean token cross-entropy of the step (nats per response token).
    pub loss: f64,
    /// Learning rate used at the step.
    pub lr: f64,
}

/// Evaluation of one task after a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEval {
    /// Task name.
    pub task: String,
    /// Mean ROUGE-L F-measure ×100 over the instances.
    pub rouge_l: f64,
    /// Mean exact match ×100 over the instances.
    pub exact_match: f64,
    /// Generation budget of the task in tokens (from its gold output lengths, capped by
    /// `eval.max_new_tokens`), if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Under a routing method (`expand`): the percentage of instances sent to an adapter that
    /// was trained on this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_accuracy: Option<f64>,
    /// Per-instance predictions and scores.
    pub predictions: Vec<Prediction>,
}

/// One evaluated test instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Instance id from the data.
    pub id: String,
    /// Greedy generation of the model.
    pub prediction: String,
    /// Reference outputs.
    pub references: Vec<String>,
    /// ROUGE-L F ×100, max over references.
    pub rouge_l: f64,
    /// Exact match ×100 (0 or 100).
    pub exact_match: f64,
}

/// `results.json`: the score matrix and the summary metrics of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResults {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// Task names, in order (columns of `scores`).
    pub tasks: Vec<String>,
    /// `R[i][j]`: ROUGE-L of task j after stage i (lower-triangular).
    pub scores: ScoreMatrix,
    /// Zero-shot ROUGE-L of every task before stage 1 (for FWT), if evaluated.
    pub zero_shot: Option<Vec<f64>>,
    /// Single-task upper bounds (for Relative Gain), if known.
    pub upper_bounds: Option<Vec<f64>>,
    /// AP, F.Ra, BWT, FWT, Relative Gain.
    pub summary: ContinualSummary,
}

/// `embeddings.json`: per task its instructions with counts, tags and embeddings — all the
/// studio needs to recompute task distances and replay plans, and the input of `trainer plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingsFile {
    /// [`SCHEMA_VERSION`]; may be omitted in hand-written `trainer plan` input.
    #[serde(default = "current_version")]
    pub schema_version: u32,
    /// Model whose hidden states produced the embeddings, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Hidden layer that was mean-pooled, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// Which weights embedded the instructions: `base` (the pretrained model, adapters off;
    /// one space for every stage), `current` (the model after the previous stage, all seen
    /// tasks embedded again at each stage) or `file` (an external encoder's vectors), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// How token states became one vector per instruction (`mean`: mean over the
    /// instruction's tokens), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
    /// For `source = current`: the stage whose plan used these embeddings (the model after
    /// stage − 1 embedded them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// Tasks in sequence order.
    pub tasks: Vec<TaskEmbeddings>,
}

/// The method of a study arm that names none: plain sequential fine-tuning (`trainer run`'s
/// `method.name` default). Study files leave it out, so a study without a methods axis reads
/// and writes as before the axis existed.
pub const DEFAULT_METHOD: &str = "seq";

fn default_method() -> String {
    DEFAULT_METHOD.to_owned()
}

fn is_default_method(method: &str) -> bool {
    method == DEFAULT_METHOD
}

fn default_methods() -> Vec<String> {
    vec![default_method()]
}

fn is_default_methods(methods: &[String]) -> bool {
    matches!(methods, [method] if is_default_method(method))
}

/// `study.json`: a grid of ordinary runs (methods × strategies × seeds × task orders, under
/// `runs/CELL/` of the study folder) and what they say together: each metric per arm (a
/// method with a replay strategy, [`StudyArm`]) with its spread, and pairs of arms compared
/// over matched (seed, order) cells ([`crate::metrics::study`]).
///
/// Metrics are named as in [`StudyFile::METRICS`]: `ap`, `forgetting` (F.Ra), `bwt`, `fwt`,
/// `relative_gain` (RG; from the study's `single` runs, one per order).
///
/// The method fields (`methods`, and `method` of cells, summaries and curves) are left out
/// where they are [`DEFAULT_METHOD`] and read as it where absent, so files of studies without
/// a methods axis are unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyFile {
    /// Always [`SCHEMA_VERSION`] when written by this crate.
    pub schema_version: u32,
    /// Study name (the folder name under `studies/`).
    pub name: String,
    /// Replay strategies compared, in the study's order (without the `single` reference runs).
    pub strategies: Vec<String>,
    /// Continual-learning methods (`method.name` of `trainer run`) crossed with the
    /// strategies, in the study's order; `["seq"]` when absent.
    #[serde(
        default = "default_methods",
        skip_serializing_if = "is_default_methods"
    )]
    pub methods: Vec<String>,
    /// Seeds of the grid.
    pub seeds: Vec<u64>,
    /// Task orders of the grid.
    pub orders: Vec<String>,
    /// Task orders the study defines itself (name → tasks in training order), among `orders`;
    /// the others are the data source's own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub task_orders: BTreeMap<String, Vec<String>>,
    /// `section.field=value` overrides every cell's run shares.
    pub settings: Vec<String>,
    /// Every cell, finished runs only.
    pub cells: Vec<StudyCell>,
    /// Per arm, in [`StudyFile::arms`] order, every metric summarised over its cells.
    pub summaries: Vec<ArmSummary>,
    /// Pairs of arms `(a, b)` that differ in one factor (the same method with two strategies,
    /// or the same strategy with two methods), `a` before `b` in [`StudyFile::arms`]:
    /// differences `a − b`, arms named by [`StudyArm::label`].
    pub comparisons: Vec<PairedComparison>,
    /// Per arm and order: the score matrix averaged over seeds.
    pub curves: Vec<ScoreCurves>,
}

impl StudyFile {
    /// The metrics of a study, in table order.
    pub const METRICS: [&'static str; 5] = ["ap", "forgetting", "bwt", "fwt", "relative_gain"];

    /// How tables name a metric of [`StudyFile::METRICS`]: AP, F.Ra, BWT, FWT, RG (others as
    /// given).
    pub fn metric_label(metric: &str) -> &str {
        match metric {
            "ap" => "AP",
            "forgetting" => "F.Ra",
            "bwt" => "BWT",
            "fwt" => "FWT",
            "relative_gain" => "RG",
            other => other,
        }
    }

    /// The arms of the grid: method by method, each with every strategy in the study's order.
    pub fn arms(&self) -> Vec<StudyArm> {
        self.methods
            .iter()
            .flat_map(|method| {
                self.strategies
                    .iter()
                    .map(|strategy| StudyArm::new(method.clone(), strategy.clone()))
            })
            .collect()
    }
}

/// One arm of a study: a continual-learning method with a replay strategy, e.g. EWC with
/// InsCL replay. Its cells are the (seed, order) pairs of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StudyArm {
    /// `method.name` of the runs (`seq`, `ewc`, ...).
    pub method: String,
    /// `strategy.name` of the runs (`none`, `inscl`, ...).
    pub strategy: String,
}

impl StudyArm {
    /// The arm of `method` with replay `strategy`.
    pub fn new(method: impl Into<String>, strategy: impl Into<String>) -> Self {
        StudyArm {
            method: method.into(),
            strategy: strategy.into(),
        }
    }

    /// The arm's name in comparisons and tables: the strategy for [`DEFAULT_METHOD`]
    /// (`inscl`), else strategy and method joined by `+` (`inscl+ewc`).
    pub fn label(&self) -> String {
        if is_default_method(&self.method) {
            self.strategy.clone()
        } else {
            format!("{}+{}", self.strategy, self.method)
        }
    }
}

/// One run of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyCell {
    /// The replay strategy (`none`, `random`, `inscl`, ...).
    pub strategy: String,
    /// The run's method; absent = [`DEFAULT_METHOD`].
    #[serde(default = "default_method", skip_serializing_if = "is_default_method")]
    pub method: String,
    /// The task order's name.
    pub order: String,
    /// The cell's run seed.
    pub seed: u64,
    /// The run folder, relative to the study folder (`runs/NAME`).
    pub run: String,
    /// The run's metrics by name ([`StudyFile::METRICS`]); a metric the run lacks is absent.
    pub metrics: BTreeMap<String, f64>,
}

impl StudyCell {
    /// The cell's arm.
    pub fn arm(&self) -> StudyArm {
        StudyArm::new(self.method.clone(), self.strategy.clone())
    }
}

/// One arm's metrics over its cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    /// The replay strategy (`none`, `random`, `inscl`, ...).
    pub strategy: String,
    /// Absent = [`DEFAULT_METHOD`].
    #[serde(default = "default_method", skip_serializing_if = "is_default_method")]
    pub method: String,
    /// By metric name ([`StudyFile::METRICS`]).
    pub metrics: BTreeMap<String, crate::metrics::study::Described>,
}

impl ArmSummary {
    /// The summary's arm.
    pub fn arm(&self) -> StudyArm {
        StudyArm::new(self.method.clone(), self.strategy.clone())
    }
}

/// Two arms compared cell by cell (same seed and order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairedComparison {
    /// [`StudyArm::label`] of the first arm.
    pub a: String,
    /// [`StudyArm::label`] of the arm subtracted.
    pub b: String,
    /// By metric name: the differences `a − b` over the matched cells.
    pub metrics: BTreeMap<String, crate::metrics::study::Paired>,
}

/// The score matrix of one arm and order, averaged over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreCurves {
    /// The replay strategy (`none`, `random`, `inscl`, ...).
    pub strategy: String,
    /// Absent = [`DEFAULT_METHOD`].
    #[serde(default = "default_method", skip_serializing_if = "is_default_method")]
    pub method: String,
    /// The task order's name.
    pub order: String,
    /// Tasks in the order's training order (columns).
    pub tasks: Vec<String>,
    /// Runs averaged.
    pub n: usize,
    /// `mean[i][j]`: mean ROUGE-L of task j after stage i (row i has i + 1 entries).
    pub mean: Vec<Vec<f64>>,
    /// Sample standard deviation of the same (0 with one run).
    pub sd: Vec<Vec<f64>>,
}

impl ScoreCurves {
    /// The curves' arm.
    pub fn arm(&self) -> StudyArm {
        StudyArm::new(self.method.clone(), self.strategy.clone())
    }
}
