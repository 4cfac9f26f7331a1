//! The Porter stemmer exactly as NLTK's `PorterStemmer()` runs it (default mode
//! `NLTK_EXTENSIONS`, `nltk/stem/porter.py`, checked against NLTK 3.10.4), which is the stemmer behind
//! `rouge-score`'s `use_stemmer=True`.
//!
//! Porter, M. "An algorithm for suffix stripping." *Program* 14.3 (1980): 130–137, plus the
//! NLTK extensions: the irregular-forms pool (`skies → sky`, `dying → die`, …), words of at
//! most two characters left alone, `-ies`/`-ied` on four-letter words (`dies → die`),
//! Step 1c's `(*c and not c) Y → I`, Step 2's `-alli` first pass, `-fulli` and `-logi`
//! rules, and the two-letter `*o` condition. No crates.io stemmer reproduces this variant
//! (`porter-stemmer` 0.1.2 is Martin Porter's frozen version and differs on ~2% of the
//! benchmark vocabulary; `rust-stemmers` is Porter2/Snowball), hence this port.
//!
//! Characters are classified per Unicode scalar value as NLTK classifies Python code points:
//! `a e i o u` are vowels, `y` is a vowel exactly when it follows a consonant, and every other
//! character (digits and non-ASCII letters included) is a consonant.

/// NLTK's irregular forms (`PorterStemmer.__init__`): whole words mapped straight to a stem.
fn irregular_form(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

/// Consonant flag of every character (`true` = consonant), NLTK's `_consonant_flags`: a `y`
/// is a consonant at the start of a word or after a vowel.
fn consonant_flags(word: &str) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for ch in word.chars() {
        let consonant = match ch {
            'a' | 'e' | 'i' | 'o' | 'u' => false,
            'y' => flags.last().is_none_or(|&previous| !previous),
            _ => true,
        };
        flags.push(consonant);
    }
    flags
}

/// The measure `m` of `[C](VC){m}[V]`: the number of vowel→consonant transitions.
fn measure(stem: &str) -> usize {
    consonant_flags(stem)
        .windows(2)
        .filter(|pair| !pair[0] && pair[1])
        .count()
}

fn has_positive_measure(stem: &str) -> bool {
    measure(stem) > 0
}

fn measure_gt_1(stem: &str) -> bool {
    measure(stem) > 1
}

/// `*v*`: the stem contains a vowel.
fn contains_vowel(stem: &str) -> bool {
    consonant_flags(stem).contains(&false)
}

/// `*d`: the word ends with a double consonant.
fn ends_double_consonant(word: &str) -> bool {
    let mut tail = word.chars().rev();
    match (tail.next(), tail.next()) {
        (Some(last), Some(before)) => last == before && consonant_flags(word).last() == Some(&true),
        _ => false,
    }
}

/// `*o`: the word ends consonant–vowel–consonant and the last consonant is not `w`, `x` or
/// `y`; NLTK also accepts a two-letter word vowel–consonant (so `ow`, `ap`, … count).
fn ends_cvc(word: &str) -> bool {
    let flags = consonant_flags(word);
    match *flags.as_slice() {
        [.., true, false, true] => !word.ends_with(['w', 'x', 'y']),
        [false, true] => true,
        _ => false,
    }
}

/// A suffix rule: `(suffix, replacement, condition on the stem left after removing suffix)`.
type Rule<'a> = (&'static str, &'static str, &'a dyn Fn(&str) -> bool);

