//! `trainer run` end to end with the real model layer on a tiny random LLaMA (HF folder made
//! here: d = 32, 2 layers, 4 query / 2 key-value heads, the byte-level tokenizer of
//! llama/fixtures/byte_tokenizer) over 3 real SuperNI tasks: every strategy runs and writes valid
//! artifacts, InsCL replays other quotas than random, and a run interrupted mid-stage and
//! resumed equals an uninterrupted one, LoRA dropout included.
#![cfg(not(target_arch = "wasm32"))]

mod support;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use inscl::artifact::{self, RunManifest, RunResults, StageRecord};
use trainer::config::{Config, DataFormat, MethodConfig, RunStrategy};
use trainer::learner::{ContinualLearner, Example, LossPoint, StageTraining, StepReport, Weights};
use trainer::method::ewc::EwcConfig;
use trainer::method::expand::ExpandConfig;
use trainer::model::LlamaLearner;
use trainer::run::{self, RunError, RunFolder, RunOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every training seeds burn's backend random stream, which is process-wide: the resume test
/// (LoRA dropout draws from that stream) runs alone, the others may run together.
static BACKEND_RNG: RwLock<()> = RwLock::new(());

/// Three real SuperNI-CL15 tasks (12 train / 6 test each), α = 4, small sizes.
fn config(strategy: &str, model: &Path, out: &Path) -> Config {
    let mut config = Config::embedded_default();
    config.model.path = model.display().to_string();
    config.data.format = DataFormat::Benchmark;
    config.data.path = "superni/cl".into();
    config.data.order = Some("order1".into());
    config.data.tasks.clear();
    config.data.first = None;
    config.strategy.name = strategy.parse().unwrap();
    config.strategy.alpha = 4;
    config.training.batch_size = 4;
    config.training.max_length = 96;
    config.training.lr = 5e-3;
    config.eval.max_new_tokens = 4;
    config.output.dir = out.display().to_string();
    config
}

fn learner(config: &Config) -> LlamaLearner {
    tiny_llama::learner(config, config.run.seed)
}

#[test]
fn every_strategy_runs_on_a_tiny_llama_and_writes_valid_artifacts() {
    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    for strategy in RunStrategy::ALL.map(RunStrategy::name) {
        let config = config(strategy, &model, out.path());
        let outcome = run::run(
            &config,
            &mut learner(&config),
            &mut RunOptions::new(fixtures()),
        )
        .unwrap();
        let folder = RunFolder::new(&outcome.folder);
        let manifest: RunManifest = artifact::read(&folder.manifest()).unwrap();
        assert_eq!(manifest.replay.strategy, strategy);
        assert!(
            manifest.device.starts_with("cpu (flex"),
            "{}",
            manifest.device
        );
        let results: RunResults = artifact::read(&folder.results()).unwrap();
        assert_eq!(results, outcome.results);
        assert_eq!(results.scores.stages(), 3);
        let stages = if strategy == "multitask" { 1 } else { 3 };
        for stage in 1..=stages {
            let record: StageRecord = artifact::read(&folder.stage(stage)).unwrap();
            let replayed: usize = record.replayed.iter().map(|r| r.ids.len()).sum();
            let expected = match strategy {
                "none" | "single" | "multitask" => 0,
                _ => 4 * (stage - 1),
            };
            assert_eq!(replayed, expected, "{strategy} stage {stage}");
            let trained = if strategy == "multitask" { 36 } else { 12 };
            assert_eq!(record.train_examples, trained + expected);
            assert_eq!(record.loss.len(), (trained + expected).div_ceil(4));
            assert!(
                record
                    .loss
                    .iter()
                    .all(|p| p.loss.is_finite() && p.loss > 0.0)
            );
            // Learning rates follow the cosine schedule: peak after warmup, lower at the end.
            let last = record.loss.last().unwrap();
            assert!(
                last.lr < config.training.lr,
                "{strategy}: {:?}",
                record.loss
            );
            for eval in &record.eval {
                assert!(eval.predictions.len() == 6);
            }
        }
        let kept = std::fs::read_dir(outcome.folder.join("checkpoints"))
            .unwrap()
            .count();
        assert_eq!(kept, 1);
        let checkpoint = std::fs::read_dir(outcome.folder.join("checkpoints"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert!(checkpoint.join("adapter_model.safetensors").exists());
        let adapter: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(checkpoint.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(adapter["peft_type"], "LORA");
        assert_eq!(adapter["r"], 8);
    }
}

#[test]
fn inscl_replays_different_quotas_than_random() {
    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let quotas = |strategy: &str| -> Vec<usize> {
        let mut config = config(strategy, &model, out.path());
        config.strategy.alpha = 6;
        let outcome = run::run(
            &config,
            &mut learner(&config),
            &mut RunOptions::new(fixtures()),
        )
        .unwrap();
        let record: StageRecord =
            artifact::read(&RunFolder::new(&outcome.folder).stage(3)).unwrap();
        record.plan.previous.iter().map(|p| p.quota).collect()
    };
    let random = quotas("random");
    let inscl = quotas("inscl");
    assert_eq!(random, vec![6, 6], "random splits the budget of 12 evenly");
    assert_eq!(inscl.iter().sum::<usize>(), 12);
    assert_ne!(
        inscl, random,
        "InsCL weighs tasks by dissimilarity and InsInfo"
    );
}

/// Raises the interrupt flag (as Ctrl-C would) at the first step of one stage.
struct Interrupting {
    inner: LlamaLearner,
    stage: usize,
    flag: Arc<AtomicBool>,
}

impl ContinualLearner for Interrupting {
    fn embed(&mut self, texts: &[String], weights: Weights) -> anyhow::Result<Vec<Vec<f32>>> {
        self.inner.embed(texts, weights)
    }
    fn chat(&mut self, prompts: &[String], max_new_tokens: usize) -> anyhow::Result<Vec<String>> {
        self.inner.chat(prompts, max_new_tokens)
    }
    fn token_counts(&self, texts: &[String]) -> anyhow::Result<Vec<usize>> {
        self.inner.token_counts(texts)
    }
    fn train(
        &mut self,
        examples: &[Example],
        plan: &StageTraining,
        on_step: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<LossPoint>> {
        let (stage, flag) = (self.stage, self.flag.clone());
        self.inner.train(examples, plan, &mut |report| {
            if plan.stage == stage {
                flag.store(true, Ordering::SeqCst);
            }
            on_step(report)
        })
    }
    fn generate(
        &mut self,
        examples: &[Example],
        max_new_tokens: usize,
        on_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
    ) -> anyhow::Result<Vec<String>> {
        self.inner.generate(examples, max_new_tokens, on_done)
    }
    fn last_routes(&self) -> Option<Vec<Vec<String>>> {
        self.inner.last_routes()
    }
    fn save_checkpoint(&self, dir: &Path) -> anyhow::Result<()> {
        self.inner.save_checkpoint(dir)
    }
    fn load_checkpoint(&mut self, dir: &Path) -> anyhow::Result<()> {
        self.inner.load_checkpoint(dir)
    }
    fn reset(&mut self) -> anyhow::Result<()> {
        self.inner.reset()
    }
    fn device(&self) -> String {
        self.inner.device()
    }
}

/// Runs `configure`d `inscl` runs on the tiny LLaMA: one straight through, one interrupted
/// during stage 3 and resumed by a fresh learner; asserts equal artifacts and returns the
/// straight run's stage files.
fn assert_resume_is_exact(what: &str, configure: impl Fn(&mut Config)) -> Vec<(String, String)> {
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let config = |name: &str| {
        let mut config = config("inscl", &model, out.path());
        configure(&mut config);
        config.output.name = Some(name.into());
        config
    };
    let reference_config = config("reference");
    let reference = run::run(
        &reference_config,
        &mut learner(&reference_config),
        &mut RunOptions::new(fixtures()),
    )
    .unwrap();

    let config = config("resumed");
    let folder = out.path().join("resumed");
    let flag = Arc::new(AtomicBool::new(false));
    let mut interrupted = Interrupting {
        inner: learner(&config),
        stage: 3,
        flag: flag.clone(),
    };
    let mut opts = RunOptions::new(fixtures());
    opts.interrupt = flag;
    let err = run::run(&config, &mut interrupted, &mut opts).unwrap_err();
    assert!(
        matches!(err, RunError::Interrupted { stage: 3, .. }),
        "{err}"
    );
    assert_eq!(RunFolder::new(&folder).finished_stages(), 2);

    // A fresh process: a new learner that must load the stage-2 adapter and method state.
    let mut opts = RunOptions::new(fixtures());
    opts.resume = Some(folder.clone());
    let resumed_config = run::resume_config(&folder).unwrap();
    let resumed = run::run(&resumed_config, &mut learner(&resumed_config), &mut opts).unwrap();
    assert_eq!(resumed.results, reference.results);
    let artifacts = support::artifacts(&reference.folder);
    let resumed = support::artifacts(&folder);
    for ((name, want), (_, got)) in artifacts.iter().zip(&resumed) {
        assert!(
            got == want,
            "{what}: resumed {name} differs:\n{got}\nuninterrupted:\n{want}"
        );
    }
    assert_eq!(resumed.len(), artifacts.len());
    artifacts
}

#[test]
fn resume_after_an_interrupt_equals_the_uninterrupted_run() {
    let _alone = BACKEND_RNG
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Dropout masks come from the backend's random stream, seeded per stage: a resumed stage
    // must draw the same ones.
    assert_resume_is_exact("dropout", |config| config.training.lora_dropout = 0.1);
}

#[test]
fn every_method_resumes_exactly_and_changes_training() {
    let _alone = BACKEND_RNG
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let stage_losses = |artifacts: &[(String, String)]| -> Vec<Vec<f64>> {
        artifacts
            .iter()
            .filter(|(name, _)| name.starts_with("stage-"))
            .map(|(_, text)| {
                let record: inscl::artifact::StageRecord = serde_json::from_str(text).unwrap();
                record.loss.iter().map(|p| p.loss).collect()
            })
            .collect()
    };
    let sequential = stage_losses(&assert_resume_is_exact("seq", |_| {}));
    for &method in MethodConfig::NAMES.iter().filter(|&&m| m != "seq") {
        let losses = stage_losses(&assert_resume_is_exact(method, |config| {
            config.method = MethodConfig::named(method).unwrap();
            match &mut config.method {
                // Large enough that the penalties move the tiny model's losses.
                MethodConfig::Ewc(settings) => settings.lambda = 1e4,
                MethodConfig::Mas(settings) => settings.lambda = 1e4,
                MethodConfig::Si(settings) => settings.lambda = 1e4,
                MethodConfig::Tir(settings) => settings.lambda = 1e4,
                MethodConfig::Agem(settings) => settings.memory_per_task = 4,
                _ => {}
            }
        }));
        assert_ne!(
            losses[3], sequential[3],
            "{method}: stage 3 trained as plain fine-tuning"
        );
    }
    // Full fine-tuning: the state covers every weight.
    assert_resume_is_exact("ewc, full fine-tuning", |config| {
        config.training.adapter = trainer::config::Finetuning::Full;
        config.method = MethodConfig::Ewc(EwcConfig::default());
    });
}

#[test]
fn a_checkpoint_without_its_method_state_is_refused() {
    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let mut config = config("inscl", &model, out.path());
    config.method = MethodConfig::Ewc(EwcConfig::default());
    let run = run::run(
        &config,
        &mut learner(&config),
        &mut RunOptions::new(fixtures()),
    )
    .unwrap();
    let checkpoint = RunFolder::new(&run.folder).checkpoint(3);
    std::fs::remove_file(checkpoint.join("method.json")).unwrap();
    let err = learner(&config)
        .load_checkpoint(&checkpoint)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("method.json"),
        "the error names the missing file: {err}"
    );
}

#[test]
fn expansion_routes_every_instance_and_reuses_adapters_above_the_threshold() {
    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let run_with = |threshold: f64| {
        let mut config = config("inscl", &model, out.path());
        config.method = MethodConfig::Expand(ExpandConfig {
            expand_threshold: threshold,
        });
        config.output.name = Some(format!("expand-{threshold}"));
        let run = run::run(
            &config,
            &mut learner(&config),
            &mut RunOptions::new(fixtures()),
        )
        .unwrap();
        let experts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.folder.join("checkpoints/stage-03/method.json")).unwrap(),
        )
        .unwrap();
        let record: inscl::artifact::StageRecord = serde_json::from_str(
            &std::fs::read_to_string(run.folder.join("stages/stage-03.json")).unwrap(),
        )
        .unwrap();
        let accuracy: Vec<f64> = record
            .eval
            .iter()
            .map(|e| e.routing_accuracy.expect("expansion records its routing"))
            .collect();
        (experts.as_array().unwrap().len(), accuracy)
    };
    // Every task similar enough: one adapter trained on all three, every route right.
    let (experts, accuracy) = run_with(-1.0);
    assert_eq!(experts, 1);
    assert_eq!(accuracy, [100.0; 3]);
    // Nothing similar enough: one adapter per task. Each SuperNI task has one instruction, so
    // an instance's embedding is its task's key: every route is right again.
    let (experts, accuracy) = run_with(1.0);
    assert_eq!(experts, 3);
    assert_eq!(accuracy, [100.0; 3]);
}

#[test]
fn the_run_seed_initialises_the_adapter() {
    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let config = config("inscl", &model, out.path());
    let adapter = |seed: u64, name: &str| {
        let dir = out.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        tiny_llama::learner(&config, seed)
            .save_checkpoint(&dir)
            .unwrap();
        std::fs::read(dir.join("adapter_model.safetensors")).unwrap()
    };
    assert_eq!(adapter(0, "a"), adapter(0, "b"));
    assert_ne!(adapter(0, "a"), adapter(1, "c"));
}

#[test]
fn base_weights_stay_put_while_current_ones_train() {
    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let config = config("inscl", &model, out.path());
    let mut learner = learner(&config);
    let texts = vec![
        "Classify the review.".to_owned(),
        "Add the numbers.".to_owned(),
    ];
    let before = learner.embed(&texts, Weights::Base).unwrap();
    assert_eq!(before, learner.embed(&texts, Weights::Current).unwrap());
    let dataset = trainer::data::load(&config.data, &fixtures()).unwrap();
    let plan = StageTraining {
        stage: 1,
        task: dataset.tasks[0].name.clone(),
        seed: 3,
        config: config.training.clone(),
        task_distances: Vec::new(),
    };
    learner
        .train(&dataset.tasks[0].train, &plan, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(learner.embed(&texts, Weights::Base).unwrap(), before);
    assert_ne!(learner.embed(&texts, Weights::Current).unwrap(), before);
    // Chat replies and token counts come from the same checkpoint.
    let replies = learner.chat(&texts, 5).unwrap();
    assert_eq!(replies.len(), 2);
    let counts = learner.token_counts(&texts).unwrap();
    // The byte-level tokenizer: one token per byte.
    assert_eq!(counts, vec![texts[0].len(), texts[1].len()]);
}

/// The memory plan of a LoRA run on the tiny model: activation checkpointing shrinks the
/// activations, and a machine with less memory than the peak refuses the run, naming the
/// settings whose estimate fits (each of them checked against the same machine).
#[test]
fn the_memory_plan_refuses_a_run_that_does_not_fit_and_names_what_fits() {
    use trainer::memory_plan::{check_against, estimate};
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let config = config("inscl", &model, out.path());
    let plan = estimate(&config, &model).unwrap();
    assert!(plan.weights > 0 && plan.trainable > 0 && plan.optimizer == plan.trainable);
    let mut checkpointed = config.clone();
    checkpointed.training.checkpoint_layers = true;
    let smaller = estimate(&checkpointed, &model).unwrap();
    assert!(smaller.activations < plan.activations);
    assert_eq!(
        check_against(&config, &model, Some(plan.peak())).unwrap(),
        plan
    );
    assert_eq!(check_against(&config, &model, None).unwrap(), plan);
    let available = plan.peak() - 1;
    let err = check_against(&config, &model, Some(available))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "estimated peak memory {} exceeds",
            llama::memory::gib(plan.peak())
        )),
        "{err}"
    );
    let mut halved = config.clone();
    halved.training.batch_size /= 2;
    assert!(estimate(&halved, &model).unwrap().peak() <= available);
    assert!(
        err.contains(&format!(
            "--set training.batch_size={}",
            halved.training.batch_size
        )),
        "{err}"
    );
    let err = check_against(&config, &model, Some(1))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no batch size, precision or checkpointing setting fits"),
        "{err}"
    );
}

