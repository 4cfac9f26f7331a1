//! Budget allocation of `inscl::replay` against shared/fixtures/insinfo.json, produced by
//! tools/reference/insinfo_reference.py after the official InsCL code's `cal_dynamic_num`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::replay::{allocate_dynamic, allocate_uniform};
use serde_json::Value;

fn counts(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("array of integers")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

#[test]
fn allocations_match_reference() {
    let fixture: Value =
        serde_json::from_str(include_str!("../fixtures/insinfo.json")).expect("valid fixture");
    let cases = fixture["allocation"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for (i, case) in cases.iter().enumerate() {
        let distances: Vec<f64> = case["distance_bits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bits| f64::from_bits(bits.as_u64().unwrap()))
            .collect();
        let budget = case["budget"].as_u64().unwrap() as usize;
        assert_eq!(
            allocate_dynamic(&distances, budget),
            counts(&case["dynamic"]),
            "case {i}: dynamic {distances:?}, budget {budget}"
        );
        assert_eq!(
            allocate_uniform(distances.len(), budget),
            counts(&case["uniform"]),
            "case {i}: uniform, budget {budget}"
        );
    }
}
