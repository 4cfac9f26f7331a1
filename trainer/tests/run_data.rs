//! `trainer run` data layer on real SuperNI files (trimmed copies in trainer/fixtures/superni):
//! benchmark folders, category files, single task files, Alpaca data, schema drift, orders,
//! splits, caps and the instruction taggers; and brought benchmarks described by a dataset
//! description (trainer/fixtures/byo, one file per shape of issue 13): every shape loads, data
//! problems are counted, and every bad record is an error naming file, line and field.
#![cfg(not(target_arch = "wasm32"))]

use std::path::{Path, PathBuf};

use serde_json::json;
use trainer::config::{Config, DataConfig, DataFormat};
use trainer::data::superni::SuperNiTask;
use trainer::data::{self, DataError, held_out_split, instruction_id};
use trainer::tags::{Tagger, keyphrases, metadata_tags};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni")
}

fn data_config(format: DataFormat, path: &str) -> DataConfig {
    DataConfig {
        format,
        path: path.to_owned(),
        order: None,
        selection_inherited: false,
        tasks: Vec::new(),
        first: None,
        max_train: None,
        max_test: None,
        held_out: 0.25,
        split_seed: 0,
        dedup: false,
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
    joined.sort_unstable();
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
        err.contains("bad.jsonl:2: field output: missing, got {\"instruction\":\"x\"}"),
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
        err.ends_with(
            "bad.json:1: field [0].instruction: expected a string or list of strings, got 5"
        ),
        "{err}"
    );
}

#[test]
fn trainer_data_prints_the_examples_a_run_would_use() {
    // The embedded default with its data moved to the fixture categories and their
    // curriculum order, capped.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(fixtures())
        .args([
            "data",
            "--set",
            "data.path=\"inscl/categories.json\"",
            "--set",
            "data.order=curriculum",
            "--set",
            "data.first=2",
            "--set",
            "data.max_train=5",
            "--set",
            "data.max_test=3",
            "--set",
            "data.held_out=0.25",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let mut config = data_config(DataFormat::Categories, "inscl/categories.json");
    config.order = Some("curriculum".into());
    config.first = Some(2);
    config.max_train = Some(5);
    config.max_test = Some(3);
    let dataset = data::load(&config, &fixtures()).unwrap();
    assert_eq!(printed["order"], "curriculum");
    let tasks = printed["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for (task, expected) in tasks.iter().zip(&dataset.tasks) {
        assert_eq!(task["name"], expected.name.as_str());
        for (split, examples) in [("train", &expected.train), ("test", &expected.test)] {
            let got: Vec<trainer::data::Example> =
                serde_json::from_value(task[split].clone()).unwrap();
            assert_eq!(&got, examples, "{} {split}", expected.name);
        }
        assert_eq!((expected.train.len(), expected.test.len()), (5, 3));
    }

    // A bad override is refused with the field named, and nothing is printed.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(fixtures())
        .args(["data", "--set", "data.max_train=0"])
        .output()
        .unwrap();
    assert!(!refused.status.success() && refused.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("data.max_train"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
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
        .tags(&task, &group, None);
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
        .tags(&task, &group, None);
    assert_eq!(tags, ["sentiment", "movie review"]);

    std::fs::write(dir.path().join("tags.jsonl"), "{\"tags\": []}\n").unwrap();
    let err = Tagger::new(&config, dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("tags.jsonl:1") && err.contains("neither"),
        "{err}"
    );
}

fn byo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/byo")
}

/// The fixture description's task `name`, loaded alone with `config` adjustments.
fn byo_task(name: &str, adjust: impl FnOnce(&mut DataConfig)) -> data::TaskData {
    let mut config = data_config(DataFormat::Described, "dataset_info.json");
    config.tasks = vec![name.to_owned()];
    adjust(&mut config);
    data::load(&config, &byo()).unwrap().tasks.remove(0)
}

#[test]
fn described_benchmark_loads_every_shape_in_file_order() {
    // `data.path` may name the folder: its dataset_info.json is read.
    let dataset = data::load(&data_config(DataFormat::Described, "."), &byo()).unwrap();
    assert_eq!(dataset.order, "file");
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "reviews",
            "topics",
            "trace",
            "summaries",
            "translate",
            "capitals",
            "chat"
        ]
    );
    let sizes: Vec<(usize, usize)> = dataset
        .tasks
        .iter()
        .map(|t| (t.train.len(), t.test.len()))
        .collect();
    // held_out 0.25 of 8 and 12 records; capitals has its own train (9) and test (3) files.
    assert_eq!(
        sizes,
        [(6, 2), (9, 3), (6, 2), (6, 2), (6, 2), (9, 3), (6, 2)]
    );
    for task in &dataset.tasks {
        assert_eq!(task.report.empty_outputs, 0, "{}", task.name);
    }
    let quick = data::load(
        &DataConfig {
            order: Some("quick".into()),
            ..data_config(DataFormat::Described, "dataset_info.json")
        },
        &byo(),
    )
    .unwrap();
    let names: Vec<&str> = quick.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        (quick.order.as_str(), names),
        ("quick", vec!["reviews", "trace", "chat"])
    );
}

