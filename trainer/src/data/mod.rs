//! Training data: the continual-learning tasks of a run, each with its train and test split.
//!
//! Sources ([`DataFormat`]):
//! - `benchmark`: a folder `<task>/{train,dev,test}.json` of SuperNI task files
//!   (as `../shared/data/superni-cl15/`); orders from `<folder>/orders.json`
//!   (`{"orders": {"order1": [task, ...]}}`, written by `scripts/fetch-data`).
//! - `superni`: a folder of single SuperNI task files `<task>.json`; a seeded held-out
//!   fraction of each becomes its test split (InsCL holds out 20%).
//! - `categories`: a `categories.json` (`{"categories": {name: [superni task]}, "orders": {..}}`,
//!   or a folder holding it) whose task files are in `tasks/` beside it (as
//!   `../shared/data/superni-inscl16/`); each category is one continual-learning task; every
//!   SuperNI task is split on its own, so each instruction appears in both splits.
//! - `alpaca`: an Alpaca / LLaMA-Factory JSON or JSONL file ([`alpaca`]), grouped by `task`.
//! - `described`: a dataset description, as LLaMA-Factory's `dataset_info.json`, naming each
//!   task's files, formatting (alpaca or sharegpt) and column mapping ([`described`]), with
//!   prompt-only tasks' instructions derived by a rule ([`prompt_only`]).
//!
//! Record files (alpaca, described) are JSON Lines or one JSON array, told apart by content
//! ([`records`]). Every task's data problems are counted into its [`DataReport`] (written to
//! `run.json`): records skipped for blank outputs (a task left with none is
//! [`DataError::AllEmpty`]), repeats within a split and train/test overlap, which `data.dedup`
//! removes. Then per-task caps (`max_train`, `max_test`) keep a seeded random subset in data
//! order, never the first N (a file sorted by label keeps every label).

pub mod alpaca;
pub mod conversation;
pub mod described;
pub mod instruction;
pub mod prompt_only;
pub mod records;
mod report;
pub mod superni;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, DataFormat};
use inscl::artifact::DataReport;
use superni::SuperNiTask;

/// The command that puts the benchmark data in `data/`.
pub const FETCH_DATA_HINT: &str = "scripts/fetch-data";

/// One instruction-following example.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Example {
    /// Continual-learning task the example belongs to.
    pub task: String,
    /// Instance id (unique within its task).
    pub id: String,
    /// The instruction (SuperNI `Definition`).
    pub instruction: String,
    /// The instance input (may be empty).
    pub input: String,
    /// Reference outputs; training uses the first, evaluation scores against all.
    pub output: Vec<String>,
}

/// A continual-learning task with its splits and instruction metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskData {
    /// Task name (unique in the run).
    pub name: String,
    /// Training examples, in data order.
    pub train: Vec<Example>,
    /// Test examples, in data order.
    pub test: Vec<Example>,
    /// SuperNI `Categories` / `Reasoning` / `Domains` of each instruction text (empty for
    /// Alpaca data): the `metadata` tagger's source.
    pub metadata: BTreeMap<String, Vec<String>>,
    /// Data problems found while loading (`tasks[].data_report` of `run.json`): each
    /// constructor counts the skipped records, [`load`] the repeats and overlap.
    pub report: DataReport,
}

/// The training instances that share one instruction text.
#[derive(Debug, Clone, PartialEq)]
pub struct InstructionGroup {
    /// [`instruction_id`] of the text.
    pub id: String,
    /// The instruction text.
    pub text: String,
    /// Indices into [`TaskData::train`], ascending: the instruction's instances in data order
    /// (what the replay plan's instance indices refer to).
    pub instances: Vec<usize>,
}

impl TaskData {
    /// The distinct instructions of the training split, in order of first appearance.
    pub fn instruction_groups(&self) -> Vec<InstructionGroup> {
        let mut groups: Vec<InstructionGroup> = Vec::new();
        let mut position: BTreeMap<&str, usize> = BTreeMap::new();
        for (index, example) in self.train.iter().enumerate() {
            let slot = *position.entry(&example.instruction).or_insert_with(|| {
                groups.push(InstructionGroup {
                    id: instruction_id(&example.instruction),
                    text: example.instruction.clone(),
                    instances: Vec::new(),
                });
                groups.len() - 1
            });
            groups[slot].instances.push(index);
        }
        groups
    }
}

