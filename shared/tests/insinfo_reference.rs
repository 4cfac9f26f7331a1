//! `inscl::insinfo` against shared/fixtures/insinfo.json, produced by
//! tools/reference/insinfo_reference.py (NLTK Snowball stemmer, a plain-Python Levenshtein
//! distance and `math.log`).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::insinfo::{TagNormalizer, TagStatistics};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/insinfo.json")).expect("valid fixture")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .expect("array of strings")
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

fn tag_sets(value: &Value) -> Vec<Vec<String>> {
    value
        .as_array()
        .expect("array of sets")
        .iter()
        .map(strings)
        .collect()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array of numbers")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn normalization_matches_nltk_snowball() {
    let fixture = fixture();
    let cases = fixture["normalize"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for (stem, key) in [(true, "stemmed"), (false, "unstemmed")] {
        let normalizer = TagNormalizer {
            stem,
            merge_threshold: None,
        };
        for case in cases {
            let raw = case["raw"].as_str().unwrap();
            let expected = case[key].as_str().map(str::to_owned);
            assert_eq!(normalizer.normalize(raw), expected, "{key} {raw:?}");
        }
    }
}

#[test]
fn merging_matches_reference() {
    let fixture = fixture();
    let original = tag_sets(&fixture["merge"]["tag_sets"]);
    for case in fixture["merge"]["cases"].as_array().unwrap() {
        let threshold = case["threshold"].as_f64().unwrap();
        let mut sets = original.clone();
        TagNormalizer {
            stem: false,
            merge_threshold: Some(threshold),
        }
        .merge_near_duplicates(&mut sets);
        assert_eq!(sets, tag_sets(&case["expected"]), "threshold {threshold}");
    }
}

#[test]
fn insinfo_matches_reference_at_every_stage() {
    let fixture = fixture();
    let tasks: Vec<Vec<Vec<String>>> = fixture["statistics"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(tag_sets)
        .collect();
    for stage in fixture["statistics"]["stages"].as_array().unwrap() {
        let seen = stage["tasks_seen"].as_u64().unwrap() as usize;
        let stats =
            TagStatistics::from_instructions(tasks[..seen].iter().flatten().map(Vec::as_slice));
        assert_eq!(
            stats.instructions as u64,
            stage["instructions"].as_u64().unwrap()
        );
        let frequencies: Vec<(String, u64)> = stats
            .frequencies
            .iter()
            .map(|(tag, &f)| (tag.clone(), f as u64))
            .collect();
        let expected: Vec<(String, u64)> = stage["frequencies"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(tag, f)| (tag.clone(), f.as_u64().unwrap()))
            .collect();
        assert_eq!(frequencies, expected, "stage {seen}");

        for (task, (scores, weights)) in stage["insinfo"]
            .as_array()
            .unwrap()
            .iter()
            .zip(stage["normalized"].as_array().unwrap())
            .enumerate()
        {
            let instructions = &tasks[task];
            for (tags, expected) in instructions.iter().zip(floats(scores)) {
                let got = stats.insinfo(tags);
                assert!(
                    (got - expected).abs() <= 1e-12,
                    "stage {seen} task {task}: {got} vs {expected}"
                );
            }
            let got = stats.normalized_scores(instructions);
            let expected = floats(weights);
            assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                assert!(
                    (g - e).abs() <= 1e-12,
                    "stage {seen} task {task}: {got:?} vs {expected:?}"
                );
            }
        }
    }
}
