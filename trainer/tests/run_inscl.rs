//! `trainer run` does InsCL as the paper does, checked with the deterministic test double:
//! one embedding space per run (`base`, `current`, `file`), one seed behind every random
//! choice, LLM-written tags (parsed, retried, falling back, cached), generation budgets from the
//! gold outputs, and on the default InsCL16 data InsInfo changes which instances are replayed.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/double.rs"]
mod double;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use double::MemorisingDouble;
use inscl::artifact::{self, EmbeddingsFile, RunManifest, StageRecord};
use inscl::plan::task_distances;
use trainer::config::{Config, DataFormat, EmbeddingSource};
use trainer::learner::{ContinualLearner, Weights};
use trainer::run::{self, RunError, RunFolder, RunOptions};
use trainer::tags::llm::{LlmTagFile, TagOrigin};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni")
}

/// Three small InsCL16 categories (two SuperNI tasks, so two instructions, each), α = 6.
fn config(out: &Path, name: &str) -> Config {
    let mut config = Config::embedded_default();
    config.data.format = DataFormat::Categories;
    config.data.path = "inscl/categories.json".into();
    config.data.order = Some("curriculum".into());
    config.data.tasks.clear();
    config.data.first = None;
    config.strategy.alpha = 6;
    config.training.batch_size = 4;
    config.output.dir = out.display().to_string();
    config.output.name = Some(name.into());
    config
}

fn run_with(config: &Config, learner: &mut MemorisingDouble) -> PathBuf {
    run::run(config, learner, &mut RunOptions::new(fixtures()))
        .unwrap()
        .folder
}

fn stage(folder: &Path, stage: usize) -> StageRecord {
    artifact::read(&RunFolder::new(folder).stage(stage)).unwrap()
}

fn embeddings(folder: &Path) -> EmbeddingsFile {
    artifact::read(&RunFolder::new(folder).embeddings()).unwrap()
}

