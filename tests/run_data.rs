//! `trainer run` data layer on real SuperNI files (trimmed copies in tests/fixtures/superni):
//! benchmark folders, category files, single task files, Alpaca data, schema drift, orders,
//! splits, caps and the instruction taggers.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};

use serde_json::json;
use trainer::config::{Config, DataConfig, DataFormat};
use trainer::data::superni::SuperNiTask;
use trainer::data::{self, DataError, held_out_split, instruction_id};
use trainer::tags::{Tagger, keyphrases, metadata_tags};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/superni")
}

fn data_config(format: DataFormat, path: &str) -> DataConfig {
    DataConfig {
        format,
        path: path.to_owned(),
        order: None,
        tasks: Vec::new(),
        first: None,
        max_train: None,
        max_test: None,
        held_out: 0.25,
        split_seed: 0,
    }
}

#[test]
fn benchmark_folder_with_named_order_and_caps() {
    let mut config = data_config(DataFormat::Benchmark, "cl");
    config.order = Some("reversed".into());
    config.first = Some(2);
    config.max_train = Some(10);
    let dataset = data::load(&config, &fixtures()).unwrap();
    assert_eq!(dataset.order, "reversed");
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "task875_emotion_classification",
            "task181_outcome_extraction"
        ]
    );
    let emotion = &dataset.tasks[0];
    assert_eq!((emotion.train.len(), emotion.test.len()), (10, 6));
    // The cap keeps a subset in data order: ids are a subsequence of the file's.
    let file = SuperNiTask::read(
        &fixtures().join("cl/task875_emotion_classification/train.json"),
        "x",
    )
    .unwrap();
    let all: Vec<&str> = file.instances.iter().map(|i| i.id.as_str()).collect();
    let mut positions = emotion
        .train
        .iter()
        .map(|e| all.iter().position(|id| *id == e.id).unwrap());
    let mut last = positions.next().unwrap();
    for p in positions {
        assert!(p > last);
        last = p;
    }
    assert_eq!(emotion.instruction_groups().len(), 1);
    assert!(emotion.train[0].instruction.starts_with("In this task"));
}

#[test]
fn benchmark_metadata_keeps_drifted_string_fields() {
    let mut config = data_config(DataFormat::Benchmark, "cl");
    config.tasks = vec!["task363_sst2_polarity_classification".into()];
    let dataset = data::load(&config, &fixtures()).unwrap();
    assert_eq!(dataset.order, "custom");
    let task = &dataset.tasks[0];
    assert_eq!((task.train.len(), task.test.len()), (12, 6));
    let definition = &task.train[0].instruction;
    // `Categories` and `Domains` are plain strings in this real file.
    assert_eq!(
        task.metadata[definition],
        ["Basic Sentiment Analysis", "Reviews -> Movies"]
    );
    assert_eq!(
        metadata_tags(&task.metadata[definition]),
        ["Basic Sentiment Analysis", "Reviews", "Movies"]
    );
    // `output` is a plain string in this real file, not a list.
    assert!(
        task.train
            .iter()
            .all(|e| e.output == ["POS"] || e.output == ["NEG"])
    );
}

#[test]
fn unknown_order_and_task_are_named() {
    let mut config = data_config(DataFormat::Benchmark, "cl");
    config.order = Some("order9".into());
    let err = data::load(&config, &fixtures()).unwrap_err().to_string();
    assert!(
        err.contains("order9") && err.contains("order1, reversed"),
        "{err}"
    );
    config.order = None;
    config.tasks = vec![
        "task363_sst2_polarity_classification".into(),
        "task999_nope".into(),
    ];
    let err = data::load(&config, &fixtures()).unwrap_err().to_string();
    assert!(err.contains("task999_nope"), "{err}");
    config.tasks = vec![
        "task181_outcome_extraction".into(),
        "task181_outcome_extraction".into(),
    ];
    assert!(matches!(
        data::load(&config, &fixtures()),
        Err(DataError::DuplicateTask { .. })
    ));
    let missing = data_config(DataFormat::Benchmark, "no-such-folder");
    let err = data::load(&missing, &fixtures()).unwrap_err().to_string();
    assert!(err.contains("scripts/fetch-data"), "{err}");
}

#[test]
fn category_file_groups_tasks_and_splits_each_one() {
    let mut config = data_config(DataFormat::Categories, "inscl/categories.json");
    config.order = Some("curriculum".into());
    let dataset = data::load(&config, &fixtures()).unwrap();
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["Extraction", "Rewriting", "Mathematics"]);
    for task in &dataset.tasks {
        // Two SuperNI tasks of 8 instances, 25% (2) of each held out.
        assert_eq!(
            (task.train.len(), task.test.len()),
            (12, 4),
            "{}",
            task.name
        );
        let groups = task.instruction_groups();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups.iter().map(|g| g.instances.len()).sum::<usize>(), 12);
        for group in &groups {
            assert_eq!(group.id, instruction_id(&group.text));
            assert!(task.test.iter().any(|e| e.instruction == group.text));
        }
        // Older files have no instance ids: `<superni task>-<index>`.
        assert!(task.train[0].id.starts_with("task"), "{}", task.train[0].id);
    }
    // Rewriting's files carry `Categories` as a plain string.
    let rewriting = &dataset.tasks[1];
    assert!(
        rewriting
            .metadata
            .values()
            .all(|v| v == &["Text Modification".to_owned()])
    );
    // Extraction's task181 has no `Categories` at all.
    assert!(dataset.tasks[0].metadata.values().any(Vec::is_empty));

    let again = data::load(&config, &fixtures()).unwrap();
    assert_eq!(again, dataset);
    config.split_seed = 1;
    let other = data::load(&config, &fixtures()).unwrap();
    assert_ne!(other.tasks[0].test, dataset.tasks[0].test);
}

