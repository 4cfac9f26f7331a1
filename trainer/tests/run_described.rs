//! `trainer run` end to end on a brought benchmark: the dataset description of
//! trainer/fixtures/byo (JSON Lines named `.json`, a prompt-only task with derived instructions,
//! sharegpt conversations) through the tiny random LLaMA of `support/tiny_llama.rs`. The run
//! records every task's data report in `run.json` and the derived instructions in
//! `embeddings.json`; a bad record found when the data loads leaves no new run folder and an
//! earlier run's artifacts untouched, also on `--resume`.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use std::path::{Path, PathBuf};

use inscl::artifact::{self, DataReport, EmbeddingsFile, RunManifest};
use trainer::config::{Config, DataFormat};
use trainer::model::LlamaLearner;
use trainer::run::{self, RunError, RunFolder, RunOptions};

fn byo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/byo")
}

/// The `quick` order of the fixture description (3 tasks of 8 records, 6 train / 2 test each),
/// InsCL with α = 2, tiny sizes; paths relative to `root`, a copy of the fixture folder.
fn config(model: &Path, name: &str) -> Config {
    let mut config = Config::embedded_default();
    config.model.path = model.display().to_string();
    config.data.format = DataFormat::Described;
    config.data.path = ".".into();
    config.data.order = Some("quick".into());
    config.strategy.alpha = 2;
    config.training.batch_size = 4;
    config.training.max_length = 96;
    config.training.lr = 5e-3;
    config.eval.max_new_tokens = 4;
    config.output.dir = "runs".into();
    config.output.name = Some(name.into());
    config
}

fn learner(config: &Config) -> LlamaLearner {
    tiny_llama::learner(config, config.strategy.seed)
}

/// Every file under `folder`, with its bytes, sorted by path.
fn snapshot(folder: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn described_benchmark_runs_and_a_bad_record_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(byo()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, root.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let model = tiny_llama::tiny_model(root.path());
    let config = config(&model, "byo");
    let outcome = run::run(
        &config,
        &mut learner(&config),
        &mut RunOptions::new(root.path()),
    )
    .unwrap();
    assert_eq!(outcome.results.scores.stages(), 3);
    let folder = RunFolder::new(&outcome.folder);
    let manifest: RunManifest = artifact::read(&folder.manifest()).unwrap();
    assert_eq!(manifest.order, "quick");
    let tasks: Vec<(&str, usize, usize)> = manifest
        .tasks
        .iter()
        .map(|t| (t.name.as_str(), t.train_instances, t.test_instances))
        .collect();
    assert_eq!(tasks, [("reviews", 6, 2), ("trace", 6, 2), ("chat", 6, 2)]);
    for task in &manifest.tasks {
        assert_eq!(
            task.data_report,
            Some(DataReport::default()),
            "{}",
            task.name
        );
    }
    // The prompt-only task's derived instruction is its one instruction text.
    let embeddings: EmbeddingsFile = artifact::read(&folder.embeddings()).unwrap();
    let trace = &embeddings.tasks[1];
    assert_eq!(trace.name, "trace");
    let texts: Vec<&str> = trace.instructions.iter().map(|i| i.text.as_str()).collect();
    assert_eq!(texts, ["Answer the arithmetic question with a number."]);
    let before = snapshot(&outcome.folder);

    // The third task's file gains a record without its assistant turn.
    let chat = root.path().join("chat.json");
    let mut records: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&chat).unwrap()).unwrap();
    records[5]["messages"].as_array_mut().unwrap().pop();
    let text = serde_json::to_string_pretty(&records).unwrap();
    std::fs::write(&chat, &text).unwrap();
    // The line where the sixth record opens.
    let line = 1 + text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "  {")
        .nth(5)
        .unwrap()
        .0;
    let expected = format!(
        "chat.json:{line}: field [5].messages: expected user and assistant turns ending with an \
         assistant turn"
    );

    let fresh = self::config(&model, "byo-again");
    let err = run::run(
        &fresh,
        &mut learner(&fresh),
        &mut RunOptions::new(root.path()),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::Data(_)), "{err}");
    assert!(err.to_string().contains(&expected), "{err}");
    assert!(!root.path().join("runs/byo-again").exists());

    // Resuming the finished run reads the same data first: nothing of it changes.
    let mut options = RunOptions::new(root.path());
    options.resume = Some(outcome.folder.clone());
    let resumed = run::resume_config(&outcome.folder).unwrap();
    let err = run::run(&resumed, &mut learner(&resumed), &mut options).unwrap_err();
    assert!(err.to_string().contains(&expected), "{err}");
    assert_eq!(snapshot(&outcome.folder), before);
}
