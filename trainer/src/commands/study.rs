//! `trainer study [GRID]`: every cell, then `study.json`; and for running the grid elsewhere:
//! `trainer study cell GRID --index K` (one cell, what a scheduler calls), `trainer study
//! submit GRID` (a Slurm array job), `trainer study status GRID` and `trainer study summarize
//! GRID`. GRID: `[--config STUDY.toml] [--name N] [--methods a,b] [--strategies a,b]
//! [--seeds 0,1,2] [--orders x,y] [--set section.field=value]... [--relative-gain]
//! [--output DIR]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, Subcommand};
use trainer::config::RunStrategy;
use trainer::method::MethodName;
use trainer::progress::Progress;
use trainer::study::slurm::{SubmitOptions, Submitted};
use trainer::study::status::{CellProgress, format_status, study_status};
use trainer::study::{self, StudyConfig, StudyOptions};

/// Arguments of `trainer study`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StudyArgs {
    #[command(subcommand)]
    pub action: Option<StudyAction>,
    #[command(flatten)]
    pub grid: GridArgs,
    /// Progress bars of each cell's run.
    #[arg(long)]
    pub bars: bool,
}

/// What to do with the grid besides running it whole.
#[derive(Debug, Subcommand)]
pub enum StudyAction {
    /// Run one cell (start, resume, or nothing when finished): what Slurm array tasks,
    /// Kubernetes Indexed Jobs and GNU parallel call.
    Cell(CellArgs),
    /// Submit the unfinished cells to Slurm as an array job, with a summary job after it.
    Submit(SubmitArgs),
    /// Done, running, failed and pending cells, read from the study folder.
    Status(StatusArgs),
    /// Write study.json from the finished cells; fails listing the cells still missing.
    Summarize(GridArgs),
}

/// The study: a TOML file and/or flags.
#[derive(Debug, Args)]
pub struct GridArgs {
    /// Study TOML (`name`, `strategies`, `methods`, `seeds`, `orders`, `relative_gain`, `set`,
    /// `output`, `[task_orders]`, `[slurm]`); flags override its fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The study folder's name under --output.
    #[arg(long)]
    pub name: Option<String>,
    /// Replay strategies compared, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
    /// Continual-learning methods crossed with the strategies, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Seeds, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<u64>,
    /// Task orders (of the data, or the study's `[task_orders]`), comma-separated.
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
}

/// `trainer study cell`.
#[derive(Debug, Args)]
pub struct CellArgs {
    #[command(flatten)]
    pub grid: GridArgs,
    /// The cell's index (`trainer study status` lists them): `$SLURM_ARRAY_TASK_ID`,
    /// `$JOB_COMPLETION_INDEX`, a GNU parallel argument.
    #[arg(long)]
    pub index: usize,
    /// Refuse unless the cell at --index has this name (a job names the cell it was
    /// submitted for, so a changed study configuration cannot run another cell).
    #[arg(long, value_name = "NAME")]
    pub cell: Option<String>,
    /// Progress bars of the run.
    #[arg(long)]
    pub bars: bool,
}

/// `trainer study submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub grid: GridArgs,
    /// At most N cells at once (the array's `%N`; overrides `[slurm] concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Write the sbatch scripts into the study folder without submitting them.
    #[arg(long)]
    pub dry_run: bool,
}

/// `trainer study status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub grid: GridArgs,
    /// Print only the indices of the cells to run (failed and pending), space-separated.
    #[arg(long)]
    pub unfinished: bool,
}