#[test]
fn single_task_files_with_held_out_fraction() {
    let mut config = data_config(DataFormat::Superni, "inscl/tasks");
    config.tasks = vec![
        "task092_check_prime_classification".into(),
        "task132_dais_text_modification".into(),
    ];
    config.held_out = 0.2;
    let dataset = data::load(&config, &fixtures()).unwrap();
    for task in &dataset.tasks {
        // round(0.2 × 8) = 2 held out.
        assert_eq!((task.train.len(), task.test.len()), (6, 2));
    }
    let config = data_config(DataFormat::Superni, "inscl/tasks");
    let err = data::load(&config, &fixtures()).unwrap_err().to_string();
    assert!(err.contains("needs data.tasks or data.order"), "{err}");
}

#[test]
fn held_out_split_sizes_and_order() {
    let examples: Vec<_> = (0..10)
        .map(|i| data::Example {
            task: "t".into(),
            id: format!("{i}"),
            instruction: "q".into(),
            input: String::new(),
            output: vec!["o".into()],
        })
        .collect();
    let (train, test) = held_out_split(examples.clone(), 0.2, 7, "t");
    assert_eq!((train.len(), test.len()), (8, 2));
    let ids = |v: &[data::Example]| {
        v.iter()
            .map(|e| e.id.parse::<u32>().unwrap())
            .collect::<Vec<_>>()
    };
    let mut joined = ids(&train);
    joined.extend(ids(&test));
    joined.sort();
    assert_eq!(joined, (0..10).collect::<Vec<_>>());
    assert!(ids(&test).windows(2).all(|w| w[0] < w[1]));
    // A tiny task keeps at least one instance on each side.
    let (train, test) = held_out_split(examples[..2].to_vec(), 0.2, 7, "t");
    assert_eq!((train.len(), test.len()), (1, 1));
}

fn real_task() -> serde_json::Value {
    let path = fixtures().join("cl/task363_sst2_polarity_classification/test.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn drift_that_is_accepted() {
    let mut value = real_task();
    value["Definition"] = json!("A plain-string definition.");
    value["Categories"] = json!(["Sentiment Analysis"]);
    value.as_object_mut().unwrap().remove("Domains");
    value["Instances"][0]["output"] = json!("POSITIVE");
    value["Instances"][1].as_object_mut().unwrap().remove("id");
    value["Instances"][2]["output"] = json!(["", "  "]);
    let task = SuperNiTask::parse("t.json", "sst2", &value).unwrap();
    assert_eq!(task.definition, "A plain-string definition.");
    assert_eq!(task.metadata, ["Sentiment Analysis"]);
    assert_eq!(task.instances[0].output, ["POSITIVE"]);
    assert_eq!(task.instances[1].id, "sst2-1");
    assert_eq!((task.instances.len(), task.skipped), (5, 1));

    value["Definition"] = json!(["First part.", "Second part."]);
    let task = SuperNiTask::parse("t.json", "sst2", &value).unwrap();
    assert_eq!(task.definition, "First part.\n\nSecond part.");
}

#[test]
fn drift_that_is_rejected_names_file_field_and_value() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        (
            "Definition",
            json!(42),
            "field Definition: expected a string or list of strings, got 42",
        ),
        (
            "Definition",
            json!("   "),
            "field Definition: empty, got \"   \"",
        ),
        (
            "Categories",
            json!({"a": 1}),
            "field Categories: expected a string or list of strings, got {\"a\":1}",
        ),
        (
            "Instances",
            json!("none"),
            "field Instances: expected a list, got \"none\"",
        ),
        (
            "Instances",
            json!([{"input": "x", "output": [3]}]),
            "field Instances[0].output: expected a string or list of strings, got [3]",
        ),
    ];
    for (field, bad, expected) in cases {
        let mut value = real_task();
        value[field] = bad;
        let err = SuperNiTask::parse("cl/t/test.json", "t", &value)
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("cl/t/test.json: {expected}"));
    }
    let mut value = real_task();
    value.as_object_mut().unwrap().remove("Definition");
    let err = SuperNiTask::parse("f.json", "t", &value)
        .unwrap_err()
        .to_string();
    assert!(err.contains("field Definition: missing"), "{err}");
}

