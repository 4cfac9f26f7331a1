//! `trainer study [--config STUDY.toml] [--name N] [--strategies a,b] [--seeds 0,1,2]
//! [--orders x,y] [--set section.field=value]... [--relative-gain]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;
use trainer::config::RunStrategy;
use trainer::progress::Progress;
use trainer::study::{self, StudyConfig, StudyOptions};

/// Arguments of `trainer study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// Study TOML (`name`, `strategies`, `seeds`, `orders`, `relative_gain`, `set`,
    /// `output`); flags override its fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The study folder's name under --output.
    #[arg(long)]
    pub name: Option<String>,
    /// Strategies compared, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Task orders of the data, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub orders: Vec<String>,
    /// Run settings for every cell, as `trainer run --set` (repeatable; added after the
    /// file's).
    #[arg(long = "set", value_name = "SECTION.FIELD=VALUE")]
    pub overrides: Vec<String>,
    /// Add one `single` run per order and fill Relative Gain.
    #[arg(long)]
    pub relative_gain: bool,
    /// Folder of study folders.
    #[arg(long)]
    pub output: Option<String>,
    /// Progress bars of each cell's run.
    #[arg(long)]
    pub bars: bool,
}

impl StudyArgs {
    /// The study: the file (if any), then the flags.
    fn study(&self) -> anyhow::Result<StudyConfig> {
        let mut study = match &self.config {
            Some(file) => StudyConfig::read(file)?,
            None => StudyConfig::new(
                self.name
                    .clone()
                    .context("--name is required without --config")?,
            ),
        };
        if let Some(name) = &self.name {
            study.name = name.clone();
        }
        if !self.strategies.is_empty() {
            study.strategies = self
                .strategies
                .iter()
                .map(|s| s.parse::<RunStrategy>().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?;
        }
        if !self.seeds.is_empty() {
            study.seeds = self.seeds.clone();
        }
        if !self.orders.is_empty() {
            study.orders = self.orders.clone();
        }
        study.set.extend(self.overrides.iter().cloned());
        study.relative_gain |= self.relative_gain;
        if let Some(output) = &self.output {
            study.output = output.clone();
        }
        Ok(study)
    }
}

/// Runs the unfinished cells, writes `study.json` and prints the study table.
///
/// # Errors
/// Configuration, data, model or run errors, each naming the cell.
pub fn run(args: &StudyArgs) -> anyhow::Result<()> {
    let study = args.study()?;
    let root = PathBuf::from(".");
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now (finished cells are kept)");
            std::process::exit(130);
        }
        eprintln!(
            "interrupt: finishing the current step, then stopping (run the study again to continue)"
        );
    })
    .context("installing the Ctrl-C handler")?;
    let bars = args.bars;
    let mut open = |config: &trainer::config::Config| {
        super::run::open_learner(config, &root, &config.model.path)
    };
    let mut progress = || Progress::new(!bars, None);
    let mut report = |line: &str| eprintln!("{line}");
    let summary = study::run_study(
        &study,
        &mut StudyOptions {
            root: root.clone(),
            interrupt,
            open_learner: &mut open,
            progress: &mut progress,
            report: &mut report,
        },
    )?;
    print!("{}", study::format_study(&summary));
    println!(
        "study: {}",
        study.folder(&root).join("study.json").display()
    );
    Ok(())
}
