//! The `trainer run` stage loop with a deterministic test double in place of the LLaMA:
//! every strategy runs and writes valid artifacts, replay follows the plan, resume after a
//! crash or Ctrl-C equals an uninterrupted run, a NaN loss stops cleanly, `compare` reads runs.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/double.rs"]
mod double;
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use double::MemorisingDouble;
use inscl::artifact::{self, EmbeddingsFile, RunManifest, RunResults, StageRecord};
use trainer::config::{Config, DataFormat, MethodConfig, RunStrategy};
use trainer::run::{self, RunError, RunFolder, RunOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni")
}

/// Three real SuperNI-CL15 tasks (12 train / 6 test each), α = 4, output under `out`.
fn config(strategy: &str, out: &Path) -> Config {
    let mut config = Config::embedded_default();
    config.data.format = DataFormat::Benchmark;
    config.data.path = "cl".into();
    config.data.order = Some("order1".into());
    config.data.tasks.clear();
    config.data.first = None;
    config.strategy.name = strategy.parse().unwrap();
    config.strategy.alpha = 4;
    config.training.batch_size = 4;
    config.output.dir = out.display().to_string();
    config
}

fn category_config(strategy: &str, out: &Path) -> Config {
    let mut config = config(strategy, out);
    config.data.format = DataFormat::Categories;
    config.data.path = "inscl/categories.json".into();
    config.data.order = Some("curriculum".into());
    config.data.tasks.clear();
    config.strategy.alpha = 9;
    config
}

fn options() -> RunOptions {
    RunOptions::new(fixtures())
}

#[test]
fn every_strategy_runs_and_writes_valid_artifacts() {
    let out = tempfile::tempdir().unwrap();
    for strategy in RunStrategy::ALL.map(RunStrategy::name) {
        let config = config(strategy, out.path());
        let outcome = run::run(&config, &mut MemorisingDouble::new(1000), &mut options()).unwrap();
        let folder = RunFolder::new(&outcome.folder);
        let manifest: RunManifest = artifact::read(&folder.manifest()).unwrap();
        assert_eq!(manifest.replay.strategy, strategy);
        assert_eq!(manifest.order, "order1");
        assert_eq!(manifest.tasks.len(), 3);
        assert_eq!(manifest.device, "test double");
        assert_eq!(Config::from_json(&manifest.config).unwrap(), config);
        let results: RunResults = artifact::read(&folder.results()).unwrap();
        assert_eq!(results, outcome.results);
        assert_eq!(results.scores.stages(), 3);
        let embeddings: EmbeddingsFile = artifact::read(&folder.embeddings()).unwrap();
        assert_eq!(embeddings.tasks.len(), 3);
        let zero: StageRecord = artifact::read(&folder.stage(0)).unwrap();
        assert_eq!(zero.eval.len(), 3);
        // The double knows nothing before training.
        assert!(zero.eval.iter().all(|e| e.rouge_l == 0.0));
        assert_eq!(results.zero_shot.as_deref(), Some(&[0.0, 0.0, 0.0][..]));
        let stages = if strategy == "multitask" { 1 } else { 3 };
        assert!(!folder.stage(stages + 1).exists());
        for stage in 1..=stages {
            let record: StageRecord = artifact::read(&folder.stage(stage)).unwrap();
            assert_eq!(record.stage, stage);
            let replayed: usize = record.replayed.iter().map(|r| r.ids.len()).sum();
            let expected = match strategy {
                "none" | "single" | "multitask" => 0,
                _ => 4 * (stage - 1),
            };
            assert_eq!(replayed, expected, "{strategy} stage {stage}");
            assert_eq!(record.plan.budget, expected);
            let trained: usize = if strategy == "multitask" { 36 } else { 12 };
            assert_eq!(record.train_examples, trained + expected);
            assert_eq!(record.loss.len(), (trained + expected).div_ceil(4));
            assert_eq!(
                record.eval.len(),
                if strategy == "multitask" { 3 } else { stage }
            );
            for replay in &record.replayed {
                let task = manifest
                    .tasks
                    .iter()
                    .position(|t| t.name == replay.task)
                    .unwrap();
                assert!(task < stage - 1, "replays only previous tasks");
                let quota = record
                    .plan
                    .previous
                    .iter()
                    .find(|p| p.task == replay.task)
                    .unwrap()
                    .quota;
                assert_eq!(replay.ids.len(), quota);
            }
        }
        // With unlimited memory nothing is forgotten: the double's class prior answers 4 of 6
        // sst2 and emotion test instances and 1 of 6 outcome-extraction ones.
        let last = results.scores.rows().last().unwrap();
        // `single` starts every stage from the base model, so only its last task scores.
        let expected = if strategy == "single" {
            [0.0, 0.0, 50.0 / 3.0]
        } else {
            [200.0 / 3.0, 200.0 / 3.0, 50.0 / 3.0]
        };
        assert_eq!(last, &expected, "{strategy}");
        assert_eq!(folder.finished_stages(), stages);
        let kept: Vec<_> = std::fs::read_dir(outcome.folder.join("checkpoints"))
            .unwrap()
            .collect();
        assert_eq!(kept.len(), 1, "keep_checkpoints = 1");
    }
}

