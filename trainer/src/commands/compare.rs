//! `trainer compare runs/A runs/B ...`: strategy, α, seed, AP, F.Ra, BWT, FWT, RG per run;
//! `trainer compare studies/NAME`: the study's table from its `study.json`.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `trainer compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folders (each with run.json and results.json), or one study folder (with
    /// study.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
}

/// Prints the comparison table on stdout.
///
/// # Errors
/// A missing or malformed artifact, naming the file.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    if let [folder] = args.runs.as_slice()
        && folder.join("study.json").is_file()
    {
        let study: inscl::artifact::StudyFile = inscl::artifact::read(&folder.join("study.json"))?;
        print!("{}", trainer::study::format_study(&study));
        return Ok(());
    }
    let rows = trainer::report::compare(&args.runs)?;
    print!("{}", trainer::report::format_compare(&rows));
    Ok(())
}