/// `training.pad_to_multiple_of` (what a GPU run does by default, here forced on the CPU): every
/// training batch of a stage goes to the backend in one of the width buckets, and the losses
/// are those of the exact shapes (the padding is masked).
#[test]
fn fixed_shapes_keep_a_stage_in_its_buckets_and_its_losses() {
    use llama::shapes::{FixedShapes, ShapeKind, ShapeLog};

    let _shared = BACKEND_RNG
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(out.path());
    let losses = |pad_to_multiple_of: Option<usize>, name: &str| {
        let mut config = config("none", &model, &out.path().join(name));
        config.data.first = Some(1);
        config.training.pad_to_multiple_of = pad_to_multiple_of;
        let outcome = run::run(
            &config,
            &mut learner(&config),
            &mut RunOptions::new(fixtures()),
        )
        .unwrap();
        let record: StageRecord =
            artifact::read(&RunFolder::new(&outcome.folder).stage(1)).unwrap();
        (config, record.loss)
    };
    let (_, exact) = losses(None, "exact");
    let log = ShapeLog::start();
    let (config, padded) = losses(Some(16), "padded");
    let shapes = FixedShapes { multiple: 16 };
    let t = &config.training;
    let training: Vec<Vec<usize>> = log
        .shapes(ShapeKind::Forward)
        .into_iter()
        .filter(|shape| shape[0] == t.batch_size && shape[1] > 1)
        .collect();
    assert!(!training.is_empty());
    assert!(
        training.len() <= shapes.width_buckets(t.max_length),
        "{training:?}"
    );
    for shape in log.shapes(ShapeKind::Forward) {
        assert_eq!(shape[2] % 16, 0, "attended width {shape:?}");
    }
    let rows = log.shapes(ShapeKind::ScoredRows);
    assert!(rows.len() <= shapes.scored_row_buckets(t.batch_size * t.max_length));
    assert_eq!(exact.len(), padded.len());
    for (a, b) in exact.iter().zip(&padded) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-4 * a.loss.abs(),
            "step {}: {} exact, {} padded",
            a.step,
            a.loss,
            b.loss
        );
    }
}
