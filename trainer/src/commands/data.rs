//! `trainer data [--config FILE.toml] [--set section.field=value]... [--report [--json]]`: the
//! examples a run with this configuration trains and evaluates on, printed as JSON, or with
//! `--report` each task's data report.
//!
//! The same loading as `trainer run` ([`trainer::data::load`]: order, `first`, held-out
//! split, de-duplication and the seeded `max_train` / `max_test` caps), without a model. For
//! checking a configuration before a long run, and for `tools/bench/hf_stage.py`, which trains
//! Hugging Face transformers + PEFT on exactly these examples. Notices of the loading (an
//! order that fell back to the file order, ignored description keys, doubled inputs) go to
//! stderr.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use inscl::artifact::DataReport;
use serde::Serialize;
use trainer::config::Config;
use trainer::data::{self, Dataset, Example, TaskData};

/// Arguments of `trainer data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// TOML configuration; fields it omits keep the embedded default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one field, e.g. `--set data.first=2` (repeatable; TOML value syntax).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    overrides: Vec<String>,
    /// Print each task's data report (counts, duplicates, overlap, empty outputs, its
    /// instructions and how many instances each covers) instead of the examples.
    #[arg(long)]
    report: bool,
    /// With --report: the report as JSON instead of a table.
    #[arg(long, requires = "report")]
    json: bool,
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

/// `--report`: the data report of every task, in training order.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    order: &'a str,
    notices: &'a [String],
    tasks: Vec<TaskReport<'a>>,
}

/// One task of [`Report`].
#[derive(Debug, Serialize)]
struct TaskReport<'a> {
    name: &'a str,
    /// Instances after the split, de-duplication and caps.
    train: usize,
    test: usize,
    data_report: &'a DataReport,
    /// The distinct instructions (derived ones, for prompt-only tasks), in order of first
    /// appearance over train then test.
    instructions: Vec<InstructionCount<'a>>,
}

/// One instruction of a task and the instances it covers.
#[derive(Debug, Serialize)]
struct InstructionCount<'a> {
    id: String,
    text: &'a str,
    train: usize,
    test: usize,
}

impl<'a> Report<'a> {
    /// The report of `dataset`.
    fn new(dataset: &'a Dataset) -> Self {
        Report {
            order: &dataset.order,
            notices: &dataset.notices,
            tasks: dataset.tasks.iter().map(TaskReport::new).collect(),
        }
    }

    /// The report as tables: one row per task, then each task's instructions.
    fn table(&self) -> String {
        let mut out = String::new();
        let header = [
            "train",
            "test",
            "instr.",
            "empty out.",
            "train dup.",
            "test dup.",
            "overlap",
            "removed",
        ];
        let width = self
            .tasks
            .iter()
            .map(|t| t.name.chars().count())
            .chain([4])
            .max()
            .unwrap_or(4);
        let _ = writeln!(out, "order: {}", self.order);
        let _ = write!(out, "{:<width$}", "task");
        for column in header {
            let _ = write!(out, " {column:>10}");
        }
        out.push('\n');
        for task in &self.tasks {
            let r = task.data_report;
            let _ = write!(out, "{:<width$}", task.name);
            for value in [
                task.train,
                task.test,
                task.instructions.len(),
                r.empty_outputs,
                r.train_duplicates,
                r.test_duplicates,
                r.overlap,
                r.removed,
            ] {
                let _ = write!(out, " {value:>10}");
            }
            out.push('\n');
        }
        for task in &self.tasks {
            let _ = writeln!(
                out,
                "\n{}: {} instruction(s)\n{:>7} {:>6}  instruction",
                task.name,
                task.instructions.len(),
                "train",
                "test"
            );
            for instruction in &task.instructions {
                let _ = writeln!(
                    out,
                    "{:>7} {:>6}  {}",
                    instruction.train,
                    instruction.test,
                    one_line(instruction.text, 100)
                );
            }
        }
        out
    }
}

impl<'a> TaskReport<'a> {
    fn new(task: &'a TaskData) -> Self {
        let mut instructions: Vec<InstructionCount> = Vec::new();
        for (example, in_train) in task
            .train
            .iter()
            .map(|e| (e, true))
            .chain(task.test.iter().map(|e| (e, false)))
        {
            let slot = match instructions
                .iter()
                .position(|i| i.text == example.instruction)
            {
                Some(slot) => slot,
                None => {
                    instructions.push(InstructionCount {
                        id: data::instruction_id(&example.instruction),
                        text: &example.instruction,
                        train: 0,
                        test: 0,
                    });
                    instructions.len() - 1
                }
            };
            let counts = &mut instructions[slot];
            if in_train {
                counts.train += 1;
            } else {
                counts.test += 1;
            }
        }
        TaskReport {
            name: &task.name,
            train: task.train.len(),
            test: task.test.len(),
            data_report: &task.report,
            instructions,
        }
    }
}

/// `text` on one line (line breaks shown as `⏎`), cut to `max` characters with `…`.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.replace('\n', "⏎");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// Loads the configuration's data (relative to the working directory, as `trainer run` reads
/// it) and prints the examples, or the report.
pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    let config = Config::load(args.config.as_deref(), &args.overrides)?;
    let dataset = data::load(&config.data, Path::new("."))?;
    for notice in &dataset.notices {
        eprintln!("notice: {notice}");
    }
    let mut stdout = std::io::stdout().lock();
    if args.report {
        let report = Report::new(&dataset);
        if args.json {
            serde_json::to_writer_pretty(&mut stdout, &report)?;
            writeln!(stdout)?;
        } else {
            write!(stdout, "{}", report.table())?;
        }
        return Ok(());
    }
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
    serde_json::to_writer(&mut stdout, &selected)?;
    writeln!(stdout)?;
    Ok(())
}
