//! The trainer's readers of user files on mutated real files (`shared/tests/support/fuzz.rs`): every
//! dataset format of `trainer::data::load` (benchmark task files and `orders.json`, SuperNI
//! task files, `categories.json`, Alpaca JSON and JSON Lines, described datasets'
//! `dataset_info.json` and data files) and the tag files of `trainer::tags::Tagger`. No panic,
//! bounded allocation, errors that name the file. `INSCL_FUZZ_CASES` sets the cases per reader.
#![cfg(not(target_arch = "wasm32"))]

#[path = "../../shared/tests/support/fuzz.rs"]
mod fuzz;

#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;

use std::path::{Path, PathBuf};

use trainer::config::{Config, DataConfig, DataFormat, TagSource};
use trainer::tags::Tagger;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// `[data]` of the embedded default with this source, all its tasks.
fn data_config(format: DataFormat, path: &str, order: Option<&str>) -> DataConfig {
    DataConfig {
        format,
        path: path.to_owned(),
        order: order.map(str::to_owned),
        tasks: Vec::new(),
        first: None,
        ..Config::embedded_default().data
    }
}

/// Fuzzes `data::load(config)` over the fixture folder `fixture` (copied to `data/` of a
/// fresh folder), mutating `target` (relative to `data/`) from the `seeds` (relative to the
/// fixture folder). Errors must name `data/` or a path in it, not necessarily `target`: a
/// task name that `orders.json` or `categories.json` gets wrong is reported as a task
/// missing from the folder (or its missing task file), without the file that named it.
fn fuzz_dataset(name: &str, fixture: &str, config: DataConfig, target: &str, seeds: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixtures().join(fixture), &data);
    let seeds = seeds
        .iter()
        .map(|s| std::fs::read(fixtures().join(fixture).join(s)).unwrap())
        .collect();
    fuzz::fuzz(name, seeds, &data.join(target), &data, |_| {
        trainer::data::load(&config, dir.path())
            .err()
            .map(|e| e.to_string())
    });
}

const CL_TASKS: [&str; 3] = [
    "task181_outcome_extraction",
    "task363_sst2_polarity_classification",
    "task875_emotion_classification",
];

#[test]
fn benchmark_task_files() {
    let seeds: Vec<String> = CL_TASKS
        .iter()
        .flat_map(|t| [format!("{t}/train.json"), format!("{t}/test.json")])
        .collect();
    fuzz_dataset(
        "benchmark task file",
        "superni/cl",
        data_config(DataFormat::Benchmark, "data", Some("order1")),
        "task181_outcome_extraction/train.json",
        &seeds.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

#[test]
fn benchmark_orders() {
    fuzz_dataset(
        "benchmark orders.json",
        "superni/cl",
        data_config(DataFormat::Benchmark, "data", Some("order1")),
        "orders.json",
        &["orders.json"],
    );
}

#[test]
fn superni_task_files() {
    let mut config = data_config(DataFormat::Superni, "data", None);
    config.tasks = vec![
        "task181_outcome_extraction".into(),
        "task092_check_prime_classification".into(),
    ];
    fuzz_dataset(
        "superni task file",
        "superni/inscl/tasks",
        config,
        "task181_outcome_extraction.json",
        &[
            "task181_outcome_extraction.json",
            "task092_check_prime_classification.json",
            "task132_dais_text_modification.json",
        ],
    );
}

#[test]
fn categories() {
    fuzz_dataset(
        "categories.json",
        "superni/inscl",
        data_config(
            DataFormat::Categories,
            "data/categories.json",
            Some("curriculum"),
        ),
        "categories.json",
        &["categories.json"],
    );
}

#[test]
fn described_dataset_info() {
    fuzz_dataset(
        "described dataset_info.json",
        "byo",
        data_config(DataFormat::Described, "data", Some("quick")),
        "dataset_info.json",
        &["dataset_info.json", "broken_info.json"],
    );
}

#[test]
fn described_data_files() {
    let config = data_config(DataFormat::Described, "data", Some("quick"));
    fuzz_dataset(
        "described JSON file",
        "byo",
        config.clone(),
        "reviews.json",
        &["reviews.json", "topics.json", "chat.json"],
    );
    fuzz_dataset(
        "described JSON Lines file",
        "byo",
        config,
        "trace.jsonl",
        &["trace.jsonl", "mixed.jsonl"],
    );
}

/// Alpaca records made from the benchmark fixture's first task: a JSON array, or JSON Lines.
fn alpaca_records(lines: bool) -> Vec<u8> {
    let task = fixtures()
        .join("superni/cl")
        .join(CL_TASKS[0])
        .join("train.json");
    let task: serde_json::Value = serde_json::from_slice(&std::fs::read(task).unwrap()).unwrap();
    let records: Vec<serde_json::Value> = task["Instances"]
        .as_array()
        .unwrap()
        .iter()
        .take(6)
        .map(|i| {
            serde_json::json!({
                "instruction": task["Definition"][0], "input": i["input"],
                "output": i["output"][0], "task": CL_TASKS[0],
            })
        })
        .collect();
    if lines {
        records
            .iter()
            .map(|r| format!("{r}\n"))
            .collect::<String>()
            .into_bytes()
    } else {
        serde_json::to_vec_pretty(&records).unwrap()
    }
}

#[test]
fn alpaca() {
    for (name, file, lines) in [
        ("alpaca JSON", "data.json", false),
        ("alpaca JSON Lines", "data.jsonl", true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = data_config(DataFormat::Alpaca, file, None);
        let seeds = vec![alpaca_records(lines)];
        let file = dir.path().join(file);
        fuzz::fuzz(name, seeds, &file, &file, |_| {
            trainer::data::load(&config, dir.path())
                .err()
                .map(|e| e.to_string())
        });
    }
}

#[test]
fn tag_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::embedded_default().strategy;
    config.tags.0 = vec![TagSource::File];
    config.tag_file = Some("tags.jsonl".into());
    let seed = concat!(
        "{\"instruction_id\": \"task181-q0\", \"tags\": [\"extraction\", \"medicine\"]}\n",
        "{\"text\": \"Classify the sentiment.\", \"tags\": [\"sentiment\"]}\n",
        "\n",
        "{\"instruction_id\": \"task875-q0\", \"text\": \"Name the emotion.\", \"tags\": []}\n",
    );
    fuzz::fuzz(
        "tag file",
        vec![seed.as_bytes().to_vec()],
        &dir.path().join("tags.jsonl"),
        &dir.path().join("tags.jsonl"),
        |_| {
            Tagger::new(&config, dir.path())
                .err()
                .map(|e| e.to_string())
        },
    );
}

/// What the fuzzer found: a task listed twice by `orders.json` is reported with the order and
/// the file that lists it.
#[test]
fn a_task_listed_twice_names_the_order_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&fixtures().join("superni/cl"), &data);
    let twice = serde_json::json!({"orders": {"order1": [CL_TASKS[0], CL_TASKS[1], CL_TASKS[0]]}});
    std::fs::write(data.join("orders.json"), twice.to_string()).unwrap();
    let config = data_config(DataFormat::Benchmark, "data", Some("order1"));
    let message = trainer::data::load(&config, dir.path())
        .unwrap_err()
        .to_string();
    let file = data.join("orders.json").display().to_string();
    assert!(
        message.contains(&format!("order \"order1\" of {file}")),
        "{message}"
    );
}
