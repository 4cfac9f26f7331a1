//! Loading, grouping, importing, exporting and comparing — the studio's logic. Runs natively
//! (`cargo test`) and in headless Chromium by wasm-bindgen-test (`scripts/test-studio`).

use inscl::artifact::{ArtifactBody, EmbeddingsFile, StudyFile};
use inscl::plan::{PlanConfig, plan_sequence};
use serde_json::{Value, json};
use studio::components::loss_view::ema;
use studio::components::metric_bars::spread_bars;
use studio::components::paired_view::paired_rows;
use studio::components::recompute::compare;
use studio::components::runs_table::{differing_keys, flatten_config};
use studio::components::study_curves::task_curve;
use studio::export::{csv, standalone_svg};
use studio::import::{hf_trainer_state, inscl_output_state};
use studio::load::{self, Parsed, check_size, group, parse, run_folder};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

const PLAN_INPUT: &str = include_str!("../../shared/fixtures/plan_input.json");
const PLAN_EXPECTED: &str = include_str!("../../shared/fixtures/plan_expected.json");
/// The example study shipped with the studio (its numbers change when it is replaced).
const EXAMPLE_STUDY: &str = include_str!("../../public/example-study/study.json");

/// A results artifact with a 2-stage score matrix.
fn results_json() -> String {
    json!({
        "schema_version": 1, "kind": "results", "tasks": ["a", "b"],
        "scores": [[50.0], [40.0, 60.0]], "zero_shot": null, "upper_bounds": null,
        "summary": {"ap": 50.0, "forgetting": 10.0, "bwt": -10.0, "fwt": null, "relative_gain": null}
    })
    .to_string()
}

fn message(path: &str, text: &str) -> String {
    parse(path, text).expect_err("must be rejected").message
}

