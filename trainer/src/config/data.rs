//! `[data]`: source, order and sizes.

use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// Data source kind of `[data]` (see [`crate::data`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// A folder of `<task>/{train,test}.json`, orders from `orders.json`.
    Benchmark,
    /// A folder of SuperNI task files; a seeded held-out fraction is the test split.
    Superni,
    /// InsCL16's `categories.json`: each category one task.
    Categories,
    /// Alpaca records (`instruction`, `input`, `output`, optional `task`) as JSON or JSON Lines.
    Alpaca,
    /// A dataset description (`dataset_info.json`, as LLaMA-Factory's) naming each task's
    /// files, formatting and column mapping ([`crate::data::described`]).
    Described,
}

/// `[data]`: source, order and sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The kind of source.
    pub format: DataFormat,
    /// Folder (benchmark, superni), `categories.json` (or its folder), Alpaca file, or
    /// dataset description (or a folder holding `dataset_info.json`), relative to the working
    /// directory.
    pub path: String,
    /// Named order of the source; ignored when `tasks` is non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// Whether the task selection (`tasks`, else `order`) is the embedded default's while the
    /// user changed the data source (`path` or `format`) without naming an order or a task
    /// list: then a source that lacks the default's tasks or order runs in its file order,
    /// with a notice, instead of failing. Set by [`super::Config::load`]; never serialised (a run
    /// records the selection it resolved to: [`crate::data::resolved_config`]).
    #[serde(skip)]
    pub selection_inherited: bool,
    /// Explicit task list (wins over `order`).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Keep only the first N tasks of the order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<usize>,
    /// At most this many training instances per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train: Option<usize>,
    /// At most this many test instances per task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_test: Option<usize>,
    /// Held-out test fraction in `[0, 1)` for sources without a test split.
    pub held_out: f64,
    /// Seed of the held-out split and of the caps.
    pub split_seed: u64,
    /// Drop repeated instances within a split and test instances that are also training
    /// instances (same instruction and input), keeping first occurrences; the counts are in
    /// `run.json` either way ([`inscl::artifact::DataReport`]).
    #[serde(default)]
    pub dedup: bool,
}

impl DataConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            (0.0..1.0).contains(&self.held_out),
            "data.held_out",
            self.held_out,
            "must be in [0, 1)",
        )?;
        check(
            self.max_train != Some(0),
            "data.max_train",
            0,
            "must be at least 1",
        )?;
        check(
            self.max_test != Some(0),
            "data.max_test",
            0,
            "must be at least 1",
        )
    }
}