#[test]
fn json_lines_named_json_with_string_or_list_outputs() {
    // reviews.json is JSON Lines; ids come from its `id` field.
    let task = byo_task("reviews", |_| {});
    let mut all: Vec<&data::Example> = task.train.iter().chain(&task.test).collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7"]);
    assert_eq!(all[0].output, ["positive"]);
    // A list of outputs is several references.
    assert_eq!(all[2].output, ["positive", "favourable"]);
    assert_eq!(task.instruction_groups().len(), 1);
}

#[test]
fn one_line_array_sorted_by_label_is_capped_at_random() {
    let task = byo_task("topics", |_| {});
    assert_eq!(task.train.len() + task.test.len(), 12);
    // The file lists 6 sports headlines, then 6 science ones; a cap of 4 is a seeded random
    // subset in file order, not the first 4 (which would all be sports).
    let capped = byo_task("topics", |c| c.max_train = Some(4));
    let labels: Vec<&str> = capped.train.iter().map(|e| e.output[0].as_str()).collect();
    assert_eq!(labels.len(), 4);
    assert!(
        labels.contains(&"sports") && labels.contains(&"science"),
        "{labels:?}"
    );
    let positions: Vec<usize> = capped
        .train
        .iter()
        .map(|e| task.train.iter().position(|t| t == e).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(byo_task("topics", |c| c.max_train = Some(4)), capped);
    let other_seed = byo_task("topics", |c| {
        c.max_train = Some(4);
        c.split_seed = 3;
    });
    assert_ne!(other_seed.train, capped.train);
}

#[test]
fn prompt_only_tasks_get_derived_instructions() {
    // prompt / answer fields, cut at the first blank line.
    let trace = byo_task("trace", |_| {});
    let groups = trace.instruction_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].text,
        "Answer the arithmetic question with a number."
    );
    assert!(trace.train.iter().all(|e| e.input.starts_with("What is ")));
    // input / output / task_name fields of one shared file, common prefix of the prompts.
    let summaries = byo_task("summaries", |_| {});
    assert_eq!(summaries.train.len() + summaries.test.len(), 8);
    let groups = summaries.instruction_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].text, "Summarize the text in a few words.\nText:");
    assert!(
        summaries
            .train
            .iter()
            .all(|e| !e.input.starts_with("Text") && e.input.ends_with('.'))
    );
    // The same file's other task, by a regular expression.
    let translate = byo_task("translate", |_| {});
    let groups = translate.instruction_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].text, "Translate the sentence into French.");
    let cat = translate
        .train
        .iter()
        .chain(&translate.test)
        .find(|e| e.output == ["le chat dort"])
        .unwrap();
    assert_eq!(cat.input, "the cat sleeps");
}

#[test]
fn duplicates_and_overlap_are_reported_and_optionally_removed() {
    let capitals = byo_task("capitals", |_| {});
    assert_eq!((capitals.train.len(), capitals.test.len()), (9, 3));
    // France and Italy appear twice in train.json; Japan is in train.json and test.json.
    assert_eq!(
        (
            capitals.report.train_duplicates,
            capitals.report.test_duplicates,
            capitals.report.overlap,
            capitals.report.removed
        ),
        (2, 0, 1, 0)
    );
    let deduplicated = byo_task("capitals", |c| c.dedup = true);
    assert_eq!((deduplicated.train.len(), deduplicated.test.len()), (7, 2));
    assert_eq!(
        deduplicated.report,
        inscl::artifact::DataReport {
            removed: 3,
            ..capitals.report.clone()
        }
    );
    assert!(deduplicated.test.iter().all(|e| e.input != "Japan"));
}

#[test]
fn identical_eval_and_test_files_listed_together_are_test_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let splits = byo().join("splits").display().to_string();
    let description = json!({
        "capitals": {
            "train_file": format!("{splits}/train.json"),
            "test_file": [format!("{splits}/eval.json"), format!("{splits}/test.json")]
        }
    });
    std::fs::write(dir.path().join("info.json"), description.to_string()).unwrap();
    let config = data_config(DataFormat::Described, "info.json");
    let task = data::load(&config, dir.path()).unwrap().tasks.remove(0);
    // eval.json and test.json are byte-identical: every test instance is there twice, and
    // Japan (also in train) overlaps twice.
    assert_eq!(
        (
            task.test.len(),
            task.report.test_duplicates,
            task.report.overlap
        ),
        (6, 3, 2)
    );
    let config = DataConfig {
        dedup: true,
        ..config
    };
    let task = data::load(&config, dir.path()).unwrap().tasks.remove(0);
    assert_eq!((task.test.len(), task.report.removed), (2, 6));
}

