//! The study grid: [`StudyConfig`] and its [`Cell`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use inscl::artifact::StudyArm;
use serde::{Deserialize, Serialize};

use crate::config::{Config, RunStrategy};
use crate::method::MethodName;

use super::StudyError;
use super::slurm::SlurmConfig;

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
            format!("run.seed={}", cell.seed),
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
