//! End-to-end tests of `trainer plan` against an independent Python reference
//! (`tools/reference/plan_reference.py`: POT for the Wasserstein distances, NLTK for stemming).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const INPUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/plan_input.json"
);
const EXPECTED: &str = include_str!("../../shared/fixtures/plan_expected.json");

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .output()
        .expect("run trainer")
}

fn plan(args: &[&str]) -> Value {
    let out = trainer(&[&["plan", "--embeddings", INPUT], args].concat());
    assert!(
        out.status.success(),
        "trainer plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan output is JSON")
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-12)
}

fn quotas(stage: &Value) -> Vec<u64> {
    stage["previous"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["quota"].as_u64().unwrap())
        .collect()
}

#[test]
fn inscl_plan_matches_the_reference() {
    let expected: Value = serde_json::from_str(EXPECTED).unwrap();
    let plan = plan(&[]);
    assert_eq!(plan["tasks"], expected["tasks"]);
    for (row, expected_row) in plan["distances"]
        .as_array()
        .unwrap()
        .iter()
        .zip(expected["distances"].as_array().unwrap())
    {
        for (w, e) in row
            .as_array()
            .unwrap()
            .iter()
            .zip(expected_row.as_array().unwrap())
        {
            assert!(
                close(w.as_f64().unwrap(), e.as_f64().unwrap(), 1e-6),
                "W {w} vs POT {e}"
            );
        }
    }
    let stages = plan["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    for (stage, want) in stages.iter().zip(expected["stages"].as_array().unwrap()) {
        assert_eq!(stage["stage"], want["stage"]);
        assert_eq!(stage["task"], want["task"]);
        assert_eq!(stage["budget"], want["budget"]);
        let want_quotas: Vec<u64> = want["previous"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["quota"].as_u64().unwrap())
            .collect();
        assert_eq!(quotas(stage), want_quotas, "stage {}", stage["stage"]);
        for (task, want_task) in stage["previous"]
            .as_array()
            .unwrap()
            .iter()
            .zip(want["previous"].as_array().unwrap())
        {
            assert!(close(
                task["distance"].as_f64().unwrap(),
                want_task["distance"].as_f64().unwrap(),
                1e-6
            ));
            let instructions = task["instructions"].as_array().unwrap();
            for (q, want_score) in instructions
                .iter()
                .zip(want_task["insinfo"].as_array().unwrap())
            {
                assert!(
                    close(
                        q["insinfo"].as_f64().unwrap(),
                        want_score.as_f64().unwrap(),
                        1e-9
                    ),
                    "InsInfo of {} at stage {}: {} vs {}",
                    q["id"],
                    stage["stage"],
                    q["insinfo"],
                    want_score
                );
                assert_eq!(
                    q["replay"].as_u64().unwrap() as usize,
                    q["instances"].as_array().unwrap().len()
                );
            }
            let replayed: u64 = instructions
                .iter()
                .map(|q| q["replay"].as_u64().unwrap())
                .sum();
            assert_eq!(replayed, task["quota"].as_u64().unwrap());
        }
    }
}

#[test]
fn strategies_differ_and_seeds_are_reproducible() {
    let inscl = plan(&["--seed", "3"]);
    assert_eq!(inscl, plan(&["--seed", "3"]), "same seed, same plan");
    assert_ne!(
        inscl["stages"],
        plan(&["--seed", "4"])["stages"],
        "the seed changes the sampled instances"
    );

    let random = plan(&["--strategy", "random", "--seed", "3"]);
    assert_eq!(
        quotas(&random["stages"][3]),
        vec![200, 200, 200],
        "random replay splits the budget evenly"
    );
    assert_ne!(quotas(&random["stages"][3]), quotas(&inscl["stages"][3]));

    let none = plan(&["--strategy", "none"]);
    assert!(
        none["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["budget"] == 0)
    );

    let alpha = plan(&["--alpha", "10"]);
    assert_eq!(alpha["stages"][3]["budget"], 30);
}

#[test]
fn sinkhorn_and_uniform_weights_change_the_distances() {
    let exact = plan(&[]);
    let sinkhorn = plan(&["--solver", "sinkhorn", "--epsilon", "0.05"]);
    let uniform = plan(&["--weights", "uniform"]);
    let w = |p: &Value| p["distances"][0][1].as_f64().unwrap();
    assert!(w(&sinkhorn) > 0.0 && w(&sinkhorn) != w(&exact));
    assert!(w(&uniform) > 0.0 && w(&uniform) != w(&exact));
}

/// Runs `trainer plan` on `text` and returns its error message (the run must fail).
fn plan_error(text: &str) -> String {
    static FILES: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "inscl-plan-{}-{}.json",
        std::process::id(),
        FILES.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    let out = trainer(&["plan", "--embeddings", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();
    assert!(!out.status.success(), "malformed input must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn malformed_input_names_the_task_and_instruction() {
    let input: Value = serde_json::from_str(&std::fs::read_to_string(INPUT).unwrap()).unwrap();
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut value = input.clone();
        edit(&mut value);
        plan_error(&value.to_string())
    };

    let err = broken(&|v| {
        v["tasks"][1]["instructions"][2]["embedding"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    let id = input["tasks"][1]["instructions"][2]["id"].as_str().unwrap();
    assert!(
        err.contains("\"Text_Quality_Evaluation\"") && err.contains(id) && err.contains("ragged"),
        "{err}"
    );

    let err = broken(&|v| v["tasks"][2]["instructions"] = Value::Array(vec![]));
    assert!(err.contains("task \"Code\" has no instructions"), "{err}");

    let err = broken(&|v| {
        v["tasks"][0]["instructions"][0]
            .as_object_mut()
            .unwrap()
            .remove("count");
    });
    assert!(err.contains("missing field `count`"), "{err}");

    let err = broken(&|v| v["tasks"][3]["instructions"][1]["count"] = Value::from(0));
    assert!(
        err.contains("\"Detection\"") && err.contains("count must be at least 1"),
        "{err}"
    );

    let err = plan_error(&input.to_string().replacen("[", "[NaN, ", 1));
    assert!(err.contains("not valid JSON"), "{err}");

    let text = input.to_string();
    let err = plan_error(&text[..text.len() / 2]);
    assert!(err.contains("truncated"), "{err}");
}