impl GridArgs {
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
        if !self.methods.is_empty() {
            study.methods = self
                .methods
                .iter()
                .map(|m| parse_method(m))
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

/// A method name as `[method] name` spells it.
fn parse_method(name: &str) -> anyhow::Result<MethodName> {
    MethodName::ALL
        .iter()
        .copied()
        .find(|m| m.name() == name)
        .with_context(|| {
            let names: Vec<&str> = MethodName::ALL.iter().map(|m| m.name()).collect();
            format!(
                "unknown method {name:?}; expected one of: {}",
                names.join(", ")
            )
        })
}

/// Runs `trainer study` or one of its subcommands.
///
/// # Errors
/// Configuration, data, model, run or scheduler errors, each naming the cell or command.
pub fn run(args: &StudyArgs) -> anyhow::Result<()> {
    match &args.action {
        None => run_all(&args.grid.study()?, args.bars),
        Some(StudyAction::Cell(cell)) => run_one(cell),
        Some(StudyAction::Submit(submit)) => run_submit(submit),
        Some(StudyAction::Status(status)) => run_status(status),
        Some(StudyAction::Summarize(grid)) => run_summarize(&grid.study()?),
    }
}

/// The working directory: every relative path of a study starts there.
fn root() -> PathBuf {
    PathBuf::from(".")
}

/// Ctrl-C stops the current cell resumably; a second one exits.
fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
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
    Ok(interrupt)
}

/// Runs `body` with the CLI's [`StudyOptions`]: the burn LLaMA, stderr lines, bars if asked.
fn with_options<T>(bars: bool, body: impl FnOnce(&mut StudyOptions<'_>) -> T) -> anyhow::Result<T> {
    let root = root();
    let interrupt = interrupt_flag()?;
    let mut open = |config: &trainer::config::Config| {
        super::run::open_learner(config, &root, &config.model.path)
    };
    let mut progress = || Progress::new(!bars, None);
    let mut report = |line: &str| eprintln!("{line}");
    Ok(body(&mut StudyOptions {
        root: root.clone(),
        interrupt,
        open_learner: &mut open,
        progress: &mut progress,
        report: &mut report,
    }))
}

/// Runs the unfinished cells, writes `study.json` and prints the study table.
fn run_all(study: &StudyConfig, bars: bool) -> anyhow::Result<()> {
    let summary = with_options(bars, |options| study::run_study(study, options))??;
    print!("{}", study::format_study(&summary));
    println!(
        "study: {}",
        study.folder(&root()).join("study.json").display()
    );
    Ok(())
}

/// `trainer study cell`.
fn run_one(args: &CellArgs) -> anyhow::Result<()> {
    let study = args.grid.study()?;
    with_options(args.bars, |options| {
        study::run_cell(&study, args.index, args.cell.as_deref(), options)
    })??;
    Ok(())
}

/// `trainer study submit`: the scripts, the job ids, and how to follow them.
fn run_submit(args: &SubmitArgs) -> anyhow::Result<()> {
    let study = args.grid.study()?;
    let submitted = study::slurm::submit(
        &study,
        &SubmitOptions {
            root: root(),
            concurrency: args.concurrency,
            dry_run: args.dry_run,
        },
    )?;
    let list = |cells: &[usize]| {
        cells
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match submitted {
        Submitted::AllFinished => println!(
            "study {}: every cell is finished; `trainer study summarize` writes study.json",
            study.name
        ),
        Submitted::InFlight(cells) => println!(
            "study {}: nothing to submit; cells {} are running or queued",
            study.name,
            list(&cells)
        ),
        Submitted::Written { cells, script } => println!(
            "study {}: wrote {} for cells {} (not submitted)",
            study.name,
            script.display(),
            list(&cells)
        ),
        Submitted::Jobs {
            cells,
            array_job,
            summary_job,
            script,
        } => println!(
            "study {}: submitted array job {array_job} (cells {}, {}) and summary job \
             {summary_job}; follow it with `trainer study status`",
            study.name,
            list(&cells),
            script.display()
        ),
    }
    Ok(())
}

/// `trainer study status`.
fn run_status(args: &StatusArgs) -> anyhow::Result<()> {
    let study = args.grid.study()?;
    let cells = study_status(&study, &root())?;
    if args.unfinished {
        let indices: Vec<String> = cells
            .iter()
            .filter(|c| !c.settled())
            .map(|c| c.index.to_string())
            .collect();
        println!("{}", indices.join(" "));
    } else {
        print!("{}", format_status(&study, &cells));
    }
    Ok(())
}

/// `trainer study summarize`: `study.json` from the finished cells and the table; an error
/// listing the missing cells when some are not done.
fn run_summarize(study: &StudyConfig) -> anyhow::Result<()> {
    let root = root();
    let folder = study.folder(&root);
    let summary = study::summarize(study, &folder)?;
    inscl::artifact::write_atomic(&folder.join("study.json"), &summary)?;
    print!("{}", study::format_study(&summary));
    println!("study: {}", folder.join("study.json").display());
    let cells = study_status(study, &root)?;
    let missing: Vec<_> = cells
        .iter()
        .filter(|c| c.progress != CellProgress::Done)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprint!("{}", format_status(study, &cells));
    anyhow::bail!(
        "study {}: {} of {} cells missing from study.json: {}",
        study.name,
        missing.len(),
        cells.len(),
        missing
            .iter()
            .map(|c| format!("{} {}", c.index, c.cell.name()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}