/// W(t, j) of every stage's plan, as `(t, j, W)`.
fn planned_distances(folder: &Path, stages: usize) -> Vec<(usize, usize, f64)> {
    (2..=stages)
        .flat_map(|t| {
            stage(folder, t)
                .plan
                .previous
                .iter()
                .enumerate()
                .map(|(j, p)| (t - 1, j, p.distance))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn base_embeddings_put_every_stage_in_one_space() {
    let out = tempfile::tempdir().unwrap();
    let folder = run_with(
        &config(out.path(), "base"),
        &mut MemorisingDouble::new(1000),
    );
    let space = embeddings(&folder);
    assert_eq!(space.source.as_deref(), Some("base"));
    assert_eq!(space.pooling.as_deref(), Some("mean"));
    assert_eq!(space.stage, None);
    assert_eq!(space.tasks.len(), 3);
    // Every vector is the untrained (base) model's, whichever stage first needed it. The
    // double's trained weights drift with what it learnt, so a task embedded by the model of
    // an intermediate stage (as before: task t by the model after stage t − 1) fails here.
    let mut base = MemorisingDouble::new(1000);
    for task in &space.tasks {
        let texts: Vec<String> = task.instructions.iter().map(|q| q.text.clone()).collect();
        let expected = base.embed(&texts, Weights::Base).unwrap();
        let got: Vec<Vec<f32>> = task
            .instructions
            .iter()
            .map(|q| q.embedding.clone())
            .collect();
        assert_eq!(got, expected, "task {}", task.name);
    }
    // W(t, j) planned at stage t + 1 equals W(t, j) computed after the last stage.
    let later = task_distances(&space.tasks, &config(out.path(), "x").strategy.similarity).unwrap();
    let planned = planned_distances(&folder, 3);
    assert_eq!(planned.len(), 3);
    for (t, j, w) in planned {
        assert!(w > 0.0);
        assert!(
            (w - later[t][j]).abs() < 1e-12,
            "W({t}, {j}) = {w} vs {}",
            later[t][j]
        );
    }
}

#[test]
fn current_embeddings_reembed_every_seen_task_with_one_model() {
    let out = tempfile::tempdir().unwrap();
    let mut current = config(out.path(), "current");
    current.embedding.source = EmbeddingSource::Current;
    let folder = run_with(&current, &mut MemorisingDouble::new(1000));
    let space = embeddings(&folder);
    assert_eq!(
        (space.source.as_deref(), space.stage),
        (Some("current"), Some(3))
    );
    // One model state for all three tasks: the double's drift (component 0 − 1 = examples
    // remembered after stage 2) is the same in every vector, and it is not the base model's.
    let drifts: Vec<f32> = space
        .tasks
        .iter()
        .flat_map(|t| t.instructions.iter().map(|q| q.embedding[0]))
        .collect();
    assert!(
        drifts.iter().all(|&d| d == drifts[0] && d > 1.0),
        "{drifts:?}"
    );
    let last = stage(&folder, 3);
    let w = task_distances(&space.tasks, &current.strategy.similarity).unwrap();
    for (j, previous) in last.plan.previous.iter().enumerate() {
        assert!((previous.distance - w[2][j]).abs() < 1e-12);
    }
    // And the spaces differ: base and current plan other distances.
    let base = run_with(
        &config(out.path(), "base"),
        &mut MemorisingDouble::new(1000),
    );
    assert_ne!(planned_distances(&folder, 3), planned_distances(&base, 3));
}

#[test]
fn file_vectors_are_the_space_and_a_missing_one_is_named() {
    let out = tempfile::tempdir().unwrap();
    let reference = run_with(
        &config(out.path(), "base"),
        &mut MemorisingDouble::new(1000),
    );
    // An "external encoder": the base vectors reversed, keyed by id (task 0) or text.
    let mut lines = Vec::new();
    for (t, task) in embeddings(&reference).tasks.iter().enumerate() {
        for q in &task.instructions {
            let vector: Vec<f32> = q.embedding.iter().rev().copied().collect();
            let record = if t == 0 {
                serde_json::json!({"instruction_id": q.id, "embedding": vector})
            } else {
                serde_json::json!({"text": q.text, "embedding": vector})
            };
            lines.push(record.to_string());
        }
    }
    let file = out.path().join("vectors.json");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let mut from_file = config(out.path(), "file");
    from_file.embedding.source = EmbeddingSource::File;
    from_file.embedding.file = Some(file.display().to_string());
    let folder = run_with(&from_file, &mut MemorisingDouble::new(1000));
    let space = embeddings(&folder);
    assert_eq!(space.source.as_deref(), Some("file"));
    assert_eq!(space.model, Some(file.display().to_string()));
    let first = &space.tasks[0].instructions[0];
    let original = &embeddings(&reference).tasks[0].instructions[0];
    let reversed: Vec<f32> = original.embedding.iter().rev().copied().collect();
    assert_eq!(first.embedding, reversed);

    std::fs::write(&file, lines[1..].join("\n")).unwrap();
    from_file.output.name = Some("file-missing".into());
    let err = run::run(
        &from_file,
        &mut MemorisingDouble::new(1000),
        &mut RunOptions::new(fixtures()),
    )
    .unwrap_err();
    assert!(matches!(err, RunError::VectorFile(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("no vector for instruction {}", original.id))
            && message.contains("of task \"Extraction\""),
        "{message}"
    );
}

#[test]
fn one_seed_reaches_replay_shuffle_and_batches() {
    let out = tempfile::tempdir().unwrap();
    let run_seed = |name: &str, seed: u64| {
        let mut config = config(out.path(), name);
        config.run.seed = seed;
        let mut learner = MemorisingDouble::new(1000);
        let folder = run_with(&config, &mut learner);
        (folder, learner.trained_ids)
    };
    let (a, order_a) = run_seed("a", 0);
    let (b, order_b) = run_seed("b", 0);
    let (c, order_c) = run_seed("c", 1);
    assert_eq!(support::artifacts(&a), support::artifacts(&b));
    assert_eq!(order_a, order_b);
    assert_ne!(order_a, order_c, "another seed trains in another order");
    let replayed = |folder: &Path| -> Vec<Vec<String>> {
        (2..=3)
            .flat_map(|t| stage(folder, t).replayed)
            .map(|r| r.ids)
            .collect()
    };
    assert_ne!(
        replayed(&a),
        replayed(&c),
        "another seed replays other instances"
    );
}

#[test]
fn llm_tags_are_parsed_retried_cached_and_planned_with() {
    let out = tempfile::tempdir().unwrap();
    let tagged = |name: &str| {
        let mut config = config(out.path(), name);
        config.strategy.tags = "llm".parse().unwrap();
        config
    };
    let mut learner = MemorisingDouble::new(1000);
    let folder = run_with(&tagged("llm"), &mut learner);
    let file: LlmTagFile =
        serde_json::from_str(&std::fs::read_to_string(folder.join("tags.json")).unwrap()).unwrap();
    // Six instructions: three start with "In " (unusable first reply, asked again), two of
    // them with "In medical" (unusable again: keyphrases).
    assert_eq!(file.instructions.len(), 6);
    assert_eq!((file.retries, file.fallbacks), (3, 2));
    assert_eq!(learner.chat_prompts, 6 + 3);
    for record in &file.instructions {
        let expected = if record.text.starts_with("In medical") {
            TagOrigin::KeyphraseFallback
        } else if record.text.starts_with("In ") {
            TagOrigin::LlmRetry
        } else {
            TagOrigin::Llm
        };
        assert_eq!(record.origin, expected, "{}", record.text);
        assert!(!record.tags.is_empty());
        if expected != TagOrigin::KeyphraseFallback {
            let words: Vec<&str> = record.text.split_whitespace().take(3).collect();
            assert_eq!(record.tags, words);
        }
    }
    // The planner saw exactly these tags, merged as LLM tags are by default.
    for task in embeddings(&folder).tasks {
        for q in task.instructions {
            assert_eq!(q.tags, file.get(&q.text).unwrap().tags, "{}", q.text);
        }
    }
    let manifest: RunManifest = artifact::read(&RunFolder::new(&folder).manifest()).unwrap();
    assert_eq!(
        manifest.replay.tags.merge_threshold,
        Some(trainer::config::LLM_TAG_MERGE_THRESHOLD)
    );
    let insinfo: Vec<f64> = stage(&folder, 3).plan.previous[0]
        .instructions
        .iter()
        .map(|q| q.insinfo)
        .collect();
    assert!((insinfo.iter().sum::<f64>() - 1.0).abs() < 1e-9);

    // Interrupted in stage 2, resumed by a new process: no instruction is asked again and the
    // artifacts equal the uninterrupted run's.
    let flag = Arc::new(AtomicBool::new(false));
    let mut interrupted = MemorisingDouble::new(1000);
    interrupted.interrupt_at_stage = Some((2, flag.clone()));
    let mut options = RunOptions::new(fixtures());
    options.interrupt = flag;
    let config = tagged("llm-resumed");
    let err = run::run(&config, &mut interrupted, &mut options).unwrap_err();
    assert!(
        matches!(err, RunError::Interrupted { stage: 2, .. }),
        "{err}"
    );
    let resumed_folder = out.path().join("llm-resumed");
    let mut resumed = MemorisingDouble::new(1000);
    let mut options = RunOptions::new(fixtures());
    options.resume = Some(resumed_folder.clone());
    run::run(
        &run::resume_config(&resumed_folder).unwrap(),
        &mut resumed,
        &mut options,
    )
    .unwrap();
    assert_eq!(resumed.chat_prompts, 0, "tags come from tags.json");
    assert_eq!(
        support::artifacts(&resumed_folder),
        support::artifacts(&folder)
    );
}

#[test]
fn generation_budgets_come_from_gold_output_lengths() {
    let out = tempfile::tempdir().unwrap();
    let mut capped = config(out.path(), "budget");
    capped.eval.max_new_tokens = 12;
    let folder = run_with(&capped, &mut MemorisingDouble::new(1000));
    let dataset = trainer::data::load(&capped.data, &fixtures()).unwrap();
    let zero = stage(&folder, 0);
    let mut differ = false;
    for (task, eval) in dataset.tasks.iter().zip(&zero.eval) {
        // The double counts words as tokens.
        let lengths: Vec<usize> = task
            .train
            .iter()
            .flat_map(|e| e.output.iter().map(|o| o.split_whitespace().count()))
            .collect();
        let expected = trainer::run::eval::generation_budget(&lengths, 0.95, 8, 12);
        assert_eq!(eval.max_new_tokens, Some(expected), "{}", task.name);
        differ |= expected != 12;
    }
    assert!(differ, "some task's budget is below the cap");
    for eval in stage(&folder, 3).eval {
        assert!(eval.max_new_tokens.is_some());
    }
}

/// The embedded default's data: its 4 InsCL16 categories (`scripts/fetch-data` puts them in
/// data/).
#[test]
fn default_data_replays_by_insinfo_and_distance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert!(
        root.join("data/superni-inscl16/categories.json").is_file(),
        "data/superni-inscl16 is missing: run scripts/fetch-data"
    );
    let out = tempfile::tempdir().unwrap();
    let replayed = |strategy: &str| -> Vec<StageRecord> {
        let mut config = Config::embedded_default();
        config.strategy.name = strategy.parse().unwrap();
        config.output.dir = out.path().display().to_string();
        let folder = run::run(
            &config,
            &mut MemorisingDouble::new(1000),
            &mut RunOptions::new(&root),
        )
        .unwrap()
        .folder;
        (2..=4).map(|t| stage(&folder, t)).collect()
    };
    let ids = |records: &[StageRecord]| -> Vec<Vec<String>> {
        records
            .iter()
            .flat_map(|r| r.replayed.iter().map(|x| x.ids.clone()))
            .collect()
    };
    let inscl = replayed("inscl");
    let dynamic = replayed("dynamic");
    let insinfo = replayed("insinfo");
    let random = replayed("random");
    // Distances split the budget the same way for inscl and dynamic; InsInfo changes which
    // instances fill it.
    let quotas = |records: &[StageRecord]| -> Vec<Vec<usize>> {
        records
            .iter()
            .map(|r| r.plan.previous.iter().map(|p| p.quota).collect())
            .collect()
    };
    assert_eq!(quotas(&inscl), quotas(&dynamic));
    assert_ne!(ids(&inscl), ids(&dynamic));
    assert_eq!(quotas(&insinfo), quotas(&random));
    assert_ne!(ids(&insinfo), ids(&random));
    // InsInfo is not uniform inside a category: its instructions carry different tags.
    let scores: Vec<f64> = inscl[0].plan.previous[0]
        .instructions
        .iter()
        .map(|q| q.insinfo)
        .collect();
    assert!(scores.len() >= 6, "{scores:?}");
    assert!(
        scores.iter().any(|s| (s - scores[0]).abs() > 1e-6),
        "{scores:?}"
    );
}
