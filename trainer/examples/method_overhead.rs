//! Step time of every continual-learning method against plain fine-tuning (`seq`), side by
//! side in one process: SmolLM2 with the default LoRA settings, batches of 4 × 192 tokens (the
//! default `training.batch_size` and `max_length`; the last 64 tokens are the scored response).
//! Each method first goes through one stage (so that penalties, memory and teacher exist), then
//! the methods take turns, one step each per round, so that machine drift hits all alike.
//! Prints the median step time of each and its ratio to `seq`, with the CPU's SIMD level and
//! the load average. Then the evaluation time of `expand` (instances routed over two adapters)
//! against `seq`, the same way. Results: `tools/bench/RESULTS.md`.
//!
//! ```text
//! cargo run --release -p trainer --example method_overhead -- [GGUF] [ROUNDS]
//! ```

use std::ops::ControlFlow;
use std::time::Instant;

use anyhow::Context;
use burn::tensor::Device;
use llama::train::{
    Batch, Encoded, LrSchedule, OptimConfig, ScheduleKind, ScheduledAdamW, collate,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::config::{Config, MethodConfig};
use trainer::learner::{ContinualLearner, Example, StageTraining};
use trainer::method::{ContinualMethod, StageContext, train_step};
use trainer::model::LlamaLearner;

const BATCH: usize = 4;
const LENGTH: usize = 192;
const RESPONSE: usize = 64;

fn synthetic(rng: &mut ChaCha8Rng, vocab: u32) -> Encoded {
    let tokens: Vec<u32> = (0..LENGTH).map(|_| rng.random_range(3..vocab)).collect();
    let labels = tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if i < LENGTH - RESPONSE {
                -100
            } else {
                i64::from(t)
            }
        })
        .collect();
    Encoded { tokens, labels }
}