#[test]
fn conversations_use_the_last_assistant_turn_as_output() {
    let chat = byo_task("chat", |_| {});
    let all: Vec<&data::Example> = chat.train.iter().chain(&chat.test).collect();
    assert_eq!(all.len(), 8);
    let system = "You convert units. Answer with the number and unit only.";
    let single = all.iter().find(|e| e.output == ["1000 m"]).unwrap();
    assert_eq!(
        single.instruction,
        format!("{system}\n\nConvert 1 km to m.")
    );
    assert_eq!(single.input, "");
    let multi = all.iter().find(|e| e.output == ["3000 mm"]).unwrap();
    assert_eq!(multi.instruction, format!("{system}\n\nAnd to mm?"));
    assert_eq!(multi.input, "User: Convert 3 m to cm.\nAssistant: 300 cm");
    // No assistant turn but the last is a target.
    assert!(all.iter().all(|e| e.output != ["300 cm"]));

    // from / value messages with a leading system turn need no tags; alpaca `history` pairs
    // become the same transcript.
    let dir = tempfile::tempdir().unwrap();
    let conversation = json!({"conversations": [
        {"from": "system", "value": "Be brief."},
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
        {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Goodbye"}
    ]});
    let history = json!({"q": "Bye", "a": "Goodbye", "sys": "Be brief.", "h": [["Hi", "Hello"]]});
    std::fs::write(
        dir.path().join("talk.json"),
        format!("{conversation}\n{conversation}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hist.json"),
        format!("[{history}, {history}]"),
    )
    .unwrap();
    let description = json!({
        "talk": {"file_name": "talk.json", "held_out": 0.5, "formatting": "sharegpt"},
        "hist": {"file_name": "hist.json", "held_out": 0.5, "columns":
            {"prompt": "q", "response": "a", "system": "sys", "history": "h"}}
    });
    std::fs::write(
        dir.path().join("dataset_info.json"),
        description.to_string(),
    )
    .unwrap();
    let dataset = data::load(&data_config(DataFormat::Described, "."), dir.path()).unwrap();
    for task in &dataset.tasks {
        let example = &task.train[0];
        assert_eq!(example.instruction, "Be brief.\n\nBye", "{}", task.name);
        assert_eq!(example.input, "User: Hi\nAssistant: Hello", "{}", task.name);
        assert_eq!(example.output, ["Goodbye"], "{}", task.name);
        // Repeated records are counted, not hidden.
        assert_eq!(task.report.overlap, 1, "{}", task.name);
    }
}

#[test]
fn empty_outputs_are_skipped_and_counted_and_an_all_empty_task_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let lines = "{\"prompt\": \"Echo.\\n\\na\", \"answer\": \"a\"}\n\
                 {\"prompt\": \"Echo.\\n\\nb\", \"answer\": [\"\", \" \"]}\n\
                 {\"prompt\": \"Echo.\\n\\nc\", \"answer\": \"c\"}\n";
    std::fs::write(dir.path().join("echo.json"), lines).unwrap();
    let description = json!({"echo": {"file_name": "echo.json", "held_out": 0.5,
        "columns": {"prompt": "prompt", "response": "answer"}}});
    std::fs::write(dir.path().join("info.json"), description.to_string()).unwrap();
    let task = data::load(&data_config(DataFormat::Described, "info.json"), dir.path())
        .unwrap()
        .tasks
        .remove(0);
    assert_eq!(task.train.len() + task.test.len(), 2);
    assert_eq!(task.report.empty_outputs, 1);

    let mut config = data_config(DataFormat::Described, "broken_info.json");
    config.tasks = vec!["reviews".into(), "all_empty".into()];
    let err = data::load(&config, &byo()).unwrap_err();
    assert!(
        matches!(err, DataError::AllEmpty { skipped: 4, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("task \"all_empty\": all 4 records have empty outputs"),
        "{err}"
    );
}

/// Loads a one-task description of `file` (written with `content`) with `entry` settings.
fn described_error(file: &str, content: &str, entry: serde_json::Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(file), content).unwrap();
    let mut entry = entry;
    entry["file_name"] = json!(file);
    std::fs::write(
        dir.path().join("dataset_info.json"),
        json!({ "t": entry }).to_string(),
    )
    .unwrap();
    let err = data::load(&data_config(DataFormat::Described, "."), dir.path())
        .unwrap_err()
        .to_string();
    let folder = dir.path().display().to_string();
    err.replace(&format!("{folder}/"), "")
}

#[test]
fn every_bad_record_names_file_line_and_field() {
    let pa = json!({"columns": {"prompt": "prompt", "response": "answer"}});
    let cases: Vec<(&str, &str, serde_json::Value, &str)> = vec![
        (
            "a.json",
            "{\"prompt\": \"p\", \"answer\": \"x\"}\n{\"prompt\": \"p\", \"anwser\": \"y\"}\n",
            pa.clone(),
            "a.json:2: field answer: missing, got {\"anwser\":\"y\",\"prompt\":\"p\"}",
        ),
        (
            "b.json",
            "[\n  {\"prompt\": \"p\", \"answer\": \"x\"},\n  {\"prompt\": \"p\", \"answer\": 5}\n]",
            pa.clone(),
            "b.json:3: field [1].answer: expected a string or list of strings, got 5",
        ),
        (
            "c.jsonl",
            "{\"prompt\": \"p\", \"answer\": \"x\"}\n42\n",
            pa.clone(),
            "c.jsonl:2: field (record): expected a JSON object (one per line, or in one JSON array), got 42",
        ),
        (
            "d.json",
            "{\"prompt\": \"  \", \"answer\": \"x\"}\n",
            pa.clone(),
            "d.json:1: field prompt: empty, got \"  \"",
        ),
        (
            "e.json",
            "{\"instruction\": \"p\", \"output\": \"x\"}\n",
            json!({"columns": {"query": "context"}}),
            "e.json:1: field context: missing, got {\"instruction\":\"p\",\"output\":\"x\"}",
        ),
        (
            "f.json",
            "{\"instruction\": \"p\", \"output\": \"x\", \"h\": [[\"u\"]]}\n",
            json!({"columns": {"history": "h"}}),
            "f.json:1: field h[0]: expected a list of [prompt, response] pairs of strings, got [\"u\"]",
        ),
        (
            "g.json",
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"human\", \"value\": \"b\"}]}\n",
            json!({"formatting": "sharegpt"}),
            "g.json:1: field conversations[1].from: expected an assistant turn (turns alternate user, assistant, ...), got \"human\"",
        ),
        (
            "h.json",
            "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}]}\n",
            json!({"formatting": "sharegpt"}),
            "h.json:1: field conversations: expected user and assistant turns ending with an assistant turn, got {\"from\":\"human\",\"value\":\"a\"}",
        ),
        (
            "i.json",
            "{\"messages\": [{\"role\": \"user\"}]}\n",
            json!({"formatting": "sharegpt", "columns": {"messages": "messages"}}),
            "i.json:1: field messages[0].value: missing, got {\"role\":\"user\"}",
        ),
        (
            "j.json",
            "{\"prompt\": \"Task.\\n\\nx\", \"answer\": \"1\"}\n{\"prompt\": \"no blank line\", \"answer\": \"2\"}\n",
            json!({"columns": {"prompt": "prompt", "response": "answer"},
                   "derive_instruction": {"separator": "\n\n"}}),
            "j.json:2: field prompt: no instruction of task \"t\" can be derived by separator \"\\n\\n\": it does not apply to \"no blank line\"",
        ),
        (
            "k.json",
            "{\"prompt\": \"Alpha one\", \"answer\": \"1\"}\n{\"prompt\": \"Beta two\", \"answer\": \"2\"}\n",
            json!({"columns": {"prompt": "prompt", "response": "answer"},
                   "derive_instruction": "common_prefix"}),
            "k.json:1: field prompt: no instruction of task \"t\" can be derived by common_prefix: its 2 prompts share no common prefix (first: \"Alpha one\")",
        ),
    ];
    for (file, content, entry, expected) in cases {
        assert_eq!(described_error(file, content, entry), expected);
    }
    // Broken JSON: serde's message carries the line and column.
    let err = described_error("l.json", "{\"prompt\": \"p\"}\n{\"prompt\": \n", pa);
    assert!(
        err.starts_with("l.json: not valid JSON: EOF while parsing a value at line 3"),
        "{err}"
    );
    // The committed fixture with a misspelt field.
    let mut config = data_config(DataFormat::Described, "broken_info.json");
    config.tasks = vec!["missing_answer".into()];
    let err = data::load(&config, &byo()).unwrap_err().to_string();
    assert!(
        err.contains("byo/missing_answer.jsonl:3: field answer: missing"),
        "{err}"
    );
}

#[test]
fn bad_descriptions_name_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            json!({"t": {}}),
            "entry \"t\": needs file_name, or train_file and test_file",
        ),
        (
            json!({"t": {"file_name": "a.json", "train_file": "b.json"}}),
            "entry \"t\": has both file_name and train_file/test_file",
        ),
        (
            json!({"t": {"train_file": "b.json"}}),
            "entry \"t\": needs both train_file and test_file",
        ),
        (
            json!({"t": {"file_name": "a.json", "held_out": 1.0}}),
            "entry \"t\": held_out must be in [0, 1)",
        ),
        (
            json!({"t": {"file_name": "a.json", "columns": {"pictures": "img"}}}),
            "entry \"t\": unknown field `pictures`",
        ),
        (
            json!({"t": {"file_name": 3}}),
            "entry \"t\": expected a file name or a list of file names, got 3",
        ),
        (
            json!({"t": {"file_name": "a.json", "formatting": "sharegpt", "columns": {"prompt": "q"}}}),
            "entry \"t\": columns prompt, query, response and history are for formatting = \"alpaca\"",
        ),
        (
            json!({"t": {"file_name": "a.json", "derive_instruction": {"suffix": "x"}}}),
            "entry \"t\": unknown variant `suffix`",
        ),
        (
            json!({"orders": ["t"]}),
            "entry \"orders\": expected {name: [task, ...]}",
        ),
    ];
    for (description, expected) in cases {
        std::fs::write(dir.path().join("info.json"), description.to_string()).unwrap();
        let err = data::load(&data_config(DataFormat::Described, "info.json"), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("info.json: ") && err.contains(expected),
            "{err}"
        );
    }
    std::fs::write(
        dir.path().join("info.json"),
        "{\"t\": {\"file_name\": \"a\"}, \"t\": {\"file_name\": \"b\"}}",
    )
    .unwrap();
    let err = data::load(&data_config(DataFormat::Described, "info.json"), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.ends_with("entry \"t\": defined twice"), "{err}");
    let mut config = data_config(DataFormat::Described, ".");
    config.order = Some("nope".into());
    let err = data::load(&config, &byo()).unwrap_err().to_string();
    assert!(
        err.contains("unknown order \"nope\"") && err.contains("file, quick"),
        "{err}"
    );
}

