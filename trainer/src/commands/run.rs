//! `trainer run [--config FILE.toml] [--set section.field=value]... [flags]` and
//! `trainer run --resume runs/NAME`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;
use trainer::config::{Config, TagSource};
use trainer::learner::ContinualLearner;
use trainer::model::{LlamaLearner, resolve_model};
use trainer::progress::Progress;
use trainer::run::{self, RunOptions};

/// The command that fetches the default model into `assets/`.
const FETCH_ASSETS_HINT: &str = "scripts/fetch-assets";

/// Arguments of `trainer run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML configuration; fields it omits keep the embedded default
    /// (trainer/configs/default.toml).
    #[arg(long, conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Override one field, e.g. `--set training.lr=1e-4` (repeatable; TOML value syntax).
    #[arg(
        long = "set",
        value_name = "SECTION.FIELD=VALUE",
        conflicts_with = "resume"
    )]
    pub overrides: Vec<String>,
    /// strategy.name: none, random, dynamic, insinfo, inscl, multitask, single.
    #[arg(long, conflicts_with = "resume")]
    pub strategy: Option<String>,
    /// method.name: seq, ewc, mas, si, tir, agem, lwf, ema, olora, clora, expand.
    #[arg(long, conflicts_with = "resume")]
    pub method: Option<String>,
    /// strategy.alpha: replayed instances per previous stage.
    #[arg(long, conflicts_with = "resume")]
    pub alpha: Option<usize>,
    /// run.seed.
    #[arg(long, conflicts_with = "resume")]
    pub seed: Option<u64>,
    /// output.dir: where run folders go.
    #[arg(long, conflicts_with = "resume")]
    pub output: Option<String>,
    /// output.name: the run folder's name.
    #[arg(long, conflicts_with = "resume")]
    pub name: Option<String>,
    /// data.tasks: comma-separated task list (replaces the named order).
    #[arg(long, value_delimiter = ',', conflicts_with = "resume")]
    pub tasks: Vec<String>,
    /// Continue this run folder after its last finished stage.
    #[arg(long, value_name = "RUN_FOLDER")]
    pub resume: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Write JSON-lines progress events to FILE (or to stderr without FILE).
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    pub log_json: Option<PathBuf>,
}

impl RunArgs {
    /// The dedicated flags as `--set` overrides, after the explicit ones.
    fn overrides(&self) -> Vec<String> {
        let mut all = self.overrides.clone();
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        if let Some(s) = &self.strategy {
            all.push(format!("strategy.name={}", quoted(s)));
        }
        if let Some(m) = &self.method {
            all.push(format!("method.name={}", quoted(m)));
        }
        if let Some(a) = self.alpha {
            all.push(format!("strategy.alpha={a}"));
        }
        if let Some(s) = self.seed {
            all.push(format!("run.seed={s}"));
        }
        if let Some(o) = &self.output {
            all.push(format!("output.dir={}", quoted(o)));
        }
        if let Some(n) = &self.name {
            all.push(format!("output.name={}", quoted(n)));
        }
        if !self.tasks.is_empty() {
            let list: Vec<String> = self.tasks.iter().map(|t| quoted(t)).collect();
            all.push(format!("data.tasks=[{}]", list.join(", ")));
        }
        all
    }
}

/// Runs or resumes; prints the R matrix, the summary and the run folder at the end.
///
/// # Errors
/// Configuration, data, model or run errors, each naming what is at fault.
pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let config = match &args.resume {
        Some(folder) => run::resume_config(folder)?,
        None => Config::load(args.config.as_deref(), &args.overrides())?,
    };
    let root = PathBuf::from(".");
    // The data first: a data problem stops the run before the model loads.
    let dataset = trainer::data::load(&config.data, &root)?;
    for notice in &dataset.notices {
        eprintln!("notice: {notice}");
    }
    let mut learner = open_learner(&config, &root, &config.model.path)?;
    // `[tagger] model` without an endpoint: a second checkpoint asked for the `llm` tags
    // (inference only).
    let tag_model = match &config.tagger.model {
        Some(path)
            if config.strategy.tags.0.contains(&TagSource::Llm)
                && config.tagger.endpoint.is_none() =>
        {
            Some(open_learner(&config, &root, path)?)
        }
        _ => None,
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("second interrupt: exiting now (the last finished stage is kept)");
            std::process::exit(130);
        }
        eprintln!("interrupt: finishing the current step, then stopping (resumable)");
    })
    .context("installing the Ctrl-C handler")?;
    let json: Option<Box<dyn std::io::Write + Send>> = match &args.log_json {
        None => None,
        Some(path) if path == Path::new("-") => Some(Box::new(std::io::stderr())),
        Some(path) => Some(Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
    };
    let progress = Progress::new(args.quiet, json);
    let mut options = RunOptions {
        root,
        resume: args.resume.clone(),
        interrupt,
        progress,
        versions: Vec::new(),
        tag_model,
        dataset: Some(dataset),
    };
    let outcome = run::run(&config, learner.as_mut(), &mut options)?;
    println!("{}", trainer::report::format_results(&outcome.results));
    println!("artifacts: {}", outcome.folder.display());
    Ok(())
}

/// The burn LLaMA of checkpoint `model` (GGUF, HF folder or `hf:` id) on `config.model`'s
/// device, prepared for `config.training`, its LoRA initialised from the run seed.
///
/// # Errors
/// A missing checkpoint (naming the command that fetches it), or a model that cannot be
/// loaded.
pub(crate) fn open_learner(
    config: &Config,
    root: &Path,
    model: &str,
) -> anyhow::Result<Box<dyn ContinualLearner>> {
    let path = root.join(resolve_model(model)?);
    anyhow::ensure!(
        path.exists(),
        "model not found at {}; run {FETCH_ASSETS_HINT} to fetch SmolLM2-135M-Instruct into assets/",
        path.display()
    );
    trainer::memory_plan::check(config, &path)?;
    Ok(Box::new(LlamaLearner::from_config(&path, config)?))
}