/// NLTK's `_apply_rule_list`: the FIRST rule whose suffix ends the word decides — its
/// replacement applies if its condition holds on the stem, otherwise the word is returned
/// unchanged and later rules are not tried.
fn apply_rules(word: &str, rules: &[Rule<'_>]) -> String {
    rules
        .iter()
        .find_map(|&(suffix, replacement, condition)| {
            word.strip_suffix(suffix).map(|stem| {
                if condition(stem) {
                    format!("{stem}{replacement}")
                } else {
                    word.to_owned()
                }
            })
        })
        .unwrap_or_else(|| word.to_owned())
}

fn always(_: &str) -> bool {
    true
}

/// Step 1a: plurals (`sses → ss`, `ies → i`, `ss → ss`, `s → `); NLTK maps a four-letter
/// `-ies` word to `-ie` (`dies → die`, but `flies → fli`).
fn step1a(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies")
        && word.chars().count() == 4
    {
        return format!("{stem}ie");
    }
    apply_rules(
        word,
        &[
            ("sses", "ss", &always),
            ("ies", "i", &always),
            ("ss", "ss", &always),
            ("s", "", &always),
        ],
    )
}

/// Step 1b: `-eed`, `-ed`, `-ing`, then the clean-up of the remaining stem (`at → ate`,
/// `bl → ble`, `iz → ize`, undoubling, `(m=1 and *o) → +e`). NLTK first maps `-ied` to `-ie`
/// on four-letter words and to `-i` otherwise.
fn step1b(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ied") {
        let replacement = if word.chars().count() == 4 { "ie" } else { "i" };
        return format!("{stem}{replacement}");
    }
    if let Some(stem) = word.strip_suffix("eed") {
        return if has_positive_measure(stem) {
            format!("{stem}ee")
        } else {
            word.to_owned()
        };
    }
    let Some(stem) = ["ed", "ing"]
        .iter()
        .find_map(|suffix| word.strip_suffix(suffix))
        .filter(|stem| contains_vowel(stem))
    else {
        return word.to_owned();
    };
    // `at → ate`, `bl → ble`, `iz → ize`: restore the `e` so Step 4 can see `-ate`, `-ble`, `-ize`.
    if stem.ends_with("at") || stem.ends_with("bl") || stem.ends_with("iz") {
        return format!("{stem}e");
    }
    if ends_double_consonant(stem) {
        // The double letter is a consonant, and `l`, `s`, `z` keep both copies (`fall`, `hiss`).
        return if stem.ends_with(['l', 's', 'z']) {
            stem.to_owned()
        } else {
            let mut undoubled = stem.to_owned();
            undoubled.pop();
            undoubled
        };
    }
    if measure(stem) == 1 && ends_cvc(stem) {
        format!("{stem}e")
    } else {
        stem.to_owned()
    }
}

/// Step 1c, NLTK's variant `(*c and not c) Y → I`: `y` becomes `i` after a consonant unless
/// that consonant is the whole stem (`happy → happi`, `enjoy`, `by` unchanged).
fn step1c(word: &str) -> String {
    let condition =
        |stem: &str| stem.chars().count() > 1 && consonant_flags(stem).last() == Some(&true);
    apply_rules(word, &[("y", "i", &condition)])
}

/// Step 2: `(m>0)` double-suffix reductions (`-ational → -ate`, `-iveness → -ive`, …) with
/// NLTK's `-bli → -ble`, `-fulli → -ful` and `-logi → -log` (whose condition keeps the `l` in
/// the stem), after a first pass that maps `-alli → -al` and re-runs the step.
fn step2(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("alli")
        && has_positive_measure(stem)
    {
        return step2(&format!("{stem}al"));
    }
    let logi_condition = |stem: &str| has_positive_measure(&word[..stem.len() + 1]);
    apply_rules(
        word,
        &[
            ("ational", "ate", &has_positive_measure),
            ("tional", "tion", &has_positive_measure),
            ("enci", "ence", &has_positive_measure),
            ("anci", "ance", &has_positive_measure),
            ("izer", "ize", &has_positive_measure),
            ("bli", "ble", &has_positive_measure),
            ("alli", "al", &has_positive_measure),
            ("entli", "ent", &has_positive_measure),
            ("eli", "e", &has_positive_measure),
            ("ousli", "ous", &has_positive_measure),
            ("ization", "ize", &has_positive_measure),
            ("ation", "ate", &has_positive_measure),
            ("ator", "ate", &has_positive_measure),
            ("alism", "al", &has_positive_measure),
            ("iveness", "ive", &has_positive_measure),
            ("fulness", "ful", &has_positive_measure),
            ("ousness", "ous", &has_positive_measure),
            ("aliti", "al", &has_positive_measure),
            ("iviti", "ive", &has_positive_measure),
            ("biliti", "ble", &has_positive_measure),
            ("fulli", "ful", &has_positive_measure),
            ("logi", "log", &logi_condition),
        ],
    )
}

/// Step 3: `(m>0)` `-icate`, `-ative`, `-alize`, `-iciti`, `-ical`, `-ful`, `-ness`.
fn step3(word: &str) -> String {
    apply_rules(
        word,
        &[
            ("icate", "ic", &has_positive_measure),
            ("ative", "", &has_positive_measure),
            ("alize", "al", &has_positive_measure),
            ("iciti", "ic", &has_positive_measure),
            ("ical", "ic", &has_positive_measure),
            ("ful", "", &has_positive_measure),
            ("ness", "", &has_positive_measure),
        ],
    )
}

