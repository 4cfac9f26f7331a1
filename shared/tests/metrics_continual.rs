//! Continual-learning metrics: hand-computed matrices and an independent numpy reference
//! (`tools/reference/continual_reference.py`).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::metrics::continual::{
    average_performance, average_performance_per_stage, backward_transfer, forgetting,
    forgetting_rate, forward_transfer, relative_gain_per_stage,
};
use inscl::metrics::{ContinualSummary, MetricsError, ScoreMatrix};
use serde::Deserialize;

fn close(got: f64, expected: f64) -> bool {
    (got - expected).abs() <= 1e-9
}

fn assert_all_close(got: &[f64], expected: &[f64]) {
    assert_eq!(got.len(), expected.len(), "{got:?} vs {expected:?}");
    assert!(
        got.iter().zip(expected).all(|(g, e)| close(*g, *e)),
        "{got:?} vs {expected:?}"
    );
}

fn three() -> ScoreMatrix {
    ScoreMatrix::new(vec![vec![80.0], vec![60.0, 70.0], vec![50.0, 65.0, 90.0]]).unwrap()
}

/// Task 0 peaks after stage 1 (above its diagonal) and task 1 improves at the end, so F.Ra
/// and −BWT differ.
fn four() -> ScoreMatrix {
    ScoreMatrix::new(vec![
        vec![50.0],
        vec![60.0, 40.0],
        vec![55.0, 45.0, 70.0],
        vec![30.0, 50.0, 60.0, 80.0],
    ])
    .unwrap()
}

#[test]
fn three_stage_matrix_by_hand() {
    let r = three();
    assert_eq!(r.stages(), 3);
    assert_eq!(r.get(2, 1), Some(65.0));
    assert_eq!(r.get(0, 1), None);
    assert!(close(average_performance(&r), 205.0 / 3.0));
    assert_all_close(
        &average_performance_per_stage(&r),
        &[80.0, 65.0, 205.0 / 3.0],
    );
    // (80 − 50 + 70 − 65) / 2
    assert!(close(forgetting(&r), 17.5));
    assert!(close(backward_transfer(&r), -17.5));
    assert!(close(
        forward_transfer(&r, &[40.0, 50.0, 60.0]).unwrap(),
        30.0
    ));
    // Stage 2: (50/100 + 65/80 + 90/90) / 3 × 100.
    assert_all_close(
        &relative_gain_per_stage(&r, &[100.0, 80.0, 90.0]).unwrap(),
        &[80.0, 73.75, 231.25 / 3.0],
    );
    assert_eq!(forgetting_rate(&r), [Some(0.375), Some(5.0 / 70.0)]);
}

#[test]
fn four_stage_matrix_by_hand() {
    let r = four();
    assert!(close(average_performance(&r), 55.0));
    assert_all_close(
        &average_performance_per_stage(&r),
        &[50.0, 50.0, 170.0 / 3.0, 55.0],
    );
    // Best before the last stage: 60, 45, 70; final: 30, 50, 60.
    assert!(close(forgetting(&r), 35.0 / 3.0));
    // Diagonal 50, 40, 70; final: 30, 50, 60.
    assert!(close(backward_transfer(&r), -20.0 / 3.0));
    assert!(close(
        forward_transfer(&r, &[10.0, 20.0, 30.0, 40.0]).unwrap(),
        35.0
    ));
    let gains = relative_gain_per_stage(&r, &[100.0, 50.0, 70.0, 80.0]).unwrap();
    assert!(close(gains[3], 2210.0 / 28.0));
    let rates = forgetting_rate(&r);
    assert_eq!(rates.len(), 3);
    assert!(
        close(rates[0].unwrap(), 0.4)
            && close(rates[1].unwrap(), -0.25)
            && close(rates[2].unwrap(), 1.0 / 7.0)
    );

    let summary = ContinualSummary::from_scores(&r, Some(&[10.0, 20.0, 30.0, 40.0]), None).unwrap();
    assert!(
        close(summary.ap, 55.0)
            && close(summary.forgetting, 35.0 / 3.0)
            && close(summary.bwt, -20.0 / 3.0)
    );
    assert_eq!(summary.fwt, Some(35.0));
    assert_eq!(summary.relative_gain, None);
}

#[test]
fn single_stage_has_no_forgetting() {
    let r = ScoreMatrix::new(vec![vec![42.0]]).unwrap();
    assert_eq!(average_performance(&r), 42.0);
    assert_eq!(forgetting(&r), 0.0);
    assert_eq!(backward_transfer(&r), 0.0);
    assert!(forgetting_rate(&r).is_empty());
}

#[test]
fn forgetting_rate_is_none_for_a_zero_diagonal() {
    let r = ScoreMatrix::new(vec![vec![0.0], vec![0.0, 10.0]]).unwrap();
    assert_eq!(forgetting_rate(&r), [None]);
}

