//! `trainer`: continual instruction tuning of LLaMA-family models with InsCL replay.
//!
//! Subcommands:
//! - `trainer plan`: the replay plan InsCL makes for a task sequence, from instruction
//!   embeddings and tags (no model needed).

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Plan(args) => commands::plan::run(&args),
    }
}
