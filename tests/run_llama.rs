//! `trainer run` end to end with the real model layer on a tiny random LLaMA (HF folder made
//! here: d = 32, 2 layers, 4 query / 2 key-value heads, the byte-level tokenizer of
//! tests/fixtures/tiny_llama) over 3 real SuperNI tasks: every strategy runs and writes valid
//! artifacts, InsCL replays other quotas than random, and a run interrupted mid-stage and
//! resumed equals an uninterrupted one.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use inscl::artifact::{self, RunManifest, RunResults, StageRecord};
use llama::host::{HostTensor, HostTensors};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use trainer::config::Config;
use trainer::learner::{Example, Learner, LossPoint, StepReport, TrainPlan};
use trainer::model::{DeviceChoice, LlamaLearner};
use trainer::run::{self, RunError, RunFolder, RunOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// A random HF-format LLaMA folder (weights N(0, 0.02²), seeded) with the byte tokenizer.
fn tiny_model(dir: &Path) -> PathBuf {
    let (v, d, ff, layers, heads, kv) = (259usize, 32usize, 64usize, 2usize, 4usize, 2usize);
    let hd = d / heads;
    let config = serde_json::json!({
        "vocab_size": v, "hidden_size": d, "intermediate_size": ff,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": true, "bos_token_id": 257, "eos_token_id": 258
    });
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut random = |shape: &[usize]| HostTensor {
        shape: shape.to_vec(),
        data: (0..shape.iter().product::<usize>())
            .map(|_| (rng.random::<f32>() - 0.5) * 0.07)
            .collect(),
    };
    let ones = |n: usize| HostTensor {
        shape: vec![n],
        data: vec![1.0; n],
    };
    let mut t = HostTensors::new();
    t.insert("model.embed_tokens.weight".into(), random(&[v, d]));
    t.insert("model.norm.weight".into(), ones(d));
    for i in 0..layers {
        let p = format!("model.layers.{i}.");
        for (name, shape) in [
            ("self_attn.q_proj.weight", [heads * hd, d]),
            ("self_attn.k_proj.weight", [kv * hd, d]),
            ("self_attn.v_proj.weight", [kv * hd, d]),
            ("self_attn.o_proj.weight", [d, heads * hd]),
            ("mlp.gate_proj.weight", [ff, d]),
            ("mlp.up_proj.weight", [ff, d]),
            ("mlp.down_proj.weight", [d, ff]),
        ] {
            t.insert(format!("{p}{name}"), random(&shape));
        }
        t.insert(format!("{p}input_layernorm.weight"), ones(d));
        t.insert(format!("{p}post_attention_layernorm.weight"), ones(d));
    }
    let model = dir.join("tiny-llama");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    llama::safetensors::save_host_tensors(&model.join("model.safetensors"), &t).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("tiny_llama").join(f), model.join(f)).unwrap();
    }
    model
}

/// Three real SuperNI-CL15 tasks (12 train / 6 test each), α = 4, small sizes.
fn config(strategy: &str, model: &Path, out: &Path) -> Config {
    let mut config = Config::embedded_default();
    config.model.path = model.display().to_string();
    config.data.path = "superni/cl".into();
    config.data.order = Some("order1".into());
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
    LlamaLearner::open(
        Path::new(&config.model.path),
        DeviceChoice::Cpu,
        &config.training,
        config.model.embedding_layer,
        config.eval.batch_size,
    )
    .unwrap()
}

#[test]
fn every_strategy_runs_on_a_tiny_llama_and_writes_valid_artifacts() {
    let out = tempfile::tempdir().unwrap();
    let model = tiny_model(out.path());
    for strategy in [
        "none",
        "random",
        "dynamic",
        "insinfo",
        "inscl",
        "multitask",
        "single",
    ] {
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
    let out = tempfile::tempdir().unwrap();
    let model = tiny_model(out.path());
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

impl Learner for Interrupting {
    fn embed(&mut self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        self.inner.embed(texts)
    }
    fn train(
        &mut self,
        examples: &[Example],
        plan: &TrainPlan,
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

#[test]
fn resume_after_an_interrupt_equals_the_uninterrupted_run() {
    let out = tempfile::tempdir().unwrap();
    let model = tiny_model(out.path());
    let mut reference_config = config("inscl", &model, out.path());
    reference_config.output.name = Some("reference".into());
    let reference = run::run(
        &reference_config,
        &mut learner(&reference_config),
        &mut RunOptions::new(fixtures()),
    )
    .unwrap();

    let mut config = config("inscl", &model, out.path());
    config.output.name = Some("resumed".into());
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

    // A fresh process: a new learner that must load the stage-2 adapter.
    let mut opts = RunOptions::new(fixtures());
    opts.resume = Some(folder.clone());
    let resumed_config = run::resume_config(&folder).unwrap();
    let resumed = run::run(&resumed_config, &mut learner(&resumed_config), &mut opts).unwrap();
    assert_eq!(resumed.results, reference.results);
    assert_eq!(
        support::artifacts(&folder),
        support::artifacts(&reference.folder)
    );
}
