//! Training data: the continual-learning tasks of a run, each with its train and test split.
//!
//! Sources ([`DataFormat`]):
//! - `benchmark`: a folder `<task>/{train,dev,test}.json` of SuperNI task files
//!   (as `../shared/data/superni-cl15/`); orders from `<folder>/orders.json`
//!   (`{"orders": {"order1": [task, ...]}}`, written by `scripts/fetch-data`).
//! - `superni`: a folder of single SuperNI task files `<task>.json`; a seeded held-out
//!   fraction of each becomes its test split (InsCL holds out 20%).
//! - `categories`: a `categories.json` (`{"categories": {name: [superni task]}, "orders": {..}}`)
//!   whose task files are in `tasks/` beside it (as `../shared/data/superni-inscl16/`); each
//!   category is one continual-learning task; every SuperNI task is split on its own, so each
//!   instruction appears in both splits.
//! - `alpaca`: an Alpaca / LLaMA-Factory JSON or JSONL file ([`alpaca`]), grouped by `task`.
//!
//! Per-task caps (`max_train`, `max_test`) keep a seeded random subset in data order.

pub mod alpaca;
pub mod superni;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, DataFormat};
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
    Missing { path: String },
    /// Reading a file failed.
    #[error("{file}: {error}")]
    Io { file: String, error: std::io::Error },
    /// A file that is not JSON.
    #[error("{file}: not valid JSON: {error}")]
    Json {
        file: String,
        error: serde_json::Error,
    },
    /// A field of the wrong type or value.
    #[error("{file}: field {field}: {problem}, got {value}")]
    Field {
        file: String,
        field: String,
        problem: &'static str,
        value: String,
    },
    /// An order name the data source does not define.
    #[error("unknown order \"{order}\" in {file}; known orders: {known}")]
    UnknownOrder {
        order: String,
        file: String,
        known: String,
    },
    /// No order name and no explicit task list for a source without a natural order.
    #[error(
        "{source_kind} data at {path} needs data.tasks or data.order ({path} has no orders.json)"
    )]
    NoOrder {
        source_kind: &'static str,
        path: String,
    },
    /// A task named in the order or task list that the source does not have.
    #[error("task \"{task}\" not found in {path}")]
    UnknownTask { task: String, path: String },
    /// A task listed twice.
    #[error("task \"{task}\" appears twice in the task list")]
    DuplicateTask { task: String },
    /// A task with an empty split after parsing (and capping).
    #[error("task \"{task}\" has no usable {split} instances (source: {source_path})")]
    EmptySplit {
        task: String,
        split: &'static str,
        source_path: String,
    },
    /// The task list is empty.
    #[error("the task list is empty (data.first = 0 or an empty order)")]
    NoTasks,
}

/// A JSON value shortened for error messages (at most 80 characters).
pub(crate) fn show_value(value: &serde_json::Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The loaded tasks of a run, in training order, and the order's name.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Order name (`order1`, `curriculum`, ...), `custom` for an explicit list, `file` for the
    /// appearance order of an Alpaca file.
    pub order: String,
    /// Tasks in training order.
    pub tasks: Vec<TaskData>,
}

/// Loads the tasks `config` describes, relative to `root` (the working directory for the
/// CLI). Applies the order, `first`, held-out split and caps.
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
    let (order, mut tasks) = match config.format {
        DataFormat::Benchmark => {
            let (order, names) = resolve_order(
                config,
                &path,
                read_orders(&path.join("orders.json"))?,
                "benchmark",
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
                read_orders(&path.join("orders.json"))?,
                "superni",
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
        DataFormat::Categories => load_categories(config, &path)?,
        DataFormat::Alpaca => load_alpaca(config, &path)?,
    };
    for task in &mut tasks {
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
        for (split, examples) in [("train", &task.train), ("test", &task.test)] {
            if examples.is_empty() {
                return Err(DataError::EmptySplit {
                    task: task.name.clone(),
                    split,
                    source_path: path.display().to_string(),
                });
            }
        }
    }
    Ok(Dataset { order, tasks })
}

#[derive(Deserialize)]
struct OrdersFile {
    orders: BTreeMap<String, Vec<String>>,
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

/// The task list: `config.tasks` if given, else the named order; then the first
/// `config.first` tasks. Rejects duplicates and an empty result.
fn resolve_order(
    config: &DataConfig,
    path: &Path,
    (orders_file, orders): (String, BTreeMap<String, Vec<String>>),
    source_kind: &'static str,
) -> Result<(String, Vec<String>), DataError> {
    let (name, mut tasks) = if !config.tasks.is_empty() {
        ("custom".to_owned(), config.tasks.clone())
    } else {
        let order = config.order.as_deref().ok_or_else(|| DataError::NoOrder {
            source_kind,
            path: path.display().to_string(),
        })?;
        let tasks = orders.get(order).ok_or_else(|| DataError::UnknownOrder {
            order: order.to_owned(),
            file: orders_file.clone(),
            known: if orders.is_empty() {
                format!("none ({orders_file} is missing; run {FETCH_DATA_HINT})")
            } else {
                orders.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })?;
        (order.to_owned(), tasks.clone())
    };
    if let Some(first) = config.first {
        tasks.truncate(first);
    }
    if tasks.is_empty() {
        return Err(DataError::NoTasks);
    }
    for (i, task) in tasks.iter().enumerate() {
        if tasks[..i].contains(task) {
            return Err(DataError::DuplicateTask { task: task.clone() });
        }
    }
    Ok((name, tasks))
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
    })
}

fn load_categories(config: &DataConfig, file: &Path) -> Result<(String, Vec<TaskData>), DataError> {
    #[derive(Deserialize)]
    struct CategoriesFile {
        categories: BTreeMap<String, Vec<String>>,
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
    let (order, categories) =
        resolve_order(config, file, (name.clone(), parsed.orders), "categories")?;
    let task_dir = file.parent().unwrap_or(Path::new(".")).join("tasks");
    let tasks = categories
        .iter()
        .map(|category| {
            let members =
                parsed
                    .categories
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

fn load_alpaca(config: &DataConfig, file: &Path) -> Result<(String, Vec<TaskData>), DataError> {
    let examples = alpaca::read(file)?;
    let mut by_task: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    let mut appearance: Vec<String> = Vec::new();
    for example in examples {
        if !by_task.contains_key(&example.task) {
            appearance.push(example.task.clone());
        }
        by_task
            .entry(example.task.clone())
            .or_default()
            .push(example);
    }
    let mut orders = BTreeMap::new();
    orders.insert("file".to_owned(), appearance);
    let defaulted = DataConfig {
        order: config.order.clone().or_else(|| Some("file".to_owned())),
        ..config.clone()
    };
    let (order, names) = resolve_order(
        &defaulted,
        file,
        (file.display().to_string(), orders),
        "alpaca",
    )?;
    let tasks = names
        .iter()
        .map(|name| {
            let examples = by_task.remove(name).ok_or_else(|| DataError::UnknownTask {
                task: name.clone(),
                path: file.display().to_string(),
            })?;
            let (train, test) = held_out_split(examples, config.held_out, config.split_seed, name);
            Ok(TaskData {
                name: name.clone(),
                train,
                test,
                metadata: BTreeMap::new(),
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
        task.metadata
            .entry(file.definition.clone())
            .or_default()
            .extend(file.metadata.iter().cloned());
    }
    task
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
