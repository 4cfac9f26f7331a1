//! Held-out loss before and after LoRA fine-tuning on one real task: the model layer's check
//! that a few hundred optimiser steps lower the loss on instances the model never trained on.
//!
//! ```sh
//! scripts/fetch-assets && scripts/fetch-data
//! cargo run --release -p trainer --example heldout_loss -- \
//!     --task task1510_evalution_relation_extraction --set data.max_train=400 --set training.epochs=3
//! ```
//!
//! It takes `trainer run`'s configuration (the embedded default, then `--config`, then `--set`):
//! the model and device of `[model]`, the task's train split (capped by `data.max_train`) to
//! train on and its test split (capped by `data.max_test`) as the held-out set, the optimiser and
//! LoRA settings of `[training]`. It trains with the same [`LlamaLearner`] `trainer run` uses and
//! prints the held-out loss (nats per response token) before and after, with the training-loss
//! curve in between.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Parser;
use trainer::config::Config;
use trainer::learner::{ContinualLearner, StageTraining};
use trainer::model::LlamaLearner;

#[derive(Parser)]
struct Args {
    /// The task to fine-tune on (a name in `data.path`); default: the first task of the config.
    #[arg(long)]
    task: Option<String>,
    /// Configuration file (only the fields it changes).
    #[arg(long)]
    config: Option<PathBuf>,
    /// `section.field=value` overrides, as `trainer run --set`.
    #[arg(long = "set")]
    overrides: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    llama::heap::retain_freed_memory();
    let mut overrides = args.overrides;
    if let Some(task) = &args.task {
        overrides.push(format!("data.tasks=[{task:?}]"));
    }
    let config = Config::load(args.config.as_deref(), &overrides)?;
    let dataset = trainer::data::load(&config.data, std::path::Path::new("."))?;
    let task = dataset
        .tasks
        .first()
        .context("the configuration selects no task")?;
    let mut learner = LlamaLearner::from_config(std::path::Path::new(&config.model.path), &config)?;
    println!(
        "task {}: {} train / {} held-out instances; LoRA r {} alpha {} dropout {} on {:?}; lr {} \
         ({:?}), batch {}, {} epochs",
        task.name,
        task.train.len(),
        task.test.len(),
        config.training.lora_rank,
        config.training.lora_alpha,
        config.training.lora_dropout,
        config.training.lora_targets,
        config.training.lr,
        config.training.schedule,
        config.training.batch_size,
        config.training.epochs,
    );

    let before = learner.held_out_loss(&task.test)?;
    println!("held-out loss before: {before:.4}");
    let plan = StageTraining {
        stage: 1,
        task: task.name.clone(),
        seed: config.run.seed,
        config: config.training.clone(),
        task_distances: Vec::new(),
    };
    let start = Instant::now();
    let mut tokens_per_s = Vec::new();
    let curve = learner.train(&task.train, &plan, &mut |report| {
        tokens_per_s.push(report.tokens_per_s);
        if report.step % 25 == 0 || report.step == report.total_steps {
            eprintln!(
                "step {:>4}/{}  loss {:.4}  lr {:.2e}  {:.0} tok/s",
                report.step, report.total_steps, report.loss, report.lr, report.tokens_per_s
            );
        }
        ControlFlow::Continue(())
    })?;
    let seconds = start.elapsed().as_secs_f64();
    ensure!(!curve.is_empty(), "no training step was taken");
    let after = learner.held_out_loss(&task.test)?;

    let tenth = curve.len().div_ceil(10);
    let window = |points: &[trainer::learner::LossPoint]| {
        points.iter().map(|p| p.loss).sum::<f64>() / points.len() as f64
    };
    println!(
        "training loss, mean of each tenth of the {} steps:",
        curve.len()
    );
    for (i, chunk) in curve.chunks(tenth).enumerate() {
        println!(
            "  steps {:>4}-{:<4} {:.4}",
            i * tenth + 1,
            i * tenth + chunk.len(),
            window(chunk)
        );
    }
    tokens_per_s.sort_by(f64::total_cmp);
    println!(
        "{} steps in {seconds:.0} s (median {:.0} training tok/s on {})",
        curve.len(),
        tokens_per_s[tokens_per_s.len() / 2],
        learner.device()
    );
    println!(
        "held-out loss: {before:.4} -> {after:.4} ({:+.1}%)",
        100.0 * (after - before) / before
    );
    Ok(())
}