#[test]
fn folders_are_searched_for_their_description_file() {
    let mut config = data_config(DataFormat::Categories, "inscl");
    config.order = Some("curriculum".into());
    let from_folder = data::load(&config, &fixtures()).unwrap();
    config.path = "inscl/categories.json".into();
    assert_eq!(from_folder, data::load(&config, &fixtures()).unwrap());

    config.path = "inscl/tasks".into();
    let err = data::load(&config, &fixtures()).unwrap_err().to_string();
    assert!(
        err.contains("inscl/tasks is a folder without categories.json"),
        "{err}"
    );
    let err = data::load(&data_config(DataFormat::Described, "cl"), &fixtures())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cl is a folder without dataset_info.json"),
        "{err}"
    );
}

#[test]
fn alpaca_files_are_json_or_json_lines_by_content() {
    let dir = tempfile::tempdir().unwrap();
    // JSON Lines in a .json file, and a one-line array in a .jsonl file.
    let record = |i: usize| json!({"instruction": "Echo.", "input": format!("{i}"), "output": format!("{i}")});
    let lines: String = (0..4).map(|i| format!("{}\n", record(i))).collect();
    std::fs::write(dir.path().join("lines.json"), lines).unwrap();
    let array = serde_json::Value::Array((0..4).map(record).collect()).to_string();
    std::fs::write(dir.path().join("array.jsonl"), array).unwrap();
    for file in ["lines.json", "array.jsonl"] {
        let dataset = data::load(&data_config(DataFormat::Alpaca, file), dir.path()).unwrap();
        let task = &dataset.tasks[0];
        assert_eq!((task.train.len(), task.test.len()), (3, 1), "{file}");
    }
}