fn cpu_simd() -> &'static str {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if flags.contains(" avx512f") {
        "AVX-512"
    } else if flags.contains(" avx2") {
        "AVX2"
    } else {
        "no AVX2"
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() -> anyhow::Result<()> {
    llama::heap::retain_freed_memory();
    let mut args = std::env::args().skip(1);
    let gguf = args
        .next()
        .unwrap_or_else(|| "assets/SmolLM2-135M-Instruct.Q4_1.gguf".into());
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let mut config = Config::embedded_default();
    config.model.device = "cpu".into();
    let learner = LlamaLearner::from_config(std::path::Path::new(&gguf), &config)?;
    eprintln!("{}", learner.device());
    let base = learner.model_in_training().clone();
    let vocab = base.config().vocab_size as u32;
    let device: Device = base.embed_tokens.weight.val().device();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let task: Vec<Encoded> = (0..2 * BATCH).map(|_| synthetic(&mut rng, vocab)).collect();
    let step_batch: Batch = collate(
        &(0..BATCH)
            .map(|_| synthetic(&mut rng, vocab))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>(),
        &device,
    );
    // Two tasks at distance 0.5 (TIR's similarities; the other methods ignore them).
    let distances = [vec![0.0, 0.5], vec![0.5, 0.0]];
    let trained = ["synthetic".to_owned()];
    let stage = |n| StageContext {
        stage: n,
        trained_tasks: &trained,
        task_key: Some((vec![1.0], 1)),
        task_distances: &distances[..n],
        task: &task,
        batch_size: BATCH,
        seed: 0,
        device: &device,
    };
    let mut methods: Vec<(&str, Box<dyn ContinualMethod>, llama::model::Llama)> =
        MethodConfig::NAMES
            .iter()
            .map(|&name| {
                let lora = learner.lora_config();
                let settings = MethodConfig::named(name).context("a registered method")?;
                let mut method = settings.build(Some(lora))?;
                let model = method.begin_stage(base.clone(), &stage(1))?;
                let model = method.end_stage(model, &stage(1))?;
                let model = method.begin_stage(model, &stage(2))?;
                Ok((name, method, model))
            })
            .collect::<anyhow::Result<_>>()?;
    let trainer = || {
        ScheduledAdamW::new(OptimConfig {
            schedule: LrSchedule::new(1e-4, 0.0, 1000, ScheduleKind::Constant),
            weight_decay: 0.0,
            clip_norm: Some(1.0),
        })
    };
    let mut trainers: Vec<ScheduledAdamW> = methods.iter().map(|_| trainer()).collect();
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); methods.len()];
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    // One untimed warm-up round.
    for round in 0..=rounds {
        for (k, (_, method, model)) in methods.iter_mut().enumerate() {
            let start = Instant::now();
            let (next, _) = train_step(
                &mut trainers[k],
                method.as_mut(),
                model.clone(),
                std::slice::from_ref(&step_batch),
            );
            *model = next;
            if round > 0 {
                times[k].push(start.elapsed().as_secs_f64());
            }
        }
    }
    let seq = median(times[0].clone());
    println!(
        "method step time, SmolLM2-135M LoRA r{} on {:?}, batch {BATCH}×{LENGTH}, {rounds} rounds; \
         CPU {}; load average at start {}",
        config.training.lora_rank,
        config.training.lora_targets,
        cpu_simd(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("| method | median step (s) | × seq |\n|---|---:|---:|");
    for ((name, _, _), t) in methods.iter().zip(times) {
        let m = median(t);
        println!("| {name} | {m:.3} | {:.2} |", m / seq);
    }
    drop(methods);
    evaluation_overhead(&gguf, &config, rounds)
}

/// Eight examples of task `task`, all with `instruction`.
fn examples(task: &str, instruction: &str) -> Vec<Example> {
    (0..8)
        .map(|i| Example {
            task: task.to_owned(),
            id: format!("{task}-{i}"),
            instruction: instruction.to_owned(),
            input: format!("Item {i}: the weather was {}.", ["fine", "awful"][i % 2]),
            output: vec![["yes", "no"][i % 2].to_owned()],
        })
        .collect()
}

/// Evaluation time of `expand` (two adapters, every instance routed) against `seq` (one merged
/// model) on the same 16 instances, at most 16 new tokens each, after both trained two tasks.
/// Trained at a vanishing learning rate, every model answers as the base model does: the same
/// answers, so the same number of decoding steps, and the ratio is what routing costs (with
/// real training the experts' answers, and so their lengths, differ from `seq`'s). The
/// generated tokens are printed to show it.
fn evaluation_overhead(gguf: &str, config: &Config, rounds: usize) -> anyhow::Result<()> {
    let mut training = config.training.clone();
    training.lr = 1e-12;
    let tasks = [
        (
            "sentiment",
            "Answer yes if the sentence is positive, no otherwise.",
        ),
        (
            "weather",
            "Say yes when the weather in the text is good and no when it is bad.",
        ),
    ];
    let mut learners: Vec<(&str, LlamaLearner)> = ["seq", "expand"]
        .into_iter()
        .map(|name| {
            // The defaults: expansion's threshold 1 gives one adapter per task.
            let mut config = config.clone();
            config.training = training.clone();
            config.method = MethodConfig::named(name).context("a registered method")?;
            let learner = LlamaLearner::from_config(std::path::Path::new(gguf), &config)?;
            Ok((name, learner))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut test = Vec::new();
    for (stage, (task, instruction)) in tasks.iter().enumerate() {
        let data = examples(task, instruction);
        for (_, learner) in &mut learners {
            let plan = StageTraining {
                stage: stage + 1,
                task: (*task).to_owned(),
                seed: 0,
                config: training.clone(),
                task_distances: Vec::new(),
            };
            learner.train(&data, &plan, &mut |_| ControlFlow::Continue(()))?;
        }
        test.extend(data);
    }
    let mut times = vec![Vec::new(); learners.len()];
    let mut generated = vec![0; learners.len()];
    for round in 0..=rounds {
        for (k, (_, learner)) in learners.iter_mut().enumerate() {
            let start = Instant::now();
            let outputs = learner.generate(&test, 16, &mut |_| ControlFlow::Continue(()))?;
            if round > 0 {
                times[k].push(start.elapsed().as_secs_f64());
            }
            generated[k] = learner.token_counts(&outputs)?.iter().sum::<usize>();
        }
    }
    let seq = median(times[0].clone());
    println!(
        "\nevaluation, {} instances × 16 new tokens, 2 tasks trained:",
        test.len()
    );
    println!("| method | generated tokens | median evaluation (s) | × seq |\n|---|---:|---:|---:|");
    for (((name, _), t), tokens) in learners.iter().zip(times).zip(generated) {
        let m = median(t);
        println!("| {name} | {tokens} | {m:.3} | {:.2} |", m / seq);
    }
    Ok(())
}
