//! `trainer compare runs/A runs/B ...`: strategy, α, seed, AP, F.Ra, BWT, FWT, RG per run.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `trainer compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folders (each with run.json and results.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
}

/// Prints the comparison table on stdout.
///
/// # Errors
/// A missing or malformed artifact, naming the file.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    let rows = trainer::report::compare(&args.runs)?;
    print!("{}", trainer::report::format_compare(&rows));
    Ok(())
}