fn llama_factory() -> PathBuf {
    byo().join("llama_factory")
}

fn described_tasks(tasks: &[&str]) -> DataConfig {
    DataConfig {
        tasks: tasks.iter().map(std::string::ToString::to_string).collect(),
        ..data_config(DataFormat::Described, "dataset_info.json")
    }
}

#[test]
fn a_llama_factory_description_loads_with_its_keys() {
    let config = described_tasks(&["alpaca_en", "identity", "multiturn", "adgen_local"]);
    let dataset = data::load(&config, &llama_factory()).unwrap();
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["alpaca_en", "identity", "multiturn", "adgen_local"]);
    let all = |task: &data::TaskData| -> Vec<data::Example> {
        task.train.iter().chain(&task.test).cloned().collect()
    };
    // alpaca_en: its file_sha1 holds; the default columns.
    let alpaca = all(&dataset.tasks[0]);
    assert_eq!(alpaca.len(), 8);
    let french = alpaca
        .iter()
        .find(|e| e.input == "The cat sleeps.")
        .unwrap();
    assert_eq!(
        (french.instruction.as_str(), french.output.as_slice()),
        (
            "Translate the sentence into French.",
            ["Le chat dort.".to_owned()].as_slice()
        )
    );
    // identity: "file_sha1": "" is no checksum.
    assert_eq!(all(&dataset.tasks[1]).len(), 4);
    // multiturn: "query": "" reads no query; the history is the input's transcript.
    let celsius = all(&dataset.tasks[2])
        .into_iter()
        .find(|e| e.instruction == "And in Celsius?")
        .unwrap();
    assert_eq!(
        celsius.input,
        "User: What is the normal body temperature in Fahrenheit?\nAssistant: About 98.6 degrees Fahrenheit."
    );
    // adgen_local: "query": "" keeps the records' `input` field (a copy of the prompt's end)
    // out of the input, and "history": "" reads no history.
    for example in all(&dataset.tasks[3]) {
        assert!(
            example
                .instruction
                .starts_with("Write an advertisement for the item.\n\ntype#")
        );
        assert_eq!(example.input, "");
    }
    // One notice per ignored key, naming the entries.
    let file = llama_factory()
        .join("dataset_info.json")
        .display()
        .to_string();
    let why_split = "it selects part of a Hub dataset; local files are read whole (split by held_out, or train_file / test_file)";
    assert_eq!(
        dataset.notices,
        [
            format!("{file}: split of entry \"adgen_local\" ignored: {why_split}"),
            format!(
                "{file}: hf_hub_url of entry \"adgen_local\" ignored: the entry's local files are read instead"
            ),
            format!(
                "{file}: ms_hub_url of entry \"adgen_local\" ignored: the entry's local files are read instead"
            ),
        ]
    );
}

