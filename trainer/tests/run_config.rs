//! `trainer run` configuration: the embedded default, file layering, `--set` overrides, and
//! errors naming the field and value.
#![cfg(not(target_arch = "wasm32"))]

use trainer::config::{
    Config, ConfigError, DataFormat, EmbeddingSource, Finetuning, MethodConfig, RunStrategy,
};
use trainer::method::ewc::{EwcConfig, EwcMode};

fn set(overrides: &[&str]) -> Result<Config, ConfigError> {
    let owned: Vec<String> = overrides
        .iter()
        .map(std::string::ToString::to_string)
        .collect();
    Config::load(None, &owned)
}

#[test]
fn embedded_default_is_the_small_cpu_run() {
    let config = Config::embedded_default();
    assert_eq!(config.model.path, "assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(config.data.format, DataFormat::Categories);
    assert_eq!(
        (
            config.data.path.as_str(),
            config.data.order.as_deref(),
            config.data.tasks.as_slice(),
            config.data.first
        ),
        (
            "data/superni-inscl16/categories.json",
            None,
            [
                "Classification",
                "Detection",
                "Sentiment_Analysis",
                "Rewriting"
            ]
            .map(String::from)
            .as_slice(),
            None
        )
    );
    assert_eq!(
        (
            config.data.max_train,
            config.data.max_test,
            config.training.lr
        ),
        (Some(128), Some(24), 1e-3)
    );
    assert_eq!(config.embedding.source, EmbeddingSource::Base);
    assert!(config.eval.budget_from_data);
    assert_eq!(config.strategy.name.to_string(), "inscl");
    assert_eq!(config.strategy.tags.to_string(), "metadata+keyphrase");
    assert_eq!(
        (
            config.training.adapter,
            config.training.epochs,
            config.training.max_length,
            config.training.lora_rank
        ),
        (Finetuning::Lora, 1, 192, 8)
    );
    assert_eq!(config.run_name(), "inscl-a16-s0");
    // Round trip through run.json.
    assert_eq!(Config::from_json(&config.to_json()).unwrap(), config);
}

#[test]
fn shipped_cl15_config_runs_superni_cl15() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cl15.toml");
    let config = Config::load(Some(&file), &[]).unwrap();
    assert_eq!(config.data.format, DataFormat::Benchmark);
    assert_eq!(
        (config.data.path.as_str(), config.data.order.as_deref()),
        ("data/superni-cl15", Some("order1"))
    );
    assert_eq!(
        (
            config.data.first,
            config.data.max_train,
            config.data.max_test
        ),
        (Some(4), Some(80), Some(24))
    );
    assert_eq!(config.run_name(), "inscl-a12-s0");
}

#[test]
fn llm_tags_merge_near_duplicates_unless_told_otherwise() {
    let plain = set(&[]).unwrap().strategy;
    assert_eq!(plain.effective_tag_normalizer().merge_threshold, None);
    let llm = set(&["strategy.tags=\"llm\""]).unwrap().strategy;
    assert_eq!(
        llm.effective_tag_normalizer().merge_threshold,
        Some(trainer::config::LLM_TAG_MERGE_THRESHOLD)
    );
    let explicit = set(&[
        "strategy.tags=\"llm+metadata\"",
        "strategy.tag_normalizer.merge_threshold=0.95",
    ])
    .unwrap()
    .strategy;
    assert_eq!(
        explicit.effective_tag_normalizer().merge_threshold,
        Some(0.95)
    );
}

#[test]
fn embedding_and_budget_settings_are_checked() {
    let err = set(&["embedding.source=file"]).unwrap_err().to_string();
    assert!(err.contains("embedding.file"), "{err}");
    let err = set(&["embedding.source=\"previous\""])
        .unwrap_err()
        .to_string();
    assert!(err.contains("previous"), "{err}");
    let err = set(&["eval.budget_quantile=0"]).unwrap_err().to_string();
    assert!(err.contains("eval.budget_quantile = 0"), "{err}");
    let err = set(&["tagger.max_new_tokens=2"]).unwrap_err().to_string();
    assert!(err.contains("tagger.max_new_tokens = 2"), "{err}");
    let config = set(&["embedding.source=current", "embedding.layer=3"]).unwrap();
    assert_eq!(
        (config.embedding.source, config.embedding.layer),
        (EmbeddingSource::Current, Some(3))
    );
}