/// Step 4: `(m>1)` removal of `-al`, `-ance`, …, `-ize`; `-ion` only after `s` or `t`.
fn step4(word: &str) -> String {
    let ion_condition = |stem: &str| measure(stem) > 1 && stem.ends_with(['s', 't']);
    apply_rules(
        word,
        &[
            ("al", "", &measure_gt_1),
            ("ance", "", &measure_gt_1),
            ("ence", "", &measure_gt_1),
            ("er", "", &measure_gt_1),
            ("ic", "", &measure_gt_1),
            ("able", "", &measure_gt_1),
            ("ible", "", &measure_gt_1),
            ("ant", "", &measure_gt_1),
            ("ement", "", &measure_gt_1),
            ("ment", "", &measure_gt_1),
            ("ent", "", &measure_gt_1),
            ("ion", "", &ion_condition),
            ("ou", "", &measure_gt_1),
            ("ism", "", &measure_gt_1),
            ("ate", "", &measure_gt_1),
            ("iti", "", &measure_gt_1),
            ("ous", "", &measure_gt_1),
            ("ive", "", &measure_gt_1),
            ("ize", "", &measure_gt_1),
        ],
    )
}

/// Step 5a: drop a final `e` if `m>1`, or if `m=1` and the stem does not end `*o`. Both
/// conditions are tried (unlike the first-match rule lists), as in NLTK.
fn step5a(word: &str) -> String {
    match word.strip_suffix('e') {
        Some(stem) if measure(stem) > 1 || (measure(stem) == 1 && !ends_cvc(stem)) => {
            stem.to_owned()
        }
        _ => word.to_owned(),
    }
}

/// Step 5b: `(m>1 and *d and *L)` → single letter (`controll → control`); NLTK measures the
/// word minus one `l`.
fn step5b(word: &str) -> String {
    let condition = |stem: &str| measure(&word[..stem.len() + 1]) > 1;
    apply_rules(word, &[("ll", "l", &condition)])
}

/// Stem one word as NLTK's `PorterStemmer().stem(word)` does (NLTK_EXTENSIONS mode,
/// `to_lowercase=True`).
///
/// The word is lower-cased first; irregular forms are looked up; words of at most two
/// characters (counted before lower-casing, as NLTK does) are returned lower-cased; all
/// others go through Steps 1a–5b. Any string is accepted (the empty string stems to
/// itself); `rouge-score` only passes `[a-z0-9]` tokens longer than three characters.
///
/// ```
/// use inscl::metrics::porter::stem;
/// assert_eq!(stem("Relational"), "relat");
/// assert_eq!(stem("flies"), "fli");
/// assert_eq!(stem("dies"), "die");
/// assert_eq!(stem("skies"), "sky");
/// ```
pub fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(irregular) = irregular_form(&lower) {
        return irregular.to_owned();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    [step1a, step1b, step1c, step2, step3, step4, step5a, step5b]
        .iter()
        .fold(lower, |current, step| step(&current))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn measure_matches_the_paper_examples() {
        for (word, m) in [
            ("tr", 0),
            ("ee", 0),
            ("tree", 0),
            ("y", 0),
            ("by", 0),
            ("trouble", 1),
            ("oats", 1),
            ("trees", 1),
            ("ivy", 1),
            ("troubles", 2),
            ("private", 2),
            ("oaten", 2),
            ("orrery", 2),
        ] {
            assert_eq!(measure(word), m, "{word}");
        }
    }

    #[test]
    fn y_alternates_between_consonant_and_vowel() {
        assert_eq!(
            consonant_flags("syzygy"),
            [true, false, true, false, true, false]
        );
        assert_eq!(consonant_flags("yyyy"), [true, false, true, false]);
        assert_eq!(consonant_flags("toy"), [true, false, true]);
    }

    #[test]
    fn cvc_condition_includes_nltk_two_letter_case() {
        assert!(ends_cvc("hop"));
        assert!(!ends_cvc("how"));
        assert!(ends_cvc("ap"));
        assert!(!ends_cvc("pa"));
        assert!(!ends_cvc("a"));
    }
}
