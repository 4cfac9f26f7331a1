//! ROUGE-L, exact match and the Porter stemmer against the Python reference
//! (`tools/reference/rouge_reference.py`: rouge-score 0.1.2, NLTK 3.10.4).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::metrics::{exact_match, porter, rouge_l, rouge_l_max, tokenize};
use serde::Deserialize;

#[derive(Deserialize)]
struct Prf {
    precision: f64,
    recall: f64,
    fmeasure: f64,
}

#[derive(Deserialize)]
struct Case {
    kind: String,
    prediction: String,
    references: Vec<String>,
    rouge_l: f64,
    rouge_l_stem: f64,
    first_stem: Prf,
    exact_match: f64,
}

#[derive(Deserialize)]
struct RougeFixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct PorterFixture {
    words: Vec<(String, String)>,
}

fn rouge_cases() -> Vec<Case> {
    serde_json::from_str::<RougeFixture>(include_str!("../fixtures/rouge_reference.json"))
        .unwrap()
        .cases
}

fn assert_close(got: f64, expected: f64, what: &str, case: &Case) {
    assert!(
        (got - expected).abs() <= 1e-9,
        "{what}: got {got}, expected {expected} ({} case, prediction {:?}, references {:?})",
        case.kind,
        case.prediction,
        case.references
    );
}

#[test]
fn rouge_l_max_matches_rouge_score_without_stemming() {
    let cases = rouge_cases();
    assert!(cases.len() >= 300);
    for case in &cases {
        assert_close(
            rouge_l_max(&case.prediction, &case.references, false),
            case.rouge_l,
            "rougeL",
            case,
        );
    }
}

#[test]
fn rouge_l_max_matches_rouge_score_with_stemming() {
    let cases = rouge_cases();
    // The fixture must contain cases where stemming changes the score, or this test could
    // not tell the two modes apart.
    assert!(cases.iter().filter(|c| c.rouge_l != c.rouge_l_stem).count() >= 20);
    for case in &cases {
        assert_close(
            rouge_l_max(&case.prediction, &case.references, true),
            case.rouge_l_stem,
            "rougeL stem",
            case,
        );
    }
}

#[test]
fn rouge_l_precision_recall_fmeasure_match_rouge_score() {
    for case in &rouge_cases() {
        let score = rouge_l(&case.prediction, &case.references[0], true);
        assert_close(
            score.precision,
            case.first_stem.precision,
            "precision",
            case,
        );
        assert_close(score.recall, case.first_stem.recall, "recall", case);
        assert_close(score.fmeasure, case.first_stem.fmeasure, "fmeasure", case);
    }
}

#[test]
fn exact_match_matches_superni() {
    let cases = rouge_cases();
    let matches = cases.iter().filter(|c| c.exact_match == 100.0).count();
    assert!(matches >= 20 && matches < cases.len());
    for case in &cases {
        assert_eq!(
            exact_match(&case.prediction, &case.references),
            case.exact_match,
            "prediction {:?}, references {:?}",
            case.prediction,
            case.references
        );
    }
}

#[test]
fn porter_stems_match_nltk() {
    let fixture: PorterFixture =
        serde_json::from_str(include_str!("../fixtures/porter_reference.json")).unwrap();
    assert!(fixture.words.len() >= 3000);
    let wrong: Vec<_> = fixture
        .words
        .iter()
        .filter_map(|(word, expected)| {
            let got = porter::stem(word);
            (&got != expected).then(|| format!("{word}: got {got}, NLTK {expected}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{} mismatches: {wrong:?}", wrong.len());
}

#[test]
fn tokenizer_handles_unicode_like_python_lower() {
    // U+212A KELVIN SIGN lower-cases to ASCII `k`; U+0130 to `i` + U+0307, which splits.
    assert_eq!(
        tokenize("\u{212a}ELVIN \u{130}stanbul café 3½", false),
        ["kelvin", "i", "stanbul", "caf", "3"]
    );
    assert_eq!(tokenize("", true), Vec::<String>::new());
}

#[test]
fn multi_reference_takes_the_best_reference() {
    let references = ["completely different words", "the cat sat on the mat"];
    let best = rouge_l_max("the cat sat on a mat", &references, true);
    assert!(
        (best - 100.0 * rouge_l("the cat sat on a mat", references[1], true).fmeasure).abs()
            < 1e-12
    );
    assert!((best - 500.0 / 6.0).abs() < 1e-9);
}
