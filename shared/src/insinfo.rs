//! Instruction tags and the InsInfo score (InsCL §3.2).
//!
//! InsCL describes every instruction by a set of *tags* (intention, domain, skill …, produced by
//! a tagger such as InsTag) and measures how much information an instruction carries by how rare
//! its tags are among all instructions seen so far:
//!
//! ```text
//! InsInfo(ins) = Σ_{tag ∈ tags(ins)} ln( N / f_tag )            (InsCL §3.2)
//! ```
//!
//! where `N` is the number of instructions of all tasks seen so far (the current task included)
//! and `f_tag` the number of those instructions carrying `tag`. Because the statistics grow with
//! every new task, the caller rebuilds [`TagStatistics`] at every stage, or extends it by the
//! stage's task ([`TagStatistics::add_instructions`]) when earlier tag sets do not change.
//!
//! Raw tags are noisy ("Math-Problems ", "math problem", "math_problems"), so they are first
//! normalised with a [`TagNormalizer`]: lower-casing, keeping letters only, Snowball stemming and,
//! optionally, merging near-duplicate spellings.

use std::collections::{BTreeMap, BTreeSet};

use rust_stemmers::{Algorithm, Stemmer};
use serde::{Deserialize, Serialize};

/// How raw instruction tags are turned into canonical tags.
///
/// Serialised as `{"stem": true, "merge_threshold": null}`; missing fields take the
/// [`Default`] values (stemming on, no near-duplicate merging).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TagNormalizer {
    /// Reduce every word to its Snowball (Porter2) English stem, so that "problems" and
    /// "problem" become the same tag.
    pub stem: bool,
    /// When `Some(s)`, [`TagNormalizer::merge_near_duplicates`] maps tags whose normalised
    /// Levenshtein similarity is at least `s` (in `[0, 1]`) onto one representative.
    /// `None` disables merging.
    pub merge_threshold: Option<f64>,
}

impl Default for TagNormalizer {
    fn default() -> Self {
        Self {
            stem: true,
            merge_threshold: None,
        }
    }
}

