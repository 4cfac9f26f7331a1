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
use tiny_llama::tiny_model;
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
    config.data.tasks.clear();
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
    tiny_llama::learner(config, config.run.seed)
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

/// `trainer run` of a brought alpaca file, as a new user would start it (issue 28): no order
/// named, stderr a pipe.
#[test]
fn an_alpaca_file_runs_without_an_order_and_a_pipe_shows_progress() {
    let root = tempfile::tempdir().unwrap();
    let model = tiny_model(root.path());
    let records: String = ["math", "greet"]
        .iter()
        .flat_map(|task| (0..5).map(move |i| (task, i)))
        .map(|(task, i)| {
            format!(
                "{}\n",
                serde_json::json!({"instruction": format!("Do {task}."), "input": format!("{i}"),
                    "output": format!("{task} {i}"), "task": task})
            )
        })
        .collect();
    std::fs::write(root.path().join("my.json"), records).unwrap();
    let trainer = |data_path: &str, model_path: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
        command
            .current_dir(root.path())
            .args(["run", "--name", "mine"]);
        for set in [
            "data.format=alpaca".to_owned(),
            format!("data.path={data_path:?}"),
            format!("model.path={model_path:?}"),
            "training.batch_size=4".to_owned(),
            "training.max_length=64".to_owned(),
            "eval.max_new_tokens=4".to_owned(),
            "strategy.alpha=2".to_owned(),
        ] {
            command.arg("--set").arg(set);
        }
        let output = command.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let model = model.display().to_string();

    // The data is checked before the model loads: a missing file is reported, not the model.
    let (ok, stderr) = trainer("missing.json", "no-such-model");
    assert!(
        !ok && stderr.contains("missing.json does not exist"),
        "{stderr}"
    );

    let (ok, stderr) = trainer("my.json", &model);
    assert!(ok, "{stderr}");
    for expected in [
        "comes from the embedded default and ./my.json has no task \"Classification\"; the tasks run in file order",
        "stage 1/2 math: training on",
        "stage 1/2 math: step 1/1, loss ",
        "stage 2/2 greet: eval math: ROUGE-L ",
        "stage 2/2 finished in ",
        "run ./runs/mine finished: AP ",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in\n{stderr}");
    }
    // run.json records the order the run took, so --resume takes it too.
    let manifest: RunManifest = artifact::read(&root.path().join("runs/mine/run.json")).unwrap();
    assert_eq!(manifest.order, "file");
    assert_eq!(manifest.config["data"]["order"], "file");
}