#[test]
fn task_without_usable_instances_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut value = real_task();
    value["Instances"] = json!([]);
    std::fs::write(dir.path().join("empty_task.json"), value.to_string()).unwrap();
    let mut config = data_config(DataFormat::Superni, ".");
    config.tasks = vec!["empty_task".into()];
    let err = data::load(&config, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("task \"empty_task\" has no usable train instances"),
        "{err}"
    );
}

#[test]
fn alpaca_json_and_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let records = json!([
        {"instruction": "Add the numbers.", "input": "1 2", "output": "3", "task": "math"},
        {"instruction": "Add the numbers.", "input": "2 2", "output": "4", "task": "math"},
        {"instruction": "Add the numbers.", "input": "5 2", "output": "7", "task": "math"},
        {"instruction": "Say hi.", "output": ["hi", "hello"]},
        {"instruction": "Say hi.", "input": null, "output": "hey"},
    ]);
    let file = dir.path().join("mine.json");
    std::fs::write(&file, records.to_string()).unwrap();
    let mut config = data_config(DataFormat::Alpaca, "mine.json");
    config.held_out = 0.34;
    let dataset = data::load(&config, dir.path()).unwrap();
    assert_eq!(dataset.order, "file");
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["math", "mine"]);
    assert_eq!(
        (dataset.tasks[0].train.len(), dataset.tasks[0].test.len()),
        (2, 1)
    );
    assert_eq!(
        (dataset.tasks[1].train.len(), dataset.tasks[1].test.len()),
        (1, 1)
    );

    let lines = "{\"instruction\": \"Echo.\", \"input\": \"a\", \"output\": \"a\"}\n\n{\"instruction\": \"Echo.\", \"input\": \"b\", \"output\": \"b\"}\n";
    std::fs::write(dir.path().join("echo.jsonl"), lines).unwrap();
    let dataset = data::load(&data_config(DataFormat::Alpaca, "echo.jsonl"), dir.path()).unwrap();
    assert_eq!(dataset.tasks[0].name, "echo");
    assert_eq!(
        dataset.tasks[0].train.len() + dataset.tasks[0].test.len(),
        2
    );

    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"instruction\": \"x\", \"output\": \"y\"}\n{\"instruction\": \"x\"}\n",
    )
    .unwrap();
    let err = data::load(&data_config(DataFormat::Alpaca, "bad.jsonl"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl") && err.contains("line 2.output: missing"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("bad.json"),
        "[{\"instruction\": 5, \"output\": \"y\"}]",
    )
    .unwrap();
    let err = data::load(&data_config(DataFormat::Alpaca, "bad.json"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[0].instruction: expected a string, got 5"),
        "{err}"
    );
}

#[test]
fn keyphrases_of_every_fixture_definition() {
    let mut config = data_config(DataFormat::Categories, "inscl/categories.json");
    config.order = Some("curriculum".into());
    let mut texts: Vec<String> = data::load(&config, &fixtures())
        .unwrap()
        .tasks
        .iter()
        .flat_map(|t| t.instruction_groups().into_iter().map(|g| g.text))
        .collect();
    texts.push(real_task()["Definition"][0].as_str().unwrap().to_owned());
    for text in &texts {
        let phrases = keyphrases(text, 5);
        assert!((1..=5).contains(&phrases.len()), "{text}: {phrases:?}");
        for phrase in &phrases {
            assert_eq!(phrase, &phrase.to_lowercase());
            // YAKE keyphrases are n-grams of the text.
            let first = phrase.split(' ').next().unwrap();
            assert!(
                text.to_lowercase().contains(first),
                "{phrase:?} not in {text}"
            );
        }
    }
    assert!(keyphrases("", 5).is_empty());
}

#[test]
fn tagger_combines_sources_and_reads_tag_files() {
    let mut data_cfg = data_config(DataFormat::Benchmark, "cl");
    data_cfg.tasks = vec!["task363_sst2_polarity_classification".into()];
    let task = data::load(&data_cfg, &fixtures()).unwrap().tasks.remove(0);
    let group = task.instruction_groups().remove(0);
    let mut config = Config::embedded_default().strategy;
    let tags = Tagger::new(&config, Path::new("."))
        .unwrap()
        .tags(&task, &group);
    assert_eq!(
        &tags[..3],
        ["Basic Sentiment Analysis", "Reviews", "Movies"]
    );
    assert_eq!(tags[3..], keyphrases(&group.text, 5)[..]);

    let dir = tempfile::tempdir().unwrap();
    let lines = format!(
        "{{\"instruction_id\": \"{}\", \"tags\": [\"sentiment\", \"movie review\"]}}\n{{\"text\": \"other\", \"tags\": [\"x\"]}}\n",
        group.id
    );
    std::fs::write(dir.path().join("tags.jsonl"), lines).unwrap();
    config.tags = "file".parse().unwrap();
    config.tag_file = Some("tags.jsonl".into());
    let tags = Tagger::new(&config, dir.path())
        .unwrap()
        .tags(&task, &group);
    assert_eq!(tags, ["sentiment", "movie review"]);

    std::fs::write(dir.path().join("tags.jsonl"), "{\"tags\": []}\n").unwrap();
    let err = Tagger::new(&config, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("tags.jsonl:1") && err.contains("neither"),
        "{err}"
    );
}