#[test]
fn broken_files_get_messages_naming_file_and_problem() {
    let m = message("run-a/results.json", "this is not json");
    assert!(m.starts_with("run-a/results.json: not valid JSON"), "{m}");
    let text = results_json();
    let m = message("results.json", &text[..text.len() / 2]);
    assert!(m.starts_with("results.json: truncated JSON"), "{m}");
    let m = message(
        "results.json",
        &text.replace("\"schema_version\":1", "\"schema_version\":7"),
    );
    assert!(m.contains("schema_version 7 is not supported"), "{m}");
    let m = message("x.json", r#"{"schema_version": 1, "kind": "checkpoint"}"#);
    assert!(
        m.starts_with("x.json: invalid artifact") && m.contains("checkpoint"),
        "{m}"
    );
    let m = message("x.json", r#"{"kind": "results"}"#);
    assert!(m.contains("no \"schema_version\""), "{m}");
}

#[test]
fn files_over_the_limit_are_refused_by_size() {
    assert!(check_size("big.json", load::MAX_FILE_BYTES).is_ok());
    let e = check_size("big.json", 250 * 1_000_000).unwrap_err();
    assert_eq!(e.file, "big.json");
    assert_eq!(
        e.message,
        "big.json: 250.0 MB is too large (the studio reads files up to 200 MB)"
    );
}

#[test]
fn files_are_grouped_into_runs_by_folder() {
    assert_eq!(run_folder("runs/a/stages/stage-01.json"), "runs/a");
    assert_eq!(run_folder("runs/a/run.json"), "runs/a");
    assert_eq!(run_folder("stages/stage-01.json"), "");
    assert_eq!(run_folder("results.json"), "");
    let results = || parse("x", &results_json()).unwrap();
    let runs = group(vec![
        ("runs/a/results.json".into(), results()),
        ("runs/b/results.json".into(), results()),
        ("loose.json".into(), results()),
    ])
    .runs;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["", "a", "b"], "loose files form one unnamed group");
    assert!(
        runs.iter()
            .all(|r| r.results.as_ref().unwrap().scores.get(1, 1) == Some(60.0))
    );
}

#[test]
fn inscl_output_state_becomes_a_score_matrix() {
    let lines = [
        r#"{"data_category": "a", "model_category": "out/1", "rouge-l": {"f": 0.5, "p": 0.5, "r": 0.5}}"#,
        r#"{"data_category": "a", "model_category": "out/2", "rouge-l": 0.4}"#,
        r#"{"data_category": "b", "model_category": "out/2", "rouge-l": 0.6}"#,
    ]
    .join("\n");
    let results = inscl_output_state("output_state.jsonl", &lines).unwrap();
    assert_eq!(results.tasks, ["a", "b"]);
    assert_eq!(results.scores.rows(), [vec![50.0], vec![40.0, 60.0]]);
    assert!((results.summary.ap - 50.0).abs() < 1e-12);
    assert!((results.summary.bwt + 10.0).abs() < 1e-12);
    let holes = inscl_output_state(
        "o.jsonl",
        &lines.lines().take(2).collect::<Vec<_>>().join("\n"),
    );
    assert_eq!(
        holes.unwrap_err().to_string(),
        "o.jsonl: no score of task \"#2\" after stage 2 (\"out/2\")"
    );
    let Parsed::Imported(run) = parse("inscl/output_state.jsonl", &lines).unwrap() else {
        panic!("a .jsonl file is an import");
    };
    assert_eq!(run.name, "inscl");
}

#[test]
fn hf_trainer_state_gives_the_loss_curve() {
    let text = r#"{"log_history": [{"step": 10, "loss": 2.5, "learning_rate": 1e-4},
        {"step": 10, "eval_loss": 2.0}, {"step": 20, "loss": 1.5}]}"#;
    let loss = hf_trainer_state("trainer_state.json", text).unwrap();
    assert_eq!(
        loss.iter().map(|p| (p.step, p.loss)).collect::<Vec<_>>(),
        [(10, 2.5), (20, 1.5)]
    );
    assert_eq!(loss[0].lr, 1e-4);
    let Parsed::Imported(run) = parse("ckpt/trainer_state.json", text).unwrap() else {
        panic!("log_history without schema_version is an import");
    };
    assert_eq!(run.imported_loss.len(), 2);
    assert!(hf_trainer_state("t.json", r#"{"log_history": []}"#).is_err());
}

#[test]
fn csv_quotes_fields_and_svg_gets_its_namespace() {
    let doc = csv(&["a", "b"], &[vec!["1,5".into(), "say \"hi\"".into()]]);
    assert_eq!(doc, "a,b\n\"1,5\",\"say \"\"hi\"\"\"\n");
    assert_eq!(
        standalone_svg("<svg width=\"1\"></svg>"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1\"></svg>"
    );
}

#[test]
fn config_fields_flatten_and_only_differences_remain() {
    let a = flatten_config(&json!({"lr": 1e-4, "lora": {"rank": 8}, "tasks": ["x", "y"]}));
    let b = flatten_config(&json!({"lr": 2e-4, "lora": {"rank": 8}, "tasks": ["x", "z"]}));
    assert_eq!(a["lora.rank"], "8");
    assert_eq!(a["tasks.1"], "y");
    assert_eq!(differing_keys(&[a, b]), ["lr", "tasks.1"]);
}

#[test]
fn ema_smooths_like_tensorboard() {
    assert_eq!(ema(&[1.0, 3.0, 3.0], 0.5), [1.0, 2.0, 2.5]);
    assert_eq!(ema(&[1.0, 3.0], 0.0), [1.0, 3.0]);
}

/// The plan recomputed in the browser equals the POT/NLTK reference of `trainer plan`'s tests.
#[test]
fn recomputed_plan_matches_the_reference_and_compares_with_itself() {
    let input = EmbeddingsFile::from_json("plan_input.json", PLAN_INPUT).unwrap();
    let plan = plan_sequence(&input.tasks, &PlanConfig::default()).unwrap();
    let expected: Value = serde_json::from_str(PLAN_EXPECTED).unwrap();
    for (stage, reference) in plan
        .stages
        .iter()
        .zip(expected["stages"].as_array().unwrap())
    {
        for (got, want) in stage
            .previous
            .iter()
            .zip(reference["previous"].as_array().unwrap())
        {
            assert_eq!(
                got.quota as u64,
                want["quota"].as_u64().unwrap(),
                "stage {}",
                stage.stage
            );
            let w = want["distance"].as_f64().unwrap();
            assert!(
                (got.distance - w).abs() < 1e-9 * w,
                "stage {}: {} vs {w}",
                stage.stage,
                got.distance
            );
        }
    }
    let recorded: Vec<_> = plan.stages.iter().collect();
    let rows = compare(&recorded, &plan);
    assert_eq!(rows.len(), 1 + 2 + 3);
    assert!(
        rows.iter()
            .all(|r| !r.quota_changed() && r.changed_instructions == 0)
    );
    let smaller = plan_sequence(
        &input.tasks,
        &PlanConfig {
            alpha: 10,
            ..PlanConfig::default()
        },
    )
    .unwrap();
    let rows = compare(&recorded, &smaller);
    assert!(
        rows.iter()
            .all(studio::components::recompute::QuotaRow::quota_changed),
        "every quota shrinks with α = 10"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.stage == 4)
            .map(|r| r.recomputed.1)
            .sum::<usize>(),
        30
    );
}

#[test]
fn a_study_folder_loads_the_study_and_one_run_per_cell() {
    let study = parse("studies/x/study.json", EXAMPLE_STUDY).unwrap();
    let results = || parse("x", &results_json()).unwrap();
    let loaded = group(vec![
        ("studies/x/study.json".into(), study),
        ("studies/x/runs/a/results.json".into(), results()),
        ("studies/x/runs/b/results.json".into(), results()),
    ]);
    let names: Vec<&str> = loaded.runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"], "study.json is not a run");
    assert_eq!(loaded.studies.len(), 1);
    let expected = StudyFile::from_json("study.json", EXAMPLE_STUDY).unwrap();
    assert_eq!(loaded.studies[0], expected);
}

/// The example study with a methods axis: every cell, summary and curve again as an `ewc` arm,
/// its values 1 higher.
fn methods_study() -> StudyFile {
    let mut study = StudyFile::from_json("study.json", EXAMPLE_STUDY).unwrap();
    study.methods = vec!["seq".into(), "ewc".into()];
    let shift = |values: &mut std::collections::BTreeMap<String, f64>| {
        for v in values.values_mut() {
            *v += 1.0;
        }
    };
    let mut cells = study.cells.clone();
    for cell in &mut cells {
        cell.method = "ewc".into();
        cell.run = cell.run.replacen('-', "+ewc-", 1);
        shift(&mut cell.metrics);
    }
    study.cells.extend(cells);
    let mut summaries = study.summaries.clone();
    for summary in &mut summaries {
        summary.method = "ewc".into();
        for d in summary.metrics.values_mut() {
            d.mean += 1.0;
            d.ci95 = d.ci95.map(|[l, h]| [l + 1.0, h + 1.0]);
        }
    }
    study.summaries.extend(summaries);
    study
}

#[test]
fn study_bars_hold_each_arm_summary_and_its_runs() {
    for study in [
        StudyFile::from_json("study.json", EXAMPLE_STUDY).unwrap(),
        methods_study(),
    ] {
        check_bars(&study);
    }
    let study = methods_study();
    let labels: Vec<String> = spread_bars(&study, "ap")
        .into_iter()
        .map(|b| b.arm)
        .collect();
    let expected: Vec<String> = ["", "+ewc"]
        .iter()
        .flat_map(|m| study.strategies.iter().map(move |s| format!("{s}{m}")))
        .collect();
    assert_eq!(labels, expected, "seq arms by strategy, then the ewc arms");
}

/// Each bar of `study` is its arm's summary with one dot per run of the arm.
fn check_bars(study: &StudyFile) {
    for metric in StudyFile::METRICS {
        let bars = spread_bars(study, metric);
        assert_eq!(
            bars.iter().map(|b| b.arm.clone()).collect::<Vec<_>>(),
            study
                .arms()
                .iter()
                .map(inscl::artifact::StudyArm::label)
                .collect::<Vec<_>>()
        );
        for bar in bars {
            let summary = study
                .summaries
                .iter()
                .find(|s| s.arm().label() == bar.arm)
                .and_then(|s| s.metrics.get(metric));
            assert_eq!(bar.n, summary.map_or(0, |d| d.n), "{metric}");
            assert_eq!(bar.mean, summary.map(|d| d.mean), "{metric}");
            assert_eq!(bar.ci95, summary.and_then(|d| d.ci95), "{metric}");
            assert_eq!(bar.runs.len(), bar.n, "one dot per run with {metric}");
            let mean = bar.runs.iter().map(|r| r.1).sum::<f64>() / bar.n as f64;
            assert!((mean - bar.mean.unwrap()).abs() < 1e-9, "{metric}");
            let ewc_runs = bar.runs.iter().filter(|r| r.0.contains("+ewc-")).count();
            assert!(
                ewc_runs == 0 || ewc_runs == bar.n,
                "{}: runs of its own arm only",
                bar.arm
            );
        }
    }
}

#[test]
fn paired_rows_follow_the_comparisons_metric_by_metric() {
    let study = StudyFile::from_json("study.json", EXAMPLE_STUDY).unwrap();
    let rows = paired_rows(&study, &StudyFile::METRICS);
    let expected: Vec<(&str, &str, &str)> = StudyFile::METRICS
        .iter()
        .flat_map(|m| {
            study
                .comparisons
                .iter()
                .filter(|c| c.metrics.contains_key(*m))
                .map(|c| (c.a.as_str(), c.b.as_str(), *m))
        })
        .collect();
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.a.as_str(), r.b.as_str(), r.metric))
        .collect();
    assert_eq!(got, expected);
    assert!(!rows.is_empty());
    for row in &rows {
        let comparison = study
            .comparisons
            .iter()
            .find(|c| c.a == row.a && c.b == row.b)
            .unwrap();
        assert_eq!(row.paired, comparison.metrics[row.metric]);
        assert_eq!(row.label(), format!("{} − {}", row.a, row.b));
    }
}