/// A stable id of an instruction text: the first 12 hex digits of its SHA-256. The same text
/// has the same id in every run, so external tag files can refer to it.
pub fn instruction_id(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why the data could not be loaded. Every variant names the file, field or task at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A data path that does not exist.
    #[error("{path} does not exist; run {FETCH_DATA_HINT} to put the benchmark data in data/")]
    Missing {
        /// The path, as given.
        path: String,
    },
    /// Reading a file failed.
    #[error("{file}: {error}")]
    Io {
        /// The file read.
        file: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file that is not JSON.
    #[error("{file}: not valid JSON: {error}")]
    Json {
        /// The file read.
        file: String,
        /// The underlying error.
        error: serde_json::Error,
    },
    /// A field of the wrong type or value.
    #[error("{file}: field {field}: {problem}, got {value}")]
    Field {
        /// The file read.
        file: String,
        /// The field, as named in the file.
        field: String,
        /// What is wrong with it.
        problem: &'static str,
        /// The value found (shortened).
        value: String,
    },
    /// An order name the data source does not define.
    #[error("unknown order \"{order}\" in {file}; known orders: {known}")]
    UnknownOrder {
        /// The order asked for.
        order: String,
        /// The file read.
        file: String,
        /// The orders the source has.
        known: String,
    },
    /// No order name and no explicit task list for a source without a natural order.
    #[error(
        "{source_kind} data at {path} needs data.tasks or data.order ({path} has no orders.json)"
    )]
    NoOrder {
        /// The kind of source (`benchmark`, `superni`, ...).
        source_kind: &'static str,
        /// The path, as given.
        path: String,
    },
    /// A task named in the order or task list that the source does not have.
    #[error("task \"{task}\" not found in {path}")]
    UnknownTask {
        /// The task's name.
        task: String,
        /// The path, as given.
        path: String,
    },
    /// A task listed twice; `list` says where: `data.tasks` or an order of a file.
    #[error("task \"{task}\" appears twice in {list}")]
    DuplicateTask {
        /// The task's name.
        task: String,
        /// Where the task list came from.
        list: String,
    },
    /// A folder given as `data.path` without the description file the format reads.
    #[error(
        "{folder} is a folder without {file}; set data.path to the {file} file or put one in the folder"
    )]
    NoDescription {
        /// The folder given.
        folder: String,
        /// The file read.
        file: &'static str,
    },
    /// An entry of a dataset description that is not usable.
    #[error("{file}: entry \"{key}\": {problem}")]
    Description {
        /// The file read.
        file: String,
        /// The entry of the description.
        key: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A prompt-only task whose instruction cannot be derived by its rule.
    #[error(
        "{file}: field {field}: no instruction of task \"{task}\" can be derived by {rule}: {reason}"
    )]
    NoInstruction {
        /// The file read.
        file: String,
        /// The field, as named in the file.
        field: String,
        /// The task's name.
        task: String,
        /// The derivation rule, as written.
        rule: String,
        /// Why the value is refused.
        reason: String,
    },
    /// A task all of whose records have blank outputs.
    #[error(
        "task \"{task}\": all {skipped} records have empty outputs; nothing to train or score (source: {source_path})"
    )]
    AllEmpty {
        /// The task's name.
        task: String,
        /// Records skipped for empty outputs.
        skipped: usize,
        /// The file or description read.
        source_path: String,
    },
    /// A task with an empty split after parsing (and de-duplication), with why.
    #[error("task \"{task}\" has no usable {split} instances: {reason} (source: {source_path})")]
    EmptySplit {
        /// The task's name.
        task: String,
        /// `train` or `test`.
        split: &'static str,
        /// Why the split is empty.
        reason: String,
        /// The file or description read.
        source_path: String,
    },
    /// A data file whose SHA-1 differs from its description's `file_sha1`.
    #[error(
        "{file}: SHA-1 {actual} differs from the description's file_sha1 {expected}; the file is not the one described (update or remove file_sha1 if the change is intended)"
    )]
    Checksum {
        /// The data file.
        file: String,
        /// The description's `file_sha1`.
        expected: String,
        /// The file's SHA-1.
        actual: String,
    },
    /// The task list is empty.
    #[error("the task list is empty (data.first = 0 or an empty order)")]
    NoTasks,
    /// A data file without a single record.
    #[error("{file}: no records (an empty file or an empty JSON array)")]
    NoRecords {
        /// The file read.
        file: String,
    },
}

/// A JSON value shortened for error messages (at most 80 characters).
pub(crate) fn show_value(value: &serde_json::Value) -> String {
    show_text(&value.to_string())
}