#[test]
fn shape_and_value_errors_name_the_offender() {
    assert_eq!(ScoreMatrix::new(vec![]), Err(MetricsError::Empty));
    assert_eq!(
        ScoreMatrix::new(vec![vec![1.0], vec![1.0]]),
        Err(MetricsError::RowLength {
            row: 1,
            expected: 2,
            got: 1
        })
    );
    let err = ScoreMatrix::new(vec![vec![1.0], vec![2.0, f64::INFINITY]]).unwrap_err();
    assert_eq!(
        err,
        MetricsError::NonFiniteScore {
            row: 1,
            column: 1,
            value: f64::INFINITY
        }
    );
    assert_eq!(err.to_string(), "score R[1][1] = inf is not finite");
    let nan = ScoreMatrix::new(vec![vec![f64::NAN]]).unwrap_err();
    assert!(
        matches!(nan, MetricsError::NonFiniteScore { row: 0, column: 0, value } if value.is_nan())
    );

    let r = three();
    let err = forward_transfer(&r, &[1.0, 2.0]).unwrap_err();
    assert_eq!(
        err,
        MetricsError::LengthMismatch {
            name: "zero_shot",
            expected: 3,
            got: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "zero_shot has 2 entries, expected 3 (one per task)"
    );
    assert_eq!(
        relative_gain_per_stage(&r, &[1.0, f64::NAN, 1.0]).map_err(|e| e.to_string()),
        Err("upper[1] = NaN is not finite".to_owned())
    );
    assert_eq!(
        ContinualSummary::from_scores(&r, None, Some(&[1.0, 2.0, 0.0])),
        Err(MetricsError::NonPositiveUpperBound {
            task: 2,
            value: 0.0
        })
    );
    assert_eq!(
        ContinualSummary::from_scores(&r, Some(&[0.0; 4]), None),
        Err(MetricsError::LengthMismatch {
            name: "zero_shot",
            expected: 3,
            got: 4
        })
    );
}

#[test]
fn square_input_keeps_the_lower_triangle() {
    let r = ScoreMatrix::from_square(vec![
        vec![80.0, 5.0, 6.0],
        vec![60.0, 70.0, f64::NAN],
        vec![50.0, 65.0, 90.0],
    ])
    .unwrap();
    assert_eq!(r, three());
    assert_eq!(
        ScoreMatrix::from_square(vec![vec![1.0, 2.0], vec![3.0]]),
        Err(MetricsError::RowLength {
            row: 1,
            expected: 2,
            got: 1
        })
    );
}

#[test]
fn serde_uses_triangular_rows_and_validates() {
    let json = serde_json::to_string(&three()).unwrap();
    assert_eq!(json, "[[80.0],[60.0,70.0],[50.0,65.0,90.0]]");
    assert_eq!(serde_json::from_str::<ScoreMatrix>(&json).unwrap(), three());
    let err = serde_json::from_str::<ScoreMatrix>("[[1.0, 2.0]]").unwrap_err();
    assert!(
        err.to_string().contains("row 0 has 2 entries, expected 1"),
        "{err}"
    );

    let summary =
        ContinualSummary::from_scores(&three(), None, Some(&[100.0, 80.0, 90.0])).unwrap();
    let value = serde_json::to_value(summary).unwrap();
    assert_eq!(value["bwt"], -17.5);
    assert_eq!(value["fwt"], serde_json::Value::Null);
    assert_eq!(
        serde_json::from_value::<ContinualSummary>(value).unwrap(),
        summary
    );
}

#[derive(Deserialize)]
struct Case {
    rows: Vec<Vec<f64>>,
    zero_shot: Vec<f64>,
    upper: Vec<f64>,
    ap: f64,
    ap_per_stage: Vec<f64>,
    forgetting: f64,
    bwt: f64,
    fwt: f64,
    relative_gain_per_stage: Vec<f64>,
    forgetting_rate: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[test]
fn matches_numpy_reference() {
    let fixture: Fixture =
        serde_json::from_str(include_str!("../fixtures/continual_reference.json")).unwrap();
    assert!(fixture.cases.len() >= 10);
    for case in &fixture.cases {
        let r = ScoreMatrix::new(case.rows.clone()).unwrap();
        let summary =
            ContinualSummary::from_scores(&r, Some(&case.zero_shot), Some(&case.upper)).unwrap();
        assert!(close(summary.ap, case.ap), "{:?}", case.rows);
        assert!(
            close(summary.forgetting, case.forgetting),
            "{:?}",
            case.rows
        );
        assert!(close(summary.bwt, case.bwt), "{:?}", case.rows);
        assert!(close(summary.fwt.unwrap(), case.fwt), "{:?}", case.rows);
        assert!(close(
            summary.relative_gain.unwrap(),
            *case.relative_gain_per_stage.last().unwrap()
        ));
        assert_all_close(&average_performance_per_stage(&r), &case.ap_per_stage);
        assert_all_close(
            &relative_gain_per_stage(&r, &case.upper).unwrap(),
            &case.relative_gain_per_stage,
        );
        let rates = forgetting_rate(&r);
        assert_eq!(rates.len(), case.forgetting_rate.len());
        for (got, expected) in rates.iter().zip(&case.forgetting_rate) {
            match (got, expected) {
                (Some(g), Some(e)) => assert!(close(*g, *e), "{g} vs {e}"),
                (None, None) => {}
                _ => panic!(
                    "forgetting rate {got:?} vs {expected:?} for {:?}",
                    case.rows
                ),
            }
        }
    }
    assert!(
        fixture
            .cases
            .iter()
            .any(|c| c.forgetting_rate.contains(&None))
    );
}