#[test]
fn llama_factory_entries_that_cannot_apply_are_errors_only_when_used() {
    let cases = [
        (
            "comparison_gpt4_en",
            "ranking = true: a preference dataset, which LLaMA-Factory uses for reward modelling and DPO only",
        ),
        (
            "belle_multiturn",
            "LLaMA-Factory loads it from script_url \"belle_multiturn\"; trainer reads local files only",
        ),
        (
            "guanaco",
            "LLaMA-Factory loads it from hf_hub_url \"JosephusCheung/GuanacoDataset\"",
        ),
        (
            "glaive_toolcall",
            "columns.tools: tool definitions are not read",
        ),
        (
            "mllm_demo",
            "columns.images: images are not read by a text model",
        ),
        (
            "kto_en_demo",
            "columns.kto_tag: KTO labels mark some responses as undesirable",
        ),
    ];
    let file = llama_factory()
        .join("dataset_info.json")
        .display()
        .to_string();
    for (task, expected) in cases {
        let err = data::load(&described_tasks(&[task]), &llama_factory())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("{file}: entry \"{task}\": {expected}")),
            "{err}"
        );
    }
    // Without data.tasks every entry runs (file order), so the first unusable one stops it.
    let err = data::load(
        &data_config(DataFormat::Described, "dataset_info.json"),
        &llama_factory(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("entry \"comparison_gpt4_en\": ranking = true"),
        "{err}"
    );

    // A data file that is not the one file_sha1 describes.
    let dir = tempfile::tempdir().unwrap();
    for name in ["dataset_info.json", "alpaca_data_en.json"] {
        std::fs::copy(llama_factory().join(name), dir.path().join(name)).unwrap();
    }
    let data_file = dir.path().join("alpaca_data_en.json");
    let edited = std::fs::read_to_string(&data_file)
        .unwrap()
        .replace("Tokyo", "Kyoto");
    std::fs::write(&data_file, edited).unwrap();
    let err = data::load(&described_tasks(&["alpaca_en"]), dir.path())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}: SHA-1 e3610228575275ed2dc7265f84b29168c6534b1c differs from the description's file_sha1 dac76828399abaa20f72355f7feec0afd7fd83c0; \
             the file is not the one described (update or remove file_sha1 if the change is intended)",
            data_file.display()
        )
    );
    // The whole file's syntax is checked, even where no entry is used.
    let info = dir.path().join("dataset_info.json");
    let broken = std::fs::read_to_string(&info).unwrap().replacen("}", "", 1);
    std::fs::write(&info, broken).unwrap();
    let err = data::load(&described_tasks(&["identity"]), dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("dataset_info.json: not valid JSON"), "{err}");
}

