//! `inscl::metrics::study` against scipy (shared/fixtures/study_reference.json, written by
//! tools/reference/study_reference.py): the t-interval, the exact sign-flip p-value and, within
//! Monte-Carlo error, the percentile bootstrap interval.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::metrics::study::{BOOTSTRAP_RESAMPLES, bootstrap_mean_ci, compare_paired, describe};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/study_reference.json")).expect("valid fixture")
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

#[test]
fn mean_sd_and_t_interval_match_scipy() {
    let cases = fixture()["describe"].as_array().unwrap().clone();
    assert!(cases.len() >= 5);
    for case in cases {
        let got = describe(&floats(&case["values"]));
        assert_eq!(got.n as u64, case["n"].as_u64().unwrap());
        assert!(close(got.mean, case["mean"].as_f64().unwrap(), 1e-12));
        assert!(close(got.sd.unwrap(), case["sd"].as_f64().unwrap(), 1e-12));
        let ci = floats(&case["ci95"]);
        let [low, high] = got.ci95.unwrap();
        // statrs' Student-t quantile agrees with scipy's to about 1e-9 relative.
        assert!(close(low, ci[0], 1e-8), "{low} vs {}", ci[0]);
        assert!(close(high, ci[1], 1e-8), "{high} vs {}", ci[1]);
    }
}

#[test]
fn paired_p_values_match_scipy_and_bootstrap_within_monte_carlo_error() {
    let cases = fixture()["paired"].as_array().unwrap().clone();
    assert!(cases.len() >= 5);
    for (i, case) in cases.iter().enumerate() {
        let (a, b) = (floats(&case["a"]), floats(&case["b"]));
        let got = compare_paired(&a, &b, 11);
        let want_p = case["p_value"].as_f64().unwrap();
        assert!(
            (got.p_value.unwrap() - want_p).abs() < 1e-12,
            "case {i}: p {} vs scipy {want_p}",
            got.p_value.unwrap()
        );
        let sd = case["difference"]["sd"].as_f64().unwrap();
        let n = a.len() as f64;
        // Quantiles of 10,000 vs 100,000 resampled means (and np.percentile's interpolation):
        // within a fifth of the mean's standard error.
        let tolerance = 0.2 * sd / n.sqrt();
        let want = floats(&case["bootstrap_ci95"]);
        let [low, high] = got.bootstrap_ci95.unwrap();
        assert!(
            (low - want[0]).abs() < tolerance,
            "case {i}: {low} vs {}",
            want[0]
        );
        assert!(
            (high - want[1]).abs() < tolerance,
            "case {i}: {high} vs {}",
            want[1]
        );
        assert_eq!(
            [low, high],
            bootstrap_mean_ci(
                &a.iter().zip(&b).map(|(x, y)| x - y).collect::<Vec<_>>(),
                BOOTSTRAP_RESAMPLES,
                11
            ),
            "seeded: the same interval again"
        );
    }
}
