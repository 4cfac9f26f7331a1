//! `trainer`: continual instruction tuning of LLaMA-family models with InsCL replay.
//!
//! Subcommands:
//! - `trainer plan`: the replay plan InsCL makes for a task sequence, from instruction
//!   embeddings and tags (no model needed).
//! - `trainer run`: fine-tune a model through a task sequence with replay, evaluating every
//!   seen task after each stage; writes a run folder of versioned artifacts.
//! - `trainer generate`: one completion from a checkpoint (greedy or top-p), with tokens/s.
//! - `trainer compare`: the summary metrics of several runs side by side, or a study's table.
//! - `trainer study`: strategies × seeds × orders, with mean ± sd and paired significance.

use clap::{Parser, Subcommand};

mod commands;

/// Continual instruction tuning with InsCL (Wang et al., NAACL 2024).
#[derive(Debug, Parser)]
#[command(name = "trainer", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the replay plan of every stage of a task sequence as JSON.
    Plan(commands::plan::PlanArgs),
    /// Train through a task sequence with replay (or resume a run).
    Run(commands::run::RunArgs),
    /// Print the examples a configuration trains and evaluates on, its data report, or its tags.
    Data(commands::data::DataArgs),
    /// Generate a completion from a checkpoint and print its speed.
    Generate(commands::generate::GenerateArgs),
    /// Print the summary metrics of runs side by side (or a study folder's table).
    Compare(commands::compare::CompareArgs),
    /// Run strategies × seeds × orders and summarise them with uncertainty.
    Study(commands::study::StudyArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Tensor buffers are freed and allocated again every step; keep them in the heap.
    llama::heap::retain_freed_memory();
    match Cli::parse().command {
        Command::Plan(args) => commands::plan::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Data(args) => commands::data::run(&args),
        Command::Generate(args) => commands::generate::run(&args),
        Command::Compare(args) => commands::compare::run(&args),
        Command::Study(args) => commands::study::run(&args),
    }
}