impl TagNormalizer {
    /// Canonical form of one raw tag, or `None` when nothing is left of it.
    ///
    /// Steps: lower-case; every character that is not an ASCII letter becomes a space, as the
    /// official InsCL code does (`re.sub(r"[^A-Za-z]+", " ", tag.lower())`), so digits,
    /// punctuation and non-ASCII letters separate words ("Math-Problems" → "math problems");
    /// collapse runs of whitespace to one space and trim; when [`stem`](Self::stem) is set,
    /// replace each word by its Snowball English stem (`rust-stemmers`, the algorithm of NLTK's
    /// `SnowballStemmer("english")`; the official code lemmatises with WordNet instead).
    /// Example: `"Math-Problems "` → `Some("math problem")`, `"42 !"` → `None`.
    pub fn normalize(&self, tag: &str) -> Option<String> {
        let cleaned: String = tag
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_lowercase() { c } else { ' ' })
            .collect();
        let stemmer = self.stem.then(|| Stemmer::create(Algorithm::English));
        let words: Vec<String> = cleaned
            .split_whitespace()
            .map(|word| match &stemmer {
                Some(stemmer) => stemmer.stem(word).into_owned(),
                None => word.to_owned(),
            })
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }

    /// Normalises every tag of one instruction with [`normalize`](Self::normalize), drops the
    /// empty ones and returns the resulting set sorted and deduplicated.
    pub fn normalize_set(&self, tags: &[impl AsRef<str>]) -> Vec<String> {
        let set: BTreeSet<String> = tags
            .iter()
            .filter_map(|tag| self.normalize(tag.as_ref()))
            .collect();
        set.into_iter().collect()
    }

    /// Merges near-duplicate tags across all instructions, in place.
    ///
    /// A no-op when [`merge_threshold`](Self::merge_threshold) is `None`. Otherwise, with
    /// threshold `s`, the distinct tags are visited from the most frequent (number of
    /// occurrences over all sets) to the least frequent, ties in lexicographic order; each tag
    /// not yet assigned becomes a canonical representative and absorbs every later unassigned
    /// tag whose `strsim::normalized_levenshtein` similarity *to it* is `≥ s` (single-pass
    /// leader clustering: similarity is not chained transitively). Every set is then rewritten
    /// with the representatives and sorted and deduplicated again.
    ///
    /// The official InsCL code clusters phrase-BERT embeddings of the tags with DBSCAN and
    /// likewise replaces every tag of a cluster by its most frequent member; string similarity
    /// stands in for the embedding model here.
    ///
    /// `s > 1` (or NaN) merges nothing; `s ≤ 0` merges everything into the most frequent tag.
    /// Cost: O(T²) similarity evaluations for T distinct tags.
    pub fn merge_near_duplicates(&self, tag_sets: &mut [Vec<String>]) {
        let Some(threshold) = self.merge_threshold else {
            return;
        };
        let mut frequency: BTreeMap<&str, usize> = BTreeMap::new();
        for tag in tag_sets.iter().flatten() {
            *frequency.entry(tag.as_str()).or_default() += 1;
        }
        let mut order: Vec<(&str, usize)> = frequency.into_iter().collect();
        // The BTreeMap already yields lexicographic order; a stable sort keeps it among ties.
        order.sort_by_key(|&(_, count)| std::cmp::Reverse(count));

        let mut canonical: BTreeMap<String, String> = BTreeMap::new();
        for (i, &(leader, _)) in order.iter().enumerate() {
            if canonical.contains_key(leader) {
                continue;
            }
            canonical.insert(leader.to_owned(), leader.to_owned());
            for &(candidate, _) in &order[i + 1..] {
                if !canonical.contains_key(candidate)
                    && strsim::normalized_levenshtein(leader, candidate) >= threshold
                {
                    canonical.insert(candidate.to_owned(), leader.to_owned());
                }
            }
        }

        for set in tag_sets.iter_mut() {
            for tag in set.iter_mut() {
                tag.clone_from(&canonical[tag.as_str()]);
            }
            set.sort_unstable();
            set.dedup();
        }
    }
}

/// Calls `f` on each distinct tag of `tags` in sorted order. Sets from
/// [`TagNormalizer::normalize_set`] and [`TagNormalizer::merge_near_duplicates`] are sorted
/// and deduplicated already, and are walked as they are; any other goes through a `BTreeSet`.
fn for_each_distinct<'a>(tags: &'a [String], mut f: impl FnMut(&'a str)) {
    if tags.windows(2).all(|w| w[0] < w[1]) {
        for tag in tags {
            f(tag);
        }
    } else {
        let set: BTreeSet<&str> = tags.iter().map(String::as_str).collect();
        set.into_iter().for_each(f);
    }
}

/// Tag frequencies over every instruction seen so far (InsCL §3.2): `N` and `f_tag` of the
/// InsInfo formula.
///
/// Built from the tag sets of all instructions of all tasks up to and including the current
/// one, at every stage (or, without tag merging, extended by each stage's task).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TagStatistics {
    /// `N`: the number of instructions counted.
    pub instructions: usize,
    /// `f_tag`: the number of instructions carrying each tag (a tag repeated within one
    /// instruction counts once).
    pub frequencies: BTreeMap<String, usize>,
}