#[test]
fn overrides_and_file_layering() {
    let config = set(&[
        "training.lr=1e-4",
        "strategy.name=random",
        "data.tasks=[\"a\", \"b\"]",
        "strategy.similarity.solver={kind = \"sinkhorn\", epsilon = 0.1}",
        "output.name=x",
    ])
    .unwrap();
    assert_eq!(config.training.lr, 1e-4);
    assert_eq!(
        config.strategy.name,
        RunStrategy::Sequential(inscl::replay::Strategy::Random)
    );
    assert_eq!(config.data.tasks, ["a", "b"]);
    assert_eq!(
        config.strategy.similarity.solver,
        inscl::similarity::Solver::Sinkhorn { epsilon: 0.1 }
    );
    assert_eq!(config.run_name(), "x");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mine.toml");
    std::fs::write(
        &file,
        "[training]\nepochs = 2\n[strategy]\nname = \"multitask\"\n",
    )
    .unwrap();
    let config = Config::load(Some(&file), &["training.epochs=3".into()]).unwrap();
    assert_eq!(config.training.epochs, 3, "flags override the file");
    assert_eq!(config.strategy.name, RunStrategy::Multitask);
    assert_eq!(
        config.training.batch_size,
        Config::embedded_default().training.batch_size
    );
}