#[test]
fn replay_counters_forgetting_of_a_small_memory() {
    // A memory of 14 examples holds little more than one task (12 training instances):
    // without replay the double forgets the class prior of earlier tasks; replay keeps some.
    let out = tempfile::tempdir().unwrap();
    let run = |strategy: &str| {
        run::run(
            &config(strategy, out.path()),
            &mut MemorisingDouble::new(14),
            &mut options(),
        )
        .unwrap()
        .results
    };
    let none = run("none");
    let random = run("random");
    let inscl = run("inscl");
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    // Without replay the two earlier tasks are forgotten: R[2] = [0, 0, 16.7].
    assert_eq!(none.scores.rows()[2], [0.0, 0.0, 50.0 / 3.0]);
    assert!(close(none.summary.forgetting, 200.0 / 3.0) && close(none.summary.bwt, -200.0 / 3.0));
    assert!(close(none.summary.ap, 50.0 / 9.0));
    // Replaying 4 / 8 instances keeps task 2's prior and half of task 1's.
    for replayed in [&random, &inscl] {
        assert_eq!(
            replayed.scores.rows()[2],
            [100.0 / 3.0, 200.0 / 3.0, 50.0 / 3.0]
        );
        assert!(
            close(replayed.summary.forgetting, 50.0 / 3.0)
                && close(replayed.summary.ap, 350.0 / 9.0)
        );
    }
    // FWT: diagonal mean 50 against zero-shot 0.
    assert!(close(none.summary.fwt.unwrap(), 50.0));
}

#[test]
fn inscl_replays_different_quotas_than_random() {
    let out = tempfile::tempdir().unwrap();
    let quotas = |strategy: &str| -> Vec<Vec<usize>> {
        let outcome = run::run(
            &category_config(strategy, out.path()),
            &mut MemorisingDouble::new(1000),
            &mut options(),
        )
        .unwrap();
        (2..=3)
            .map(|stage| {
                let record: StageRecord =
                    artifact::read(&RunFolder::new(&outcome.folder).stage(stage)).unwrap();
                record.plan.previous.iter().map(|p| p.quota).collect()
            })
            .collect()
    };
    let random = quotas("random");
    let inscl = quotas("inscl");
    // Random splits the budget evenly: 9 at stage 2; 9 + 9 over two tasks at stage 3.
    assert_eq!(random, vec![vec![9], vec![9, 9]]);
    assert_eq!(inscl[0], vec![9]);
    assert_eq!(inscl[1].iter().sum::<usize>(), 18);
    assert_ne!(
        inscl[1], random[1],
        "InsCL allocates by Wasserstein distance"
    );
}

