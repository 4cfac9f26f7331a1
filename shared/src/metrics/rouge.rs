//! ROUGE-L and exact match as SuperNI scores generations.
//!
//! - [`rouge_l`] reproduces Google's `rouge-score` 0.1.2
//!   (`rouge_scorer.RougeScorer(['rougeL'], use_stemmer=stem).score(target, prediction)`):
//!   its default tokenizer (`rouge_score/tokenize.py`) and its sentence-level LCS score
//!   (`rouge_scorer._score_lcs`, `scoring.fmeasure`).
//! - [`rouge_l_max`] and [`exact_match`] take the maximum over the references of one instance,
//!   as SuperNI's `metric_max_over_ground_truths` does (Tk-Instruct `src/compute_metrics.py`,
//!   commit d8184fa, which calls `rougeL_score` with `use_stemmer=True` for English tasks).

use serde::{Deserialize, Serialize};

use super::porter;

/// Sentence-level ROUGE-L of one prediction against one reference; every field in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RougeScore {
    /// LCS length / number of prediction tokens.
    pub precision: f64,
    /// LCS length / number of reference tokens.
    pub recall: f64,
    /// Harmonic mean `2PR / (P + R)`; 0 when `P + R = 0`.
    pub fmeasure: f64,
}

impl RougeScore {
    const ZERO: Self = Self {
        precision: 0.0,
        recall: 0.0,
        fmeasure: 0.0,
    };
}

/// `rouge-score`'s default tokenizer (`tokenize.tokenize`): lower-case the text (Unicode
/// lower-casing, so e.g. the Kelvin sign `K` becomes `k`), treat every character outside
/// `[a-z0-9]` as a separator, and, when `stem` is set, replace each token longer than three
/// characters by its NLTK Porter stem ([`porter::stem`]).
///
/// The reference's final "drop empty or invalid tokens" filter never fires here: tokens are
/// non-empty `[a-z0-9]` runs and Porter stems of such tokens stay non-empty `[a-z0-9]` words.
///
/// ```
/// use inscl::metrics::rouge::tokenize;
/// assert_eq!(tokenize("The cats' 2nd-best toys!", false), ["the", "cats", "2nd", "best", "toys"]);
/// assert_eq!(tokenize("The cats' 2nd-best toys!", true), ["the", "cat", "2nd", "best", "toy"]);
/// ```
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|token| !token.is_empty())
        .map(|token| {
            if stem && token.len() > 3 {
                porter::stem(token)
            } else {
                token.to_owned()
            }
        })
        .collect()
}

/// Length of the longest common subsequence of two token sequences, by the textbook dynamic
/// programme (`rouge_scorer._lcs_table`) in O(|a|·|b|) time, keeping one row of the shorter
/// sequence (O(min(|a|, |b|)) memory).
fn lcs_length<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut row = vec![0usize; short.len() + 1];
    for item in long {
        // `diagonal` holds the previous row's value at column j-1.
        let mut diagonal = 0;
        for (j, other) in short.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if item == other {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    row[short.len()]
}

/// ROUGE-L of `prediction` against `reference` (`rouge_scorer._score_lcs`): with `l` the LCS
/// length of the token sequences ([`tokenize`]), `P = l / |prediction|`, `R = l / |reference|`,
/// `F = 2PR / (P + R)`. All three are 0 when either text has no tokens.
///
/// ```
/// use inscl::metrics::rouge::rouge_l;
/// let s = rouge_l("the cat sat", "the cat sat down", false);
/// assert_eq!((s.precision, s.recall), (1.0, 0.75));
/// ```
pub fn rouge_l(prediction: &str, reference: &str, stem: bool) -> RougeScore {
    let reference_tokens = tokenize(reference, stem);
    let prediction_tokens = tokenize(prediction, stem);
    if reference_tokens.is_empty() || prediction_tokens.is_empty() {
        return RougeScore::ZERO;
    }
    let lcs = lcs_length(&reference_tokens, &prediction_tokens) as f64;
    let precision = lcs / prediction_tokens.len() as f64;
    let recall = lcs / reference_tokens.len() as f64;
    // Same operation order as `scoring.fmeasure`, so results agree bit for bit.
    let fmeasure = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    RougeScore {
        precision,
        recall,
        fmeasure,
    }
}

/// ROUGE-L F-measure × 100 of `prediction` against its best reference (SuperNI's
/// `metric_max_over_ground_truths(rougeL_score, …)`, scaled as in its `compute_metrics`).
/// Returns a value in `[0, 100]`; 0 when `references` is empty.
pub fn rouge_l_max(prediction: &str, references: &[impl AsRef<str>], stem: bool) -> f64 {
    references
        .iter()
        .map(|reference| rouge_l(prediction, reference.as_ref(), stem).fmeasure)
        .fold(0.0, f64::max)
        * 100.0
}

/// SuperNI's answer normalisation (`normalize_answer` in Tk-Instruct `src/compute_metrics.py`,
/// adapted from the SQuAD v1.1 script): lower-case, delete ASCII punctuation (Python's
/// `string.punctuation`), collapse whitespace runs to one space and trim. SuperNI keeps
/// articles: its `remove_articles` step is commented out, so "the" stays.
fn normalize_answer(text: &str) -> String {
    // Python's `str.split()` also splits on the ASCII separators U+001C..U+001F, which
    // `char::is_whitespace` does not count as whitespace.
    let is_python_space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    let kept: String = text
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    kept.split(is_python_space)
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// SuperNI exact match: 100 if the normalised prediction equals some normalised reference
/// (see `normalize_answer`: lower-case, no ASCII punctuation, single spaces), else 0;
/// 0 when `references` is empty.
///
/// ```
/// use inscl::metrics::rouge::exact_match;
/// assert_eq!(exact_match("  Positive. ", &["negative", "positive"]), 100.0);
/// assert_eq!(exact_match("a positive", &["positive"]), 0.0);
/// ```
pub fn exact_match(prediction: &str, references: &[impl AsRef<str>]) -> f64 {
    let prediction = normalize_answer(prediction);
    if references
        .iter()
        .any(|reference| normalize_answer(reference.as_ref()) == prediction)
    {
        100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn lcs_of_known_sequences() {
        assert_eq!(lcs_length(b"ABCBDAB", b"BDCABA"), 4);
        assert_eq!(lcs_length(b"BDCABA", b"ABCBDAB"), 4);
        assert_eq!(lcs_length(b"", b"abc"), 0);
        assert_eq!(lcs_length(b"abc", b"abc"), 3);
        assert_eq!(lcs_length(b"abc", b"def"), 0);
    }

    #[test]
    fn empty_sides_score_zero() {
        assert_eq!(rouge_l("", "some words", true), RougeScore::ZERO);
        assert_eq!(rouge_l("?!", "some words", true), RougeScore::ZERO);
        assert_eq!(rouge_l("some words", " ", false), RougeScore::ZERO);
        assert_eq!(rouge_l_max("some words", &[] as &[&str], true), 0.0);
        assert_eq!(exact_match("", &[] as &[&str]), 0.0);
    }

    #[test]
    fn normalisation_follows_superni() {
        assert_eq!(normalize_answer(" The  Cat's\u{1f}hat!\n"), "the cats hat");
        assert_eq!(normalize_answer("«Ça»"), "«ça»");
    }
}