#[test]
fn instructions_from_a_side_file_with_label_options() {
    let folder = byo().join("olora");
    let dataset = data::load(
        &data_config(DataFormat::Described, "dataset_info.json"),
        &folder,
    )
    .unwrap();
    let expected = [
        (
            "agnews",
            "What is the topic of the following paragraph? Choose one from the option.\nOption: World, Sports, Business, Science or Technology \n",
        ),
        // Options from the task's outputs, train first, in order of appearance.
        (
            "amazon",
            "What is the sentiment of the following paragraph? Choose one from the option.\nOption: positive, negative \n",
        ),
        ("amazon_literal", "Is the review positive or negative?"),
    ];
    for (task, (name, instruction)) in dataset.tasks.iter().zip(expected) {
        assert_eq!(task.name, name);
        assert_eq!((task.train.len(), task.test.len()), (6, 2), "{name}");
        let groups = task.instruction_groups();
        assert_eq!(groups.len(), 1, "{name}");
        assert_eq!(groups[0].text, instruction, "{name}");
        for example in task.train.iter().chain(&task.test) {
            assert_eq!(example.instruction, instruction);
            assert!(example.input.starts_with("Title: "), "{}", example.input);
        }
    }
    let sports = &dataset.tasks[0].train[1];
    assert_eq!(
        (sports.input.as_str(), sports.output.as_slice()),
        (
            "Title: Late goal sends hosts to the final\nText: A header in the last minute gave the home side a 2-1 win in the semi-final.\n",
            ["Sports".to_owned()].as_slice()
        )
    );

    // A key the instruction file lacks, and a template without {instruction}.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("instructions.json"),
        r#"{"SC": [{"instruction_type": "zero-shot", "instruction": "Sentiment?"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("r.json"),
        r#"[{"sentence": "a", "label": "x"}, {"sentence": "b", "label": "y"}]"#,
    )
    .unwrap();
    let entry = |instruction: serde_json::Value| {
        json!({"t": {"file_name": "r.json", "held_out": 0.5,
            "columns": {"query": "sentence", "response": "label"}, "instruction": instruction}})
    };
    for (instruction, expected) in [
        (
            json!({"file": "instructions.json"}),
            "instructions.json: field t: missing (the instruction's key: instruction.key, default the task's name), got keys SC".to_owned(),
        ),
        (
            json!({"file": "instructions.json", "key": "SC", "template": "Options: {options}"}),
            "dataset_info.json: entry \"t\": instruction.template \"Options: {options}\" lacks {instruction}".to_owned(),
        ),
        (
            json!({"file": "instructions.json", "text": "x"}),
            "dataset_info.json: entry \"t\": instruction needs one of file (with key) or text".to_owned(),
        ),
    ] {
        std::fs::write(
            dir.path().join("dataset_info.json"),
            entry(instruction).to_string(),
        )
        .unwrap();
        let err = data::load(&data_config(DataFormat::Described, "."), dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.ends_with(&expected), "{err}");
    }
}

#[test]
fn an_input_that_every_prompt_already_holds_is_a_notice_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        llama_factory().join("adgen_local.json"),
        dir.path().join("adgen_local.json"),
    )
    .unwrap();
    // LLaMA-Factory's default query column (`input`) also reads the copy of the input.
    let description = json!({"adgen": {"file_name": "adgen_local.json",
        "columns": {"prompt": "content", "response": "summary"}}});
    std::fs::write(
        dir.path().join("dataset_info.json"),
        description.to_string(),
    )
    .unwrap();
    let dataset = data::load(&data_config(DataFormat::Described, "."), dir.path()).unwrap();
    assert_eq!(
        dataset.notices,
        [
            "task \"adgen\": the query (field input) of 6 of 6 records is already in its prompt (field content), \
          so each input would appear twice; if the prompt holds the input, set \"query\": \"\" in the entry's columns"
        ]
    );
    let example = &dataset.tasks[0].train[0];
    assert!(example.instruction.ends_with(&example.input), "{example:?}");
}

#[test]
fn empty_files_and_splits_name_the_file_and_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("train.json", "{\"prompt\": \"Echo.\", \"answer\": \"a\"}\n");
    write("empty.json", "");
    write(
        "blank.json",
        "{\"prompt\": \"Echo.\", \"answer\": \" \"}\n{\"prompt\": \"Echo.\", \"answer\": []}\n",
    );
    write("one.json", "{\"prompt\": \"Echo.\", \"answer\": \"a\"}\n");
    let folder = dir.path().display().to_string();
    let cases = [
        (
            json!({"train_file": "train.json", "test_file": "empty.json"}),
            format!("{folder}/empty.json: no records (an empty file or an empty JSON array)"),
        ),
        (
            json!({"train_file": "train.json", "test_file": "blank.json"}),
            format!(
                "task \"t\" has no usable test instances: all 2 records have empty outputs (field answer) (source: {folder}/blank.json)"
            ),
        ),
        (
            json!({"file_name": "blank.json"}),
            format!(
                "task \"t\": all 2 records have empty outputs; nothing to train or score (source: {folder}/blank.json)"
            ),
        ),
        (
            json!({"file_name": "one.json", "held_out": 0.5}),
            format!(
                "task \"t\" has no usable train instances: held_out = 0.5 splits its 1 usable record(s) into 0 train and 1 test (source: {folder}/one.json)"
            ),
        ),
        (
            json!({"file_name": "one.json", "columns": {"task": "task_name"}}),
            format!(
                "{folder}/one.json:1: field task_name: missing, got {{\"answer\":\"a\",\"prompt\":\"Echo.\"}}"
            ),
        ),
    ];
    for (mut entry, expected) in cases {
        entry["columns"]["prompt"] = json!("prompt");
        entry["columns"]["response"] = json!("answer");
        std::fs::write(
            dir.path().join("dataset_info.json"),
            json!({ "t": entry }).to_string(),
        )
        .unwrap();
        let err = data::load(&data_config(DataFormat::Described, "."), dir.path())
            .unwrap_err()
            .to_string();
        assert_eq!(err, expected);
    }
}

