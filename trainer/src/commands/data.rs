//! `trainer data [--config FILE.toml] [--set section.field=value]...`: the examples a run
//! with this configuration trains and evaluates on, printed as JSON.
//!
//! The same loading as `trainer run` ([`trainer::data::load`]: order, `first`, held-out
//! split, de-duplication and the seeded `max_train` / `max_test` caps), without a model. For
//! checking a configuration before a long run, and for `tools/bench/hf_stage.py`, which trains
//! Hugging Face transformers + PEFT on exactly these examples.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use trainer::config::Config;
use trainer::data::{self, Example};

/// Arguments of `trainer data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// TOML configuration; fields it omits keep the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one field, e.g. `--set data.first=2` (repeatable; TOML value syntax).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    overrides: Vec<String>,
}

/// The printed JSON: the order's name and each task's splits, in training order.
#[derive(Serialize)]
struct SelectedData<'a> {
    order: &'a str,
    tasks: Vec<SelectedTask<'a>>,
}

#[derive(Serialize)]
struct SelectedTask<'a> {
    name: &'a str,
    train: &'a [Example],
    test: &'a [Example],
}

/// Loads the configuration's data (relative to the working directory, as `trainer run` reads it) and prints it.
pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), &args.overrides)?;
    let dataset = data::load(&config.data, Path::new("."))?;
    let selected = SelectedData {
        order: &dataset.order,
        tasks: dataset
            .tasks
            .iter()
            .map(|t| SelectedTask {
                name: &t.name,
                train: &t.train,
                test: &t.test,
            })
            .collect(),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, &selected)?;
    writeln!(stdout)?;
    Ok(())
}
