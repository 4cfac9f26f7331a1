//! `trainer data [--config FILE.toml] [--set section.field=value]... [--report [--json] | --tags]`:
//! the examples a run with this configuration trains and evaluates on, printed as JSON, or with
//! `--report` each task's data report, or with `--tags` every instruction's tags as the run's
//! tagger (`strategy.tags`, the `llm` source through `[tagger]`) writes them.
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
use trainer::data::{self, Dataset, Example, InstructionGroup, TaskData};
use trainer::tags::Tagger;
use trainer::tags::api::ChatApi;
use trainer::tags::llm::{self, LlmTagFile};

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
    /// Tag every instruction as the run would (`strategy.tags`; the `llm` source asks the
    /// `[tagger]`, a local checkpoint or an endpoint) and print the tags as JSON, with the
    /// tagger's instructions/s and fallbacks on stderr.
    #[arg(long, conflicts_with = "report")]
    tags: bool,
}

/// `--tags`: every instruction's raw tags, and how the `llm` source fared.
#[derive(Serialize)]
struct TagsReport<'a> {
    /// The `llm` source's tag file (model, counts, seconds, replies); absent without it.
    llm: Option<&'a LlmTagFile>,
    tasks: Vec<TaskTags<'a>>,
}

#[derive(Serialize)]
struct TaskTags<'a> {
    name: &'a str,
    instructions: Vec<InstructionTags<'a>>,
}

#[derive(Serialize)]
struct InstructionTags<'a> {
    id: &'a str,
    text: &'a str,
    tags: Vec<String>,
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

/// The `llm` tags of every instruction of `groups`, asked of the `[tagger]` endpoint, or of
/// its local checkpoint (the run's model without one), `tagger.batch_size` at a time.
fn llm_tags(
    config: &Config,
    groups: &[Vec<InstructionGroup>],
    keyphrases: usize,
) -> anyhow::Result<LlmTagFile> {
    let instructions = llm::distinct_instructions(groups.iter().flatten());
    let tag = |name: &str, chat: &mut llm::Chat| -> anyhow::Result<LlmTagFile> {
        let mut file = LlmTagFile::new(name);
        for batch in llm::untagged(&file, &instructions).chunks(config.tagger.batch_size) {
            llm::tag_batch(&mut file, batch, chat, keyphrases)?;
        }
        Ok(file)
    };
    if config.tagger.endpoint.is_some() {
        let api = ChatApi::new(&config.tagger);
        return tag(&api.describe(), &mut |prompts: &[String]| {
            Ok(api.chat(prompts)?)
        });
    }
    let path = config.tagger.model.as_ref().unwrap_or(&config.model.path);
    let mut model = super::run::open_learner(config, Path::new("."), path)?;
    let max_new_tokens = config.tagger.max_new_tokens;
    tag(path, &mut |prompts: &[String]| {
        model.chat(prompts, max_new_tokens)
    })
}

/// Prints `--tags` for `dataset`.
fn print_tags(config: &Config, dataset: &Dataset, out: &mut impl Write) -> anyhow::Result<()> {
    let tagger = Tagger::new(&config.strategy, Path::new("."))?;
    let groups: Vec<Vec<InstructionGroup>> = dataset
        .tasks
        .iter()
        .map(TaskData::instruction_groups)
        .collect();
    let llm = if tagger.uses_llm() {
        let file = llm_tags(config, &groups, tagger.keyphrase_count())?;
        eprintln!(
            "llm tags: {} instructions by {} ({:.2} instructions/s, {:.1} s), {} asked twice, {} fell back to keyphrases",
            file.instructions.len(),
            file.model,
            file.tags_per_second(),
            file.seconds,
            file.retries,
            file.fallbacks
        );
        Some(file)
    } else {
        None
    };
    let report = TagsReport {
        llm: llm.as_ref(),
        tasks: dataset
            .tasks
            .iter()
            .zip(&groups)
            .map(|(task, groups)| TaskTags {
                name: &task.name,
                instructions: groups
                    .iter()
                    .map(|group| InstructionTags {
                        id: &group.id,
                        text: &group.text,
                        tags: tagger.tags(task, group, llm.as_ref()),
                    })
                    .collect(),
            })
            .collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &report)?;
    writeln!(out)?;
    Ok(())
}

/// Loads the configuration's data (relative to the working directory, as `trainer run` reads
/// it) and prints the examples, the report or the tags.
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
    if args.tags {
        return print_tags(&config, &dataset, &mut stdout);
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
