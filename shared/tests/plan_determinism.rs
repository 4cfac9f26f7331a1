//! The same seed gives the same plan on every target: these plans were printed by the native
//! `trainer plan --seed 11` (InsCL and random replay) and are recomputed here, also on wasm32.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::artifact::{ArtifactBody, EmbeddingsFile};
use inscl::plan::{PlanConfig, SequencePlan, plan_sequence};
use inscl::replay::Strategy;

const INPUT: &str = include_str!("../fixtures/plan_input.json");

fn check(strategy: Strategy, expected: &str) {
    let input = EmbeddingsFile::from_json("plan_input.json", INPUT).unwrap();
    let config = PlanConfig {
        strategy,
        seed: 11,
        ..PlanConfig::default()
    };
    let plan = plan_sequence(&input.tasks, &config).unwrap();
    let expected: SequencePlan = serde_json::from_str(expected).unwrap();
    for (row, want) in plan
        .distances
        .iter()
        .flatten()
        .zip(expected.distances.iter().flatten())
    {
        assert!(
            (row - want).abs() <= 1e-12 * want.abs().max(1.0),
            "W {row} vs native {want}"
        );
    }
    assert_eq!(plan.stages.len(), expected.stages.len());
    for (stage, want) in plan.stages.iter().zip(&expected.stages) {
        assert_eq!(
            (stage.stage, &stage.task, stage.budget),
            (want.stage, &want.task, want.budget)
        );
        for (task, want) in stage.previous.iter().zip(&want.previous) {
            assert_eq!(
                (&task.task, task.quota),
                (&want.task, want.quota),
                "stage {}",
                stage.stage
            );
            for (q, want) in task.instructions.iter().zip(&want.instructions) {
                assert_eq!(
                    (&q.id, &q.instances),
                    (&want.id, &want.instances),
                    "stage {}",
                    stage.stage
                );
                assert!((q.insinfo - want.insinfo).abs() < 1e-12);
            }
        }
    }
}

#[test]
fn inscl_plan_equals_the_native_plan() {
    check(
        Strategy::InsCL,
        include_str!("../fixtures/plan_inscl_seed11.json"),
    );
}

#[test]
fn random_plan_equals_the_native_plan() {
    check(
        Strategy::Random,
        include_str!("../fixtures/plan_random_seed11.json"),
    );
}

#[test]
fn last_stage_plan_equals_the_sequence_plan() {
    let input = EmbeddingsFile::from_json("plan_input.json", INPUT).unwrap();
    let mut config = PlanConfig {
        seed: 5,
        ..PlanConfig::default()
    };
    config.tags.merge_threshold = Some(0.8);
    let sequence = plan_sequence(&input.tasks, &config).unwrap();
    for t in 1..=input.tasks.len() {
        let last = inscl::plan::plan_last_stage(&input.tasks[..t], &config).unwrap();
        assert_eq!(last, sequence.stages[t - 1], "stage {t}");
    }
}

#[test]
fn planning_from_cached_distances_equals_planning_from_scratch() {
    use inscl::plan::{PlanError, plan_sequence_with_distances, task_distances};
    let input = EmbeddingsFile::from_json("plan_input.json", INPUT).unwrap();
    let config = PlanConfig {
        seed: 2,
        ..PlanConfig::default()
    };
    let distances = task_distances(&input.tasks, &config.similarity).unwrap();
    for alpha in [1, 37, 200] {
        let config = PlanConfig {
            alpha,
            ..config.clone()
        };
        assert_eq!(
            plan_sequence_with_distances(&input.tasks, distances.clone(), &config).unwrap(),
            plan_sequence(&input.tasks, &config).unwrap()
        );
    }
    let mut ragged = distances.clone();
    ragged[2].pop();
    let err = plan_sequence_with_distances(&input.tasks, ragged, &config).unwrap_err();
    assert!(
        matches!(err, PlanError::DistanceShape { tasks: 4 }),
        "{err}"
    );
    let mut negative = distances;
    negative[0][1] = -0.5;
    assert!(plan_sequence_with_distances(&input.tasks, negative, &config).is_err());
}