#[test]
fn method_section_selects_a_continual_learning_method() {
    let config = Config::embedded_default();
    assert_eq!(
        config.method,
        MethodConfig::default(),
        "default.toml and Default agree"
    );
    assert_eq!(config.method.name(), "seq");
    assert_eq!(
        config.run_name(),
        "inscl-a16-s0",
        "seq keeps the old run names"
    );
    let config = set(&[
        "method.name=ewc",
        "method.lambda=100",
        "method.ewc_mode=online",
    ])
    .unwrap();
    assert_eq!(
        config.method,
        MethodConfig::Ewc(EwcConfig {
            lambda: 100.0,
            ewc_mode: EwcMode::Online,
            ..EwcConfig::default()
        })
    );
    assert_eq!(config.run_name(), "inscl-ewc-a16-s0");
    let err = set(&["method.name=gem"]).unwrap_err().to_string();
    assert!(
        err.contains("unknown variant `gem`") && err.contains("`agem`"),
        "{err}"
    );
    let err = set(&["method.ewc_decay=1.5"]).unwrap_err().to_string();
    assert!(
        err.contains("method.ewc_decay = 1.5: must be in [0, 1]"),
        "{err}"
    );
    let err = set(&["method.name=tir", "strategy.similarity.cost=euclidean"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("needs strategy.similarity.cost = \"cosine\""),
        "{err}"
    );
    let err = set(&["method.name=si", "strategy.name=single"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("use method.name = \"seq\""), "{err}");
    let err = set(&["method.name=olora", "training.method=full"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs training.method = \"lora\""), "{err}");
    let err = set(&["method.temperature=0"]).unwrap_err().to_string();
    assert!(
        err.contains("method.temperature = 0: must be positive"),
        "{err}"
    );
    // run.json files from before methods existed have no `method` section: plain fine-tuning.
    let mut old = Config::embedded_default().to_json();
    old.as_object_mut().unwrap().remove("method");
    assert_eq!(
        Config::from_json(&old).unwrap().method,
        MethodConfig::default()
    );
}

#[test]
fn unknown_fields_are_named_with_their_path() {
    let err = set(&["strategy.similarity.kost=\"cosine\""])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown config field `strategy.similarity.kost`");
    let err = set(&["evaluation.stem=true"]).unwrap_err().to_string();
    assert!(err.contains("evaluation"), "{err}");
    let err = set(&["training.lrr=1"]).unwrap_err().to_string();
    assert!(err.contains("unknown field `lrr`"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[model]\npath = 3\n").unwrap();
    let err = Config::load(Some(&file), &[]).unwrap_err().to_string();
    assert!(
        err.contains("invalid type: integer `3`, expected a string"),
        "{err}"
    );
    std::fs::write(&file, "[model\n").unwrap();
    let err = Config::load(Some(&file), &[]).unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:", file.display())), "{err}");
}

#[test]
fn invalid_values_name_field_and_value() {
    let cases = [
        (
            "training.lr=-1",
            "invalid config value training.lr = -1: must be positive and finite",
        ),
        (
            "training.epochs=0",
            "invalid config value training.epochs = 0: must be at least 1",
        ),
        (
            "training.lora_targets=[\"q\", \"qq\"]",
            "invalid config value training.lora_targets = qq: expected q, k, v, o, gate, up or down",
        ),
        (
            "data.held_out=1.0",
            "invalid config value data.held_out = 1: must be in [0, 1)",
        ),
        (
            "output.keep_checkpoints=0",
            "invalid config value output.keep_checkpoints = 0: must be at least 1 (resume needs the last checkpoint)",
        ),
        (
            "output.name=\"a/b\"",
            "invalid config value output.name = a/b: must be a plain folder name",
        ),
        (
            "model.device=tpu",
            "invalid config value model.device = tpu: expected auto, gpu, cuda, wgpu or cpu",
        ),
        (
            "strategy.tags=file",
            "invalid config value strategy.tag_file = (missing): the file tagger needs strategy.tag_file",
        ),
    ];
    for (arg, expected) in cases {
        assert_eq!(set(&[arg]).unwrap_err().to_string(), expected, "{arg}");
    }
    let err = set(&["strategy.name=greedy"]).unwrap_err().to_string();
    assert!(err.contains("unknown strategy \"greedy\"; expected one of: none, random, dynamic, insinfo, inscl, multitask, single"), "{err}");
    let err = set(&["strategy.tags=metadata+gpt"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown tagger \"gpt\""), "{err}");
    let err = set(&["training"]).unwrap_err().to_string();
    assert_eq!(
        err,
        "override \"training\" is not of the form section.field=value"
    );
}

#[test]
fn the_method_flag_sets_method_name() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["run", "--method", "gem", "--quiet"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown variant `gem`") && stderr.contains("`agem`"),
        "{stderr}"
    );
}

#[test]
fn base_precision_is_recorded_and_checked() {
    use llama::io::stored::BasePrecision;
    let config = Config::embedded_default();
    assert_eq!(config.model.base_precision, BasePrecision::F32);
    assert!(!config.training.checkpoint_layers);
    assert_eq!(
        config.to_json()["model"]["base_precision"],
        serde_json::json!("f32")
    );
    let bf16 = set(&[
        "model.base_precision=\"bf16\"",
        "training.checkpoint_layers=true",
    ])
    .unwrap();
    assert_eq!(bf16.model.base_precision, BasePrecision::Bf16);
    assert!(bf16.training.checkpoint_layers);
    assert_eq!(Config::from_json(&bf16.to_json()).unwrap(), bf16);
    // run.json files from before the field existed dequantised every weight: f32.
    let mut old = Config::embedded_default().to_json();
    old["model"]
        .as_object_mut()
        .unwrap()
        .remove("base_precision");
    assert_eq!(
        Config::from_json(&old).unwrap().model.base_precision,
        BasePrecision::F32
    );
    let err = set(&["model.base_precision=\"f8\""])
        .unwrap_err()
        .to_string();
    assert!(err.contains("f8"), "{err}");
    let err = set(&["model.base_precision=\"bf16\"", "training.method=\"full\""])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("model.base_precision = bf16")
            && err.contains("full fine-tuning trains f32 weights"),
        "{err}"
    );
}

/// Keys older configurations wrote still read: `strategy.seed` (deprecated, now `[run] seed`)
/// and `training.method` (now `training.adapter`), as an override, in a file and in the
/// configuration a `run.json` stores.
#[test]
fn renamed_keys_still_read() {
    let config = set(&["strategy.seed=7", "training.method=\"full\""]).unwrap();
    assert_eq!(
        (config.run.seed, config.training.adapter),
        (7, Finetuning::Full)
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("old.toml");
    std::fs::write(
        &file,
        "[strategy]\nseed = 3\n\n[training]\nmethod = \"full\"\n",
    )
    .unwrap();
    let config = Config::load(Some(&file), &[]).unwrap();
    assert_eq!(
        (config.run.seed, config.training.adapter),
        (3, Finetuning::Full)
    );
    // The new names are what a run records.
    let json = config.to_json();
    assert_eq!(json["run"]["seed"], 3);
    assert_eq!(json["training"]["adapter"], "full");
    assert!(json["strategy"].get("seed").is_none() && json["training"].get("method").is_none());
}

/// The committed example run, recorded before the renames, reads with its seed where it was.
#[test]
fn a_run_json_from_before_the_renames_reads() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/example-run/run.json");
    let manifest: inscl::artifact::RunManifest = inscl::artifact::read(&path).unwrap();
    assert!(
        manifest.config["strategy"].get("seed").is_some(),
        "an old run.json"
    );
    let config = Config::from_json(&manifest.config).unwrap();
    assert_eq!(config.run.seed, manifest.replay.seed);
    assert_eq!(config.training.adapter, Finetuning::Lora);
    assert_eq!(config.run_name(), manifest.name);
}