#[test]
fn task_curve_runs_from_the_stage_that_learns_the_task_with_a_band_of_one_sd() {
    let study = StudyFile::from_json("study.json", EXAMPLE_STUDY).unwrap();
    let curves = &study.curves[0];
    let last = curves.tasks.len() - 1;
    let series = task_curve(curves, &curves.tasks[last]);
    assert_eq!(
        series.points,
        [(last as f64 + 1.0, curves.mean[last][last])]
    );
    let series = task_curve(curves, &curves.tasks[0]);
    assert_eq!(series.name, curves.strategy);
    let ewc = inscl::artifact::ScoreCurves {
        method: "ewc".into(),
        ..curves.clone()
    };
    assert_eq!(
        task_curve(&ewc, &curves.tasks[0]).name,
        format!("{}+ewc", curves.strategy)
    );
    assert_eq!(series.points.len(), curves.mean.len());
    for (i, ((stage, mean), (low, high))) in series.points.iter().zip(&series.band).enumerate() {
        assert_eq!(*stage, i as f64 + 1.0);
        assert_eq!(*mean, curves.mean[i][0]);
        assert_eq!(
            (*low, *high),
            (mean - curves.sd[i][0], mean + curves.sd[i][0])
        );
    }
    assert!(task_curve(curves, "no such task").points.is_empty());
}

#[test]
fn pairs_are_balanced_over_workers_once_each() {
    use studio::distance_workers::balance_pairs;
    let sizes = [10, 20, 30, 40];
    let pairs: Vec<_> = (0..4)
        .flat_map(|i| (i + 1..4).map(move |j| (i, j)))
        .collect();
    let batches = balance_pairs(&pairs, &sizes, 2);
    let loads: Vec<usize> = batches
        .iter()
        .map(|b| b.iter().map(|&(i, j)| sizes[i] * sizes[j]).sum())
        .collect();
    // Work 200, 300, 400, 600, 800, 1200: longest first to the lighter batch gives
    // 1200 + 400 + 200 and 800 + 600 + 300.
    assert_eq!(loads, [1800, 1700]);
    assert_eq!(batches[0], [(0, 1), (0, 3), (2, 3)], "in the pairs' order");
    let mut all = batches.concat();
    all.sort_unstable();
    assert_eq!(all, pairs, "every pair once");
    let spread = balance_pairs(&pairs, &sizes, 8);
    assert_eq!(spread.iter().filter(|b| b.len() == 1).count(), 6);
    assert_eq!(balance_pairs(&pairs, &sizes, 1), [pairs]);
}