#[test]
fn the_default_task_list_meets_other_data_as_the_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let records: String = ["math", "math", "greet", "greet"]
        .iter()
        .enumerate()
        .map(|(i, task)| {
            format!(
                "{}\n",
                json!({"instruction": format!("Do {task}."), "input": format!("{i}"), "output": "x", "task": task})
            )
        })
        .collect();
    std::fs::write(dir.path().join("my.json"), records).unwrap();
    // The data source changed, no order or task list named: the default's list is inherited.
    let config = Config::load(
        None,
        &[
            "data.format=alpaca".into(),
            "data.path=my.json".into(),
            "data.max_train=1".into(),
        ],
    )
    .unwrap();
    let default_tasks = Config::embedded_default().data.tasks;
    assert_eq!(config.data.tasks, default_tasks);
    assert!(config.data.selection_inherited);
    let dataset = data::load(&config.data, dir.path()).unwrap();
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        (dataset.order.as_str(), names),
        ("file", vec!["math", "greet"])
    );
    assert_eq!(
        dataset.notices,
        [format!(
            "data.tasks = {default_tasks:?} comes from the embedded default and {} has no task \"{}\"; \
             the tasks run in file order (set data.order or data.tasks to choose)",
            dir.path().join("my.json").display(),
            default_tasks[0]
        )]
    );
    // The run records the order it resolved to, so a resume loads the same tasks.
    let resolved = data::resolved_config(&config.data, &dataset);
    assert_eq!(
        (
            resolved.order.as_deref(),
            resolved.tasks.len(),
            resolved.selection_inherited
        ),
        (Some("file"), 0, false)
    );
    // An order the user names replaces the default's list, and stays an error where the data
    // lacks it.
    let named = Config::load(
        None,
        &[
            "data.format=alpaca".into(),
            "data.path=my.json".into(),
            "data.order=curriculum".into(),
        ],
    )
    .unwrap();
    assert!(!named.data.selection_inherited);
    assert!(named.data.tasks.is_empty());
    let err = data::load(&named.data, dir.path()).unwrap_err().to_string();
    assert!(err.starts_with("unknown order \"curriculum\""), "{err}");
    // The default's own source keeps its list, and another path to a source that has its
    // tasks uses them (the real data, which `scripts/fetch-data` puts in data/).
    assert!(!Config::embedded_default().data.selection_inherited);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let moved = Config::load(
        None,
        &["data.path=\"./data/superni-inscl16/categories.json\"".into()],
    )
    .unwrap()
    .data;
    assert!(moved.selection_inherited);
    let dataset = data::load(&moved, &root).unwrap();
    let names: Vec<&str> = dataset.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        (dataset.order.as_str(), dataset.notices.len(), names),
        (
            "custom",
            0,
            default_tasks.iter().map(String::as_str).collect()
        )
    );
}

#[test]
fn trainer_data_report_counts_each_task_and_its_instructions() {
    let report = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
            .current_dir(byo())
            .args([
                "data",
                "--report",
                "--set",
                "data.format=\"described\"",
                "--set",
                "data.path=\"dataset_info.json\"",
                "--set",
                "data.tasks=[\"trace\", \"capitals\"]",
                "--set",
                "data.max_train=100",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&report(&["--json"])).unwrap();
    let mut config = described_tasks(&["trace", "capitals"]);
    config.max_train = Some(100);
    config.held_out = Config::embedded_default().data.held_out;
    let dataset = data::load(&config, &byo()).unwrap();
    assert_eq!(json["order"], "custom");
    for (task, expected) in json["tasks"].as_array().unwrap().iter().zip(&dataset.tasks) {
        assert_eq!(task["name"], expected.name.as_str());
        assert_eq!(task["train"], expected.train.len());
        assert_eq!(task["test"], expected.test.len());
        assert_eq!(
            task["data_report"],
            serde_json::to_value(&expected.report).unwrap()
        );
        let groups = expected.instruction_groups();
        let instructions = task["instructions"].as_array().unwrap();
        assert_eq!(instructions.len(), groups.len());
        let covered: usize = instructions
            .iter()
            .map(|i| i["train"].as_u64().unwrap() + i["test"].as_u64().unwrap())
            .sum::<u64>() as usize;
        assert_eq!(covered, expected.train.len() + expected.test.len());
    }
    // capitals: 9 train records with 2 repeats, 3 test with 1 overlap (splits/train.json).
    let table = report(&[]);
    let capitals = table
        .lines()
        .find(|l| l.starts_with("capitals "))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        capitals,
        ["capitals", "9", "3", "1", "0", "2", "0", "1", "0"]
    );
    assert!(
        table.contains("trace: 1 instruction(s)")
            && table.contains("Answer the arithmetic question with a number."),
        "{table}"
    );
}
