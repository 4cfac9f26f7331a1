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
mod error;
pub mod instruction;
mod order;
pub mod prompt_only;
pub mod records;
mod report;
mod split;
pub mod superni;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{DataConfig, DataFormat};
use inscl::artifact::DataReport;
use superni::SuperNiTask;

pub use error::DataError;
pub(crate) use error::{show_text, show_text_max, show_value};
use order::{CUSTOM_ORDER, folder_orders, resolve_order, resolve_order_or_file};
use split::cap;
pub use split::held_out_split;

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
// Long: one arm per data format, each resolving its order and reading its tasks.
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