impl TagStatistics {
    /// Counts `N` and `f_tag` over the given tag sets, one per instruction.
    pub fn from_instructions<'a>(tag_sets: impl IntoIterator<Item = &'a [String]>) -> Self {
        let mut stats = Self::default();
        stats.add_instructions(tag_sets);
        stats
    }

    /// Adds the given tag sets, one per instruction, to `N` and `f_tag`: the statistics of a
    /// later stage from an earlier one's, when tags are not merged (merging rewrites earlier
    /// sets).
    pub fn add_instructions<'a>(&mut self, tag_sets: impl IntoIterator<Item = &'a [String]>) {
        for tags in tag_sets {
            self.instructions += 1;
            for_each_distinct(tags, |tag| match self.frequencies.get_mut(tag) {
                Some(count) => *count += 1,
                None => {
                    self.frequencies.insert(tag.to_owned(), 1);
                }
            });
        }
    }

    /// InsInfo of one instruction, InsCL §3.2 (the official code's idf sum):
    /// `Σ_{tag} ln(N / f_tag)` (natural log, ≥ 0), summed in the tags' sorted order.
    ///
    /// `tags` is the instruction's tag set; a tag listed twice counts once. An instruction
    /// without tags scores 0, and so does a tag carried by every instruction. A tag absent from
    /// the statistics (which cannot happen when the statistics include this instruction, as
    /// InsCL prescribes) is treated as carried by this instruction only, `f_tag = 1`,
    /// contributing `ln N` (0 when `N ≤ 1`).
    pub fn insinfo(&self, tags: &[String]) -> f64 {
        let n = self.instructions.max(1) as f64;
        // −0.0 is where `Iterator::sum` starts: a tagless instruction keeps scoring −0.0, and
        // plans serialise as before.
        let mut sum = -0.0;
        for_each_distinct(tags, |tag| {
            let f = self.frequencies.get(tag).copied().unwrap_or(1).max(1);
            sum += (n / f as f64).ln();
        });
        sum
    }

    /// InsInfo of each instruction of one previous task, normalised to sum to 1 within the task
    /// (the sampling weights of InsCL §3.2).
    ///
    /// Returns one weight per entry of `task_tags`, in order. When every instruction scores 0
    /// (no tags, or only tags carried by every instruction) the weights are uniform `1/n`; an
    /// empty task gives an empty vector.
    pub fn normalized_scores(&self, task_tags: &[Vec<String>]) -> Vec<f64> {
        let scores: Vec<f64> = task_tags.iter().map(|tags| self.insinfo(tags)).collect();
        let total: f64 = scores.iter().sum();
        if total > 0.0 {
            scores.into_iter().map(|s| s / total).collect()
        } else {
            vec![1.0 / scores.len() as f64; scores.len()]
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn set(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn normalize_cleans_and_stems() {
        let n = TagNormalizer::default();
        assert_eq!(
            n.normalize("Math-Problems ").as_deref(),
            Some("math problem")
        );
        assert_eq!(
            n.normalize("  Coding_2  (Python3)").as_deref(),
            Some("code python")
        );
        assert_eq!(n.normalize("running\tGames").as_deref(), Some("run game"));
        assert_eq!(n.normalize("42 !?"), None);
        assert_eq!(n.normalize("Café Reviews").as_deref(), Some("caf review"));
        assert_eq!(n.normalize(""), None);
    }

    #[test]
    fn normalize_without_stemming_keeps_words() {
        let n = TagNormalizer {
            stem: false,
            merge_threshold: None,
        };
        assert_eq!(
            n.normalize("Math-Problems ").as_deref(),
            Some("math problems")
        );
        assert_eq!(
            n.normalize("RUNNING,games").as_deref(),
            Some("running games")
        );
    }

    #[test]
    fn normalize_set_sorts_and_deduplicates() {
        let n = TagNormalizer::default();
        let tags = [
            "Translation",
            "math problems",
            "Math-Problem",
            "123",
            "translations",
        ];
        assert_eq!(n.normalize_set(&tags), set(&["math problem", "translat"]));
    }

    #[test]
    fn normalizer_serde_defaults() {
        let n: TagNormalizer = serde_json::from_str("{}").unwrap();
        assert_eq!(n, TagNormalizer::default());
        let json = serde_json::to_string(&TagNormalizer {
            stem: false,
            merge_threshold: Some(0.8),
        })
        .unwrap();
        assert_eq!(json, r#"{"stem":false,"merge_threshold":0.8}"#);
    }

    #[test]
    fn merge_picks_most_frequent_then_smallest() {
        let n = TagNormalizer {
            stem: false,
            merge_threshold: Some(0.8),
        };
        // "summarise"/"summarize": similarity 1 - 1/9 ≈ 0.889; "summarize" is more frequent.
        // "colour"/"color": 1 - 1/6 ≈ 0.833, equal frequency → "color" (lexicographically first).
        // "math"/"maths": 1 - 1/5 = 0.8 ≥ 0.8, "math" more frequent.
        let mut sets = vec![
            set(&["colour", "summarize"]),
            set(&["color", "summarise", "summarize"]),
            set(&["math", "summarize"]),
            set(&["maths", "math"]),
        ];
        n.merge_near_duplicates(&mut sets);
        assert_eq!(
            sets,
            vec![
                set(&["color", "summarize"]),
                set(&["color", "summarize"]),
                set(&["math", "summarize"]),
                set(&["math"]),
            ]
        );
    }

    #[test]
    fn merge_disabled_or_strict_changes_nothing() {
        let original = vec![set(&["color", "colour"]), set(&["math"])];
        for threshold in [None, Some(1.01)] {
            let mut sets = original.clone();
            TagNormalizer {
                stem: false,
                merge_threshold: threshold,
            }
            .merge_near_duplicates(&mut sets);
            assert_eq!(sets, original);
        }
    }

    #[test]
    fn statistics_count_instructions_per_tag() {
        let sets = [set(&["a", "b"]), set(&["a", "a"]), set(&[])];
        let stats = TagStatistics::from_instructions(sets.iter().map(Vec::as_slice));
        assert_eq!(stats.instructions, 3);
        assert_eq!(
            stats.frequencies,
            BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)])
        );
    }

    #[test]
    fn insinfo_hand_computed() {
        // N = 4 instructions; f(math) = 3, f(code) = 1, f(chat) = 4.
        let sets = [
            set(&["chat", "math"]),
            set(&["chat", "code", "math"]),
            set(&["chat", "math"]),
            set(&["chat"]),
        ];
        let stats = TagStatistics::from_instructions(sets.iter().map(Vec::as_slice));
        // ln(4/4) + ln(4/3) = 0.287682072451781
        assert!((stats.insinfo(&sets[0]) - 0.287_682_072_451_781).abs() < 1e-12);
        // ln(4/4) + ln(4/1) + ln(4/3) = 1.386294361119891 + 0.287682072451781 = 1.673976433571672
        assert!((stats.insinfo(&sets[1]) - 1.673_976_433_571_672).abs() < 1e-12);
        assert_eq!(stats.insinfo(&sets[3]), 0.0);
        // Duplicates count once; an unknown tag counts as f = 1: ln 4.
        assert!((stats.insinfo(&set(&["code", "code"])) - 4f64.ln()).abs() < 1e-12);
        assert!((stats.insinfo(&set(&["unseen"])) - 4f64.ln()).abs() < 1e-12);

        // Task = first two instructions: weights 0.28768/1.96166 and 1.67398/1.96166.
        let weights = stats.normalized_scores(&sets[..2]);
        let total = 0.287_682_072_451_781 + 1.673_976_433_571_672;
        assert!((weights[0] - 0.287_682_072_451_781 / total).abs() < 1e-12);
        assert!((weights[1] - 1.673_976_433_571_672 / total).abs() < 1e-12);
    }

    #[test]
    fn normalized_scores_fall_back_to_uniform() {
        // "chat" is on every instruction: ln(2/2) = 0 for both → uniform weights.
        let sets = [set(&["chat"]), set(&["chat"])];
        let stats = TagStatistics::from_instructions(sets.iter().map(Vec::as_slice));
        assert_eq!(stats.normalized_scores(&sets), vec![0.5, 0.5]);
        // Instructions without tags score 0 as well.
        assert_eq!(stats.normalized_scores(&vec![Vec::new(); 4]), vec![0.25; 4]);
        assert!(stats.normalized_scores(&[]).is_empty());
    }
}