#[test]
fn resume_after_crash_and_interrupt_equals_uninterrupted_run() {
    let out = tempfile::tempdir().unwrap();
    let mut reference_config = category_config("inscl", out.path());
    reference_config.output.name = Some("reference".into());
    let reference = run::run(
        &reference_config,
        &mut MemorisingDouble::new(20),
        &mut options(),
    )
    .unwrap();

    let mut config = category_config("inscl", out.path());
    config.output.name = Some("resumed".into());
    let folder = out.path().join("resumed");
    // Crash in the middle of stage 2.
    let mut crashing = MemorisingDouble::new(20);
    crashing.fail_at_stage = Some(2);
    let err = run::run(&config, &mut crashing, &mut options()).unwrap_err();
    assert!(
        matches!(
            err,
            RunError::ContinualLearner {
                stage: 2,
                what: "training",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("simulated crash at stage 2"));
    assert_eq!(RunFolder::new(&folder).finished_stages(), 1);
    assert!(!folder.join("stages/stage-02.json").exists());

    // Resuming into an existing folder needs --resume.
    let err = run::run(&config, &mut MemorisingDouble::new(20), &mut options()).unwrap_err();
    assert!(matches!(err, RunError::Exists { .. }), "{err}");

    // Resume, then Ctrl-C during stage 3.
    let flag = Arc::new(AtomicBool::new(false));
    let mut interrupted = MemorisingDouble::new(20);
    interrupted.interrupt_at_stage = Some((3, flag.clone()));
    let mut opts = options();
    opts.resume = Some(folder.clone());
    opts.interrupt = flag;
    let err = run::run(
        &run::resume_config(&folder).unwrap(),
        &mut interrupted,
        &mut opts,
    )
    .unwrap_err();
    assert!(
        matches!(err, RunError::Interrupted { stage: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--resume"));
    assert_eq!(RunFolder::new(&folder).finished_stages(), 2);

    // Resume again with a fresh learner: it must load the stage-2 checkpoint.
    let mut opts = options();
    opts.resume = Some(folder.clone());
    let resumed = run::run(
        &run::resume_config(&folder).unwrap(),
        &mut MemorisingDouble::new(20),
        &mut opts,
    )
    .unwrap();
    assert_eq!(resumed.results, reference.results);
    assert_eq!(
        support::artifacts(&folder),
        support::artifacts(&reference.folder)
    );
    let leftovers: Vec<_> = walk(&folder)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

#[test]
fn nan_loss_stops_without_half_written_files() {
    let out = tempfile::tempdir().unwrap();
    let config = config("inscl", out.path());
    let mut learner = MemorisingDouble::new(1000);
    learner.nan_at_stage = Some(2);
    let err = run::run(&config, &mut learner, &mut options()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            RunError::NonFiniteLoss {
                stage: 2,
                step: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains(
            "stage 2 (task \"task181_outcome_extraction\"): training loss is NaN at step 1"
        ),
        "{message}"
    );
    let folder = out.path().join(config.run_name());
    assert_eq!(RunFolder::new(&folder).finished_stages(), 1);
    assert!(!folder.join("checkpoints/stage-02").exists());
    let results: RunResults = artifact::read(&folder.join("results.json")).unwrap();
    assert_eq!(results.scores.stages(), 1);
    let leftovers: Vec<_> = walk(&folder)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn single_run_gives_upper_bounds_and_compare_reads_runs() {
    let out = tempfile::tempdir().unwrap();
    let single = run::run(
        &config("single", out.path()),
        &mut MemorisingDouble::new(14),
        &mut options(),
    )
    .unwrap();
    let diagonal = [200.0 / 3.0, 200.0 / 3.0, 50.0 / 3.0];
    assert_eq!(single.results.upper_bounds.as_deref(), Some(&diagonal[..]));
    // Each stage starts from the base model: earlier tasks score 0 after a later stage.
    assert_eq!(single.results.scores.rows()[2], [0.0, 0.0, 50.0 / 3.0]);
    // The method is recorded and shown (the test double trains alike under every method).
    let mut none_config = config("none", out.path());
    none_config.method = MethodConfig::named("ewc").unwrap();
    let none = run::run(&none_config, &mut MemorisingDouble::new(14), &mut options()).unwrap();
    assert_eq!(none.results.summary.relative_gain, None);
    assert!(
        none.folder.ends_with("none-ewc-a4-s0"),
        "{}",
        none.folder.display()
    );

    let rows = trainer::report::compare(&[&single.folder, &none.folder]).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].strategy.as_str(), rows[0].alpha, rows[0].seed),
        ("single", 4, 0)
    );
    assert_eq!(
        (rows[0].forgetting, rows[0].bwt, rows[0].fwt),
        (None, None, None)
    );
    assert_eq!(
        (rows[0].method.as_str(), rows[1].method.as_str()),
        ("seq", "ewc")
    );
    assert_eq!(rows[1].stages, "3/3");
    assert!((rows[1].forgetting.unwrap() - 200.0 / 3.0).abs() < 1e-9);
    // RG of `none` from the single run's diagonal: (0 + 0 + 16.7 / 16.7) / 3 × 100.
    assert!((rows[1].relative_gain.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    let table = trainer::report::format_compare(&rows);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].ends_with("AP   F.Ra     BWT    FWT     RG"),
        "{table}"
    );
    assert!(
        lines[2].ends_with("5.56  66.67  -66.67  50.00  33.33"),
        "{table}"
    );
    let printed = trainer::report::format_results(&none.results);
    assert!(
        printed.contains("stage 3") && printed.contains("zero-shot"),
        "{printed}"
    );
    assert!(
        printed.ends_with("AP 5.56  F.Ra 66.67  BWT -66.67  FWT 50.00  RG -"),
        "{printed}"
    );

    // The same bounds through eval.upper_bounds.
    let mut bounded = config("none", out.path());
    bounded.output.name = Some("bounded".into());
    bounded.eval.upper_bounds = Some(single.folder.display().to_string());
    let outcome = run::run(&bounded, &mut MemorisingDouble::new(14), &mut options()).unwrap();
    assert_eq!(outcome.results.upper_bounds.as_deref(), Some(&diagonal[..]));
    assert!((outcome.results.summary.relative_gain.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(RunStrategy::Single.to_string(), "single");
}