/// A text shortened for error messages (at most 80 characters, then `…`).
pub(crate) fn show_text(text: &str) -> String {
    show_text_max(text, 80)
}

/// A text shortened to at most `max` characters, then `…`.
pub(crate) fn show_text_max(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The loaded tasks of a run, in training order, and the order's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Order name (`order1`, `curriculum`, ...), `custom` for an explicit list, `file` for the
    /// appearance order of an Alpaca file or a dataset description.
    pub order: String,
    /// Tasks in training order.
    pub tasks: Vec<TaskData>,
    /// Things the user should know that are not errors (an order that fell back to the file
    /// order, ignored description keys, inputs that every prompt already holds), one line each,
    /// for the commands to print before anything long starts.
    pub notices: Vec<String>,
}

/// Loads the tasks `config` describes, relative to `root` (the working directory for the
/// CLI). Applies the order, `first` and held-out split, counts each task's data problems
/// (removing repeats and overlap with `dedup`), then the caps. Everything is read and checked
/// here, before a run writes anything.
///
/// # Errors
/// [`DataError`] naming the file, field, order or task at fault.
pub fn load(config: &DataConfig, root: &Path) -> Result<Dataset, DataError> {
    let path = root.join(&config.path);
    if !path.exists() {
        return Err(DataError::Missing {
            path: path.display().to_string(),
        });
    }
    let mut notices = Vec::new();
    let (order, mut tasks) = match config.format {
        DataFormat::Benchmark => {
            let (order, names) = resolve_order(
                config,
                &path,
                folder_orders(&path, "benchmark")?,
                "benchmark",
                &mut notices,
            )?;
            let tasks = names
                .iter()
                .map(|name| load_benchmark_task(&path, name))
                .collect::<Result<Vec<_>, _>>()?;
            (order, tasks)
        }
        DataFormat::Superni => {
            let (order, names) = resolve_order(
                config,
                &path,
                folder_orders(&path, "superni")?,
                "superni",
                &mut notices,
            )?;
            let tasks = names
                .iter()
                .map(|name| {
                    let file = path.join(format!("{name}.json"));
                    if !file.exists() {
                        return Err(DataError::UnknownTask {
                            task: name.clone(),
                            path: path.display().to_string(),
                        });
                    }
                    let task = SuperNiTask::read(&file, name)?;
                    Ok(held_out_task(name, &[task], config))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (order, tasks)
        }
        DataFormat::Categories => {
            load_categories(config, &in_folder(&path, "categories.json")?, &mut notices)?
        }
        DataFormat::Alpaca => load_alpaca(config, &path, &mut notices)?,
        DataFormat::Described => {
            let file = in_folder(&path, described::DESCRIPTION_FILE)?;
            let mut dataset = described::load(config, &file)?;
            notices.append(&mut dataset.notices);
            (dataset.order, dataset.tasks)
        }
    };
    for task in &mut tasks {
        if task.train.is_empty() && task.test.is_empty() && task.report.empty_outputs > 0 {
            return Err(DataError::AllEmpty {
                task: task.name.clone(),
                skipped: task.report.empty_outputs,
                source_path: path.display().to_string(),
            });
        }
        let loaded = (task.train.len(), task.test.len());
        report::check(task, config.dedup);
        task.train = cap(
            std::mem::take(&mut task.train),
            config.max_train,
            config.split_seed,
            &task.name,
            "train",
        );
        task.test = cap(
            std::mem::take(&mut task.test),
            config.max_test,
            config.split_seed,
            &task.name,
            "test",
        );
        for (split, examples, loaded) in [
            ("train", &task.train, loaded.0),
            ("test", &task.test, loaded.1),
        ] {
            if examples.is_empty() {
                let reason = if loaded > 0 {
                    format!(
                        "data.dedup removed all {loaded} (repeats, or test instances also in train)"
                    )
                } else {
                    format!(
                        "it has {} train and {} test instances after loading (held_out = {} for sources without a test split)",
                        task.train.len(),
                        task.test.len(),
                        config.held_out
                    )
                };
                return Err(DataError::EmptySplit {
                    task: task.name.clone(),
                    split,
                    reason,
                    source_path: path.display().to_string(),
                });
            }
        }
    }
    Ok(Dataset {
        order,
        tasks,
        notices,
    })
}

/// The data settings as a run records them: a selection inherited from the embedded default
/// ([`DataConfig::selection_inherited`]) that fell back to another order is replaced by that
/// order (`file`), so that `--resume` loads the same tasks.
pub fn resolved_config(config: &DataConfig, dataset: &Dataset) -> DataConfig {
    let mut resolved = config.clone();
    if config.selection_inherited && dataset.order != CUSTOM_ORDER {
        resolved.tasks.clear();
        resolved.order = Some(dataset.order.clone());
    }
    resolved.selection_inherited = false;
    resolved
}

/// `path`, or `path/name` when `path` is a folder.
///
/// # Errors
/// [`DataError::NoDescription`] for a folder without `name`.
fn in_folder(path: &Path, name: &'static str) -> Result<PathBuf, DataError> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let file = path.join(name);
    if file.is_file() {
        Ok(file)
    } else {
        Err(DataError::NoDescription {
            folder: path.display().to_string(),
            file: name,
        })
    }
}

#[derive(Deserialize)]
struct OrdersFile {
    orders: BTreeMap<String, Vec<String>>,
}

/// The orders of a folder source (`benchmark`, `superni`): `orders.json`'s, and `file`, its
/// tasks in name order (task folders with a `train.json`, or task files `<task>.json`).
fn folder_orders(
    folder: &Path,
    source_kind: &str,
) -> Result<(String, BTreeMap<String, Vec<String>>), DataError> {
    let (file, mut orders) = read_orders(&folder.join("orders.json"))?;
    let entries = std::fs::read_dir(folder).map_err(|error| DataError::Io {
        file: folder.display().to_string(),
        error,
    })?;
    let mut tasks: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|path| match source_kind {
            "benchmark" => path
                .join("train.json")
                .is_file()
                .then(|| path.file_name()?.to_str().map(str::to_owned))?,
            _ => (path.extension()? == "json" && path.file_stem()? != "orders")
                .then(|| path.file_stem()?.to_str().map(str::to_owned))?,
        })
        .collect();
    tasks.sort();
    orders.entry("file".to_owned()).or_insert(tasks);
    Ok((file, orders))
}

/// Named orders of `file`, or an empty map when it does not exist.
fn read_orders(file: &Path) -> Result<(String, BTreeMap<String, Vec<String>>), DataError> {
    let name = file.display().to_string();
    if !file.exists() {
        return Ok((name, BTreeMap::new()));
    }
    let text = std::fs::read_to_string(file).map_err(|error| DataError::Io {
        file: name.clone(),
        error,
    })?;
    let parsed: OrdersFile = serde_json::from_str(&text).map_err(|error| DataError::Json {
        file: name.clone(),
        error,
    })?;
    Ok((name, parsed.orders))
}

/// The order name a run records for an explicit `data.tasks` list.
const CUSTOM_ORDER: &str = "custom";

/// The task list: `config.tasks` if given, else the named order; then the first
/// `config.first` tasks. Rejects duplicates and an empty result. A selection inherited from
/// the embedded default ([`DataConfig::selection_inherited`]) that the source lacks (an order
/// it does not define, a task it does not have) falls back to its `file` order, with a notice.
fn resolve_order(
    config: &DataConfig,
    path: &Path,
    (orders_file, orders): (String, BTreeMap<String, Vec<String>>),
    source_kind: &'static str,
    notices: &mut Vec<String>,
) -> Result<(String, Vec<String>), DataError> {
    let missing_default_task = config
        .tasks
        .iter()
        .find(|task| orders.get("file").is_some_and(|all| !all.contains(task)));
    let file_order;
    let config = match missing_default_task {
        Some(task) if config.selection_inherited => {
            notices.push(format!(
                "data.tasks = {:?} comes from the embedded default and {} has no task {task:?}; \
                 the tasks run in file order (set data.order or data.tasks to choose)",
                config.tasks,
                path.display()
            ));
            file_order = DataConfig {
                tasks: Vec::new(),
                order: Some("file".to_owned()),
                ..config.clone()
            };
            &file_order
        }
        _ => config,
    };
    let (name, mut tasks, list) = if !config.tasks.is_empty() {
        (
            CUSTOM_ORDER.to_owned(),
            config.tasks.clone(),
            "data.tasks".to_owned(),
        )
    } else {
        let mut order = config.order.as_deref().ok_or_else(|| DataError::NoOrder {
            source_kind,
            path: path.display().to_string(),
        })?;
        if config.selection_inherited && !orders.contains_key(order) && orders.contains_key("file")
        {
            let defined: Vec<&str> = orders
                .keys()
                .map(String::as_str)
                .filter(|o| *o != "file")
                .collect();
            notices.push(format!(
                "data.order = {order:?} comes from the embedded default and {} defines no such order ({}); \
                 the tasks run in file order (set data.order or data.tasks to choose)",
                path.display(),
                if defined.is_empty() {
                    "it defines none".to_owned()
                } else {
                    format!("it defines {}", defined.join(", "))
                }
            ));
            order = "file";
        }
        let tasks = orders.get(order).ok_or_else(|| DataError::UnknownOrder {
            order: order.to_owned(),
            file: orders_file.clone(),
            known: if orders.is_empty() {
                format!("none ({orders_file} is missing; run {FETCH_DATA_HINT})")
            } else {
                orders.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })?;
        let list = format!("order \"{order}\" of {orders_file}");
        (order.to_owned(), tasks.clone(), list)
    };
    if let Some(first) = config.first {
        tasks.truncate(first);
    }
    if tasks.is_empty() {
        return Err(DataError::NoTasks);
    }
    for (i, task) in tasks.iter().enumerate() {
        if tasks[..i].contains(task) {
            return Err(DataError::DuplicateTask {
                task: task.clone(),
                list,
            });
        }
    }
    Ok((name, tasks))
}

/// As [`resolve_order`], with the order `file` (the source's own task order) when neither
/// `data.order` nor `data.tasks` is given.
fn resolve_order_or_file(
    config: &DataConfig,
    path: &Path,
    orders: (String, BTreeMap<String, Vec<String>>),
    source_kind: &'static str,
    notices: &mut Vec<String>,
) -> Result<(String, Vec<String>), DataError> {
    let defaulted = DataConfig {
        order: config.order.clone().or_else(|| Some("file".to_owned())),
        ..config.clone()
    };
    resolve_order(&defaulted, path, orders, source_kind, notices)
}

fn load_benchmark_task(root: &Path, name: &str) -> Result<TaskData, DataError> {
    let folder = root.join(name);
    if !folder.is_dir() {
        return Err(DataError::UnknownTask {
            task: name.to_owned(),
            path: root.display().to_string(),
        });
    }
    let train = SuperNiTask::read(&folder.join("train.json"), name)?;
    let test = SuperNiTask::read(&folder.join("test.json"), name)?;
    let mut metadata = BTreeMap::new();
    metadata.insert(train.definition.clone(), train.metadata.clone());
    metadata.insert(test.definition.clone(), test.metadata.clone());
    Ok(TaskData {
        name: name.to_owned(),
        train: train.examples(name),
        test: test.examples(name),
        metadata,
        report: DataReport {
            empty_outputs: train.skipped + test.skipped,
            ..DataReport::default()
        },
    })
}

fn load_categories(
    config: &DataConfig,
    file: &Path,
    notices: &mut Vec<String>,
) -> Result<(String, Vec<TaskData>), DataError> {
    #[derive(Deserialize)]
    struct CategoriesFile {
        categories: Ordered,
        #[serde(default)]
        orders: BTreeMap<String, Vec<String>>,
    }
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|error| DataError::Io {
        file: name.clone(),
        error,
    })?;
    let parsed: CategoriesFile = serde_json::from_str(&text).map_err(|error| DataError::Json {
        file: name.clone(),
        error,
    })?;
    let mut categories_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut orders = parsed.orders;
    let mut in_file = Vec::new();
    for (category, members) in parsed.categories.0 {
        let members: Vec<String> =
            serde_json::from_value(members.clone()).map_err(|_| DataError::Field {
                file: name.clone(),
                field: format!("categories.{category}"),
                problem: "expected a list of task names",
                value: show_value(&members),
            })?;
        in_file.push(category.clone());
        categories_of.insert(category, members);
    }
    orders.entry("file".to_owned()).or_insert(in_file);
    let (order, categories) =
        resolve_order(config, file, (name.clone(), orders), "categories", notices)?;
    let task_dir = file.parent().unwrap_or(Path::new(".")).join("tasks");
    let tasks = categories
        .iter()
        .map(|category| {
            let members = categories_of
                .get(category)
                .ok_or_else(|| DataError::UnknownTask {
                    task: category.clone(),
                    path: name.clone(),
                })?;
            let files = members
                .iter()
                .map(|member| {
                    let path: PathBuf = task_dir.join(format!("{member}.json"));
                    if !path.exists() {
                        return Err(DataError::Missing {
                            path: path.display().to_string(),
                        });
                    }
                    SuperNiTask::read(&path, member)
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(held_out_task(category, &files, config))
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok((order, tasks))
}

fn load_alpaca(
    config: &DataConfig,
    file: &Path,
    notices: &mut Vec<String>,
) -> Result<(String, Vec<TaskData>), DataError> {
    let mut read = alpaca::read(file)?;
    let mut orders = BTreeMap::new();
    orders.insert(
        "file".to_owned(),
        read.iter().map(|t| t.name.clone()).collect(),
    );
    let (order, names) = resolve_order_or_file(
        config,
        file,
        (file.display().to_string(), orders),
        "alpaca",
        notices,
    )?;
    let tasks = names
        .iter()
        .map(|name| {
            let slot = read.iter().position(|t| t.name == *name).ok_or_else(|| {
                DataError::UnknownTask {
                    task: name.clone(),
                    path: file.display().to_string(),
                }
            })?;
            let task = read.swap_remove(slot);
            let (train, test) =
                held_out_split(task.examples, config.held_out, config.split_seed, name);
            Ok(TaskData {
                name: name.clone(),
                train,
                test,
                metadata: BTreeMap::new(),
                report: DataReport {
                    empty_outputs: task.empty_outputs,
                    ..DataReport::default()
                },
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok((order, tasks))
}

/// One continual-learning task from SuperNI files, each split on its own into train and a
/// held-out test fraction.
fn held_out_task(name: &str, files: &[SuperNiTask], config: &DataConfig) -> TaskData {
    let mut task = TaskData {
        name: name.to_owned(),
        train: Vec::new(),
        test: Vec::new(),
        metadata: BTreeMap::new(),
        report: DataReport::default(),
    };
    for file in files {
        let (train, test) = held_out_split(
            file.examples(name),
            config.held_out,
            config.split_seed,
            &file.name,
        );
        task.train.extend(train);
        task.test.extend(test);
        task.report.empty_outputs += file.skipped;
        task.metadata
            .entry(file.definition.clone())
            .or_default()
            .extend(file.metadata.iter().cloned());
    }
    task
}

/// The members of a JSON object in file order (a JSON map would sort them).
pub(crate) struct Ordered(pub Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> serde::de::Visitor<'de> for MembersVisitor {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A seeded random stream per (seed, purpose, name), independent of the other tasks.
fn named_rng(seed: u64, purpose: &str, name: &str) -> ChaCha8Rng {
    let digest = Sha256::digest(format!("{seed}/{purpose}/{name}").as_bytes());
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    ChaCha8Rng::from_seed(key)
}

/// Splits `examples` into (train, test): `round(fraction × n)` test examples chosen by a
/// stream seeded by `(seed, name)`, at least one of each when `n ≥ 2` and `0 < fraction < 1`.
/// Both parts keep data order.
pub fn held_out_split(
    examples: Vec<Example>,
    fraction: f64,
    seed: u64,
    name: &str,
) -> (Vec<Example>, Vec<Example>) {
    let n = examples.len();
    let mut test_count = (fraction * n as f64).round() as usize;
    if n >= 2 && fraction > 0.0 && fraction < 1.0 {
        test_count = test_count.clamp(1, n - 1);
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut named_rng(seed, "held-out", name));
    let mut is_test = vec![false; n];
    for &i in &order[..test_count.min(n)] {
        is_test[i as usize] = true;
    }
    let (test, train): (Vec<_>, Vec<_>) = examples
        .into_iter()
        .zip(is_test)
        .partition(|(_, test)| *test);
    (
        train.into_iter().map(|(e, _)| e).collect(),
        test.into_iter().map(|(e, _)| e).collect(),
    )
}

/// At most `limit` examples: a seeded random subset, in data order.
fn cap(
    examples: Vec<Example>,
    limit: Option<usize>,
    seed: u64,
    task: &str,
    split: &str,
) -> Vec<Example> {
    match limit {
        Some(limit) if examples.len() > limit => {
            let mut order: Vec<u32> = (0..examples.len() as u32).collect();
            order.shuffle(&mut named_rng(seed, split, task));
            let mut keep = vec![false; examples.len()];
            for &i in &order[..limit] {
                keep[i as usize] = true;
            }
            examples
                .into_iter()
                .zip(keep)
                .filter_map(|(e, k)| k.then_some(e))
                .collect()
        }
        _ => examples,
    }
}
