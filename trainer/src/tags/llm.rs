//! The `llm` tag source: a chat model writes intention tags for each instruction, as InsCL
//! does with GPT-4 (official code, `get_api_output.py`: InsTag's prompt, Lu et al. 2023,
//! arXiv 2308.07074, §2.1).
//!
//! The chat model is a local checkpoint ([`ContinualLearner::chat`]) or an OpenAI-compatible server
//! ([`super::api::ChatApi`]); both answer through a [`Chat`]. Each instruction is asked once
//! with [`instag_prompt`]. A reply is parsed by [`parse_tags`]
//! (a JSON list of `{"tag": ..}` objects or strings, or comma / line separated tags); an
//! unusable reply (no tag, or an echo of the instruction: [`is_echo`]) is asked again once
//! with [`strict_prompt`]; if that is unusable too, the
//! instruction falls back to its YAKE keyphrases ([`super::keyphrases`]) and is counted in
//! [`LlmTagFile::fallbacks`]. The runner saves the file as the run folder's `tags.json` after
//! every batch ([`tag_batch`]), so `--resume` never asks twice.
//!
//! Tags are returned as written; the planner normalises them (lower-case, letters only,
//! stemmed: [`inscl::insinfo::TagNormalizer`]) and, for LLM tags, merges near-duplicates by
//! default ([`crate::config::LLM_TAG_MERGE_THRESHOLD`]), where the official `tag_utils.py`
//! lemmatises with WordNet and clusters phrase embeddings with DBSCAN.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::InstructionGroup;

#[cfg(doc)]
use crate::learner::ContinualLearner;

/// Version of [`LlmTagFile`]'s layout and of the prompts: a cache of another version is
/// ignored and the instructions are tagged again.
pub const TAG_FILE_VERSION: u32 = 1;

/// Longest tag kept, in characters; longer items are explanations, not tags.
const MAX_TAG_CHARS: usize = 60;
/// Most words in one tag (InsTag's tags have 1–4: "Spelling and Grammar Check").
const MAX_TAG_WORDS: usize = 5;
/// Most tags kept per instruction (InsTag's replies hold a handful).
const MAX_TAGS: usize = 10;
/// Object keys of a reply that hold explanations, never tags.
const EXPLANATION_KEYS: [&str; 3] = ["explanation", "description", "reason"];
/// Characters of an instruction shown to the tagger; SuperNI definitions can be long, and the
/// intention is in their first sentences.
const MAX_INSTRUCTION_CHARS: usize = 1500;

/// InsTag's tagging prompt for one instruction, as the official InsCL code sends it to GPT-4.
pub fn instag_prompt(instruction: &str) -> String {
    format!(
        "You are a tagging system that provides useful tags for instruction intentions to \
         distinguish instructions for a helpful AI assistant. Below is an instruction:\n\
         [begin]\n{}\n[end]\n\
         Please provide coarse-grained tags, such as \"Spelling and Grammar Check\" and \
         \"Cosplay\", to identify main intentions of above instruction. Your answer should be a \
         list including titles of tags and a brief explanation of each tag. Your response have \
         to strictly follow this JSON format: [{{\"tag\": str, \"explanation\": str}}]. Please \
         response in English.",
        shorten(instruction)
    )
}

/// The retry prompt after an unusable reply: the same question, asking for a bare list.
/// (No example tags: a small model copies them.)
pub fn strict_prompt(instruction: &str) -> String {
    format!(
        "Instruction:\n[begin]\n{}\n[end]\n\
         List 3 to 5 short tags (2 or 3 words each) that name the main intentions of this \
         instruction. Answer with a JSON list of strings only.",
        shorten(instruction)
    )
}

/// Whether `reply` repeats `instruction` instead of tagging it: it contains the instruction's
/// first eight words in a row (small models often echo the prompt).
pub fn is_echo(reply: &str, instruction: &str) -> bool {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let head: Vec<String> = words(instruction).into_iter().take(8).collect();
    head.len() == 8
        && words(reply)
            .windows(8)
            .any(|window| window == head.as_slice())
}

fn shorten(instruction: &str) -> &str {
    match instruction.char_indices().nth(MAX_INSTRUCTION_CHARS) {
        Some((cut, _)) => &instruction[..cut],
        None => instruction,
    }
}

/// The tags in a chat model's reply, or `None` when it holds no usable tag.
///
/// Accepted, in this order:
/// 1. the first JSON array in the reply (an unclosed one is closed): objects give their
///    `"tag"` field (else `name`, `title`, `label`, else their first string value that is not an
///    explanation: the official code takes the first value of each object), strings are tags;
/// 2. otherwise lines and commas: list markers (`-`, `*`, `1.`), quotes and a trailing
///    `: explanation` are removed.
///
/// A tag must have a letter, at most 5 words and 60 characters; at most 10 tags are kept, in
/// order, without repeats (compared case-insensitively). A plain-text reply with a longer item
/// is prose, not a list, and unusable as a whole ("I cannot tag this, but here is why").
pub fn parse_tags(reply: &str) -> Option<Vec<String>> {
    let candidates = match json_tags(reply) {
        Some(tags) => tags,
        None => {
            let items = text_tags(reply);
            // Prose is not a list: one long item makes the whole reply unusable.
            if items.iter().any(|item| !fits_a_tag(item.trim())) {
                return None;
            }
            items
        }
    };
    let mut tags: Vec<String> = Vec::new();
    for tag in candidates {
        let tag = tag
            .trim()
            .trim_matches(|c: char| c == '"' || c == '\'' || c == '`' || c == '.')
            .trim();
        // `[begin]` / `[end]`: the prompt's markers, echoed.
        let usable = tag.chars().any(char::is_alphabetic)
            && !tag.contains(['[', ']', '{', '}'])
            && fits_a_tag(tag);
        if usable && !tags.iter().any(|t| t.eq_ignore_ascii_case(tag)) {
            tags.push(tag.to_owned());
        }
        if tags.len() == MAX_TAGS {
            break;
        }
    }
    (!tags.is_empty()).then_some(tags)
}

/// At most [`MAX_TAG_WORDS`] words and [`MAX_TAG_CHARS`] characters.
fn fits_a_tag(item: &str) -> bool {
    item.chars().count() <= MAX_TAG_CHARS && item.split_whitespace().count() <= MAX_TAG_WORDS
}

/// Tags of the first JSON array in `reply`, if there is one that parses (closing it if the
/// reply was cut off).
fn json_tags(reply: &str) -> Option<Vec<String>> {
    let start = reply.find('[')?;
    let body = &reply[start..];
    let parsed = (0..=body.len())
        .rev()
        .filter(|&end| body.is_char_boundary(end) && body[..end].ends_with(']'))
        .find_map(|end| serde_json::from_str::<Vec<serde_json::Value>>(&body[..end]).ok())
        .or_else(|| close_array(body))?;
    let tags: Vec<String> = parsed
        .iter()
        .filter_map(|item| match item {
            serde_json::Value::String(s) => Some(s.clone()),
            // The official code takes each object's first value; serde_json's maps are sorted,
            // so the tag is found by name, else the first string that is not an explanation.
            serde_json::Value::Object(map) => ["tag", "name", "title", "label"]
                .iter()
                .find_map(|key| map.get(*key).and_then(|v| v.as_str()))
                .or_else(|| {
                    map.iter()
                        .filter(|(key, _)| !EXPLANATION_KEYS.contains(&key.as_str()))
                        .find_map(|(_, v)| v.as_str())
                })
                .map(str::to_owned),
            _ => None,
        })
        .collect();
    (!tags.is_empty()).then_some(tags)
}

/// A cut-off array: its complete items, closed with `]`.
fn close_array(body: &str) -> Option<Vec<serde_json::Value>> {
    let ends: Vec<usize> = body
        .char_indices()
        .filter(|&(_, c)| c == '}' || c == '"')
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    ends.into_iter()
        .rev()
        .find_map(|end| serde_json::from_str(&format!("{}]", &body[..end])).ok())
}

/// Tags of a plain-text reply: one per line or comma.
fn text_tags(reply: &str) -> Vec<String> {
    reply
        .lines()
        .flat_map(|line| {
            let line = line.trim();
            let line = line
                .trim_start_matches(|c: char| {
                    c == '-' || c == '*' || c == '•' || c.is_ascii_digit() || c == '.' || c == ')'
                })
                .trim();
            // "Tag: explanation" or "Tag - explanation" keep the tag.
            let line = line.split_once(": ").map_or(line, |(tag, _)| tag);
            let line = line.split_once(" - ").map_or(line, |(tag, _)| tag);
            line.split(',').map(str::to_owned).collect::<Vec<String>>()
        })
        .collect()
}

/// How an instruction's tags were obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagOrigin {
    /// Parsed from the reply to [`instag_prompt`].
    Llm,
    /// Parsed from the reply to [`strict_prompt`] after an unusable first reply.
    LlmRetry,
    /// Both replies unusable: YAKE keyphrases instead.
    KeyphraseFallback,
}

/// One tagged instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmTagRecord {
    /// Instruction id ([`crate::data::instruction_id`]).
    pub id: String,
    /// Instruction text (the cache key).
    pub text: String,
    /// The tags, as written.
    pub tags: Vec<String>,
    /// Where the tags came from (the model, or the keyphrase fallback).
    pub origin: TagOrigin,
    /// The model's replies, first and (if asked) retry.
    pub replies: Vec<String>,
}

/// `tags.json` of a run folder: the `llm` tagger's tags and how they were obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmTagFile {
    /// [`TAG_FILE_VERSION`].
    pub version: u32,
    /// The chat model that wrote the tags.
    pub model: String,
    /// Every instruction tagged so far, in tagging order.
    pub instructions: Vec<LlmTagRecord>,
    /// Instructions that fell back to keyphrases.
    pub fallbacks: usize,
    /// Instructions asked a second time.
    pub retries: usize,
    /// Seconds spent generating (over all sessions of a resumed run).
    pub seconds: f64,
}

impl LlmTagFile {
    /// An empty file for `model`.
    pub fn new(model: &str) -> Self {
        LlmTagFile {
            version: TAG_FILE_VERSION,
            model: model.to_owned(),
            instructions: Vec::new(),
            fallbacks: 0,
            retries: 0,
            seconds: 0.0,
        }
    }

    /// The record of `text`, if tagged.
    pub fn get(&self, text: &str) -> Option<&LlmTagRecord> {
        self.instructions.iter().find(|r| r.text == text)
    }

    /// Tagged instructions per second of generation.
    pub fn tags_per_second(&self) -> f64 {
        self.instructions.len() as f64 / self.seconds.max(1e-9)
    }
}

/// The distinct instruction texts of `groups` as `(id, text)`, in order of first appearance
/// (tasks can share an instruction; it is tagged once).
pub fn distinct_instructions<'g>(
    groups: impl Iterator<Item = &'g InstructionGroup>,
) -> Vec<(String, String)> {
    let mut instructions: Vec<(String, String)> = Vec::new();
    for group in groups {
        if !instructions.iter().any(|(_, text)| *text == group.text) {
            instructions.push((group.id.clone(), group.text.clone()));
        }
    }
    instructions
}

/// The instructions `(id, text)` of `instructions` that `file` has not tagged yet.
pub fn untagged<'i>(
    file: &LlmTagFile,
    instructions: &'i [(String, String)],
) -> Vec<&'i (String, String)> {
    instructions
        .iter()
        .filter(|(_, text)| file.get(text).is_none())
        .collect()
}

/// A chat model answering prompts, one reply per prompt in order: a local checkpoint
/// (`|prompts| learner.chat(prompts, max_new_tokens)`) or an OpenAI-compatible server
/// ([`super::api::ChatApi::chat`]).
pub type Chat<'c> = dyn FnMut(&[String]) -> anyhow::Result<Vec<String>> + 'c;

/// Tags one batch of instructions `(id, text)` with `chat` and adds them to `file`: asks
/// [`instag_prompt`], asks [`strict_prompt`] again for unusable replies, falls back to
/// `keyphrases` YAKE keyphrases where both are unusable.
///
/// # Errors
/// The model's failure.
///
/// # Panics
/// Never: every reply asked again has its retry.
pub fn tag_batch(
    file: &mut LlmTagFile,
    batch: &[&(String, String)],
    chat: &mut Chat,
    keyphrases: usize,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let prompts: Vec<String> = batch.iter().map(|(_, t)| instag_prompt(t)).collect();
    let first = chat(&prompts)?;
    anyhow::ensure!(
        first.len() == batch.len(),
        "the tagger model answered {} of {} prompts",
        first.len(),
        batch.len()
    );
    let usable = |reply: &str, instruction: &str| -> Option<Vec<String>> {
        if is_echo(reply, instruction) {
            None
        } else {
            parse_tags(reply)
        }
    };
    let unusable: Vec<usize> = (0..batch.len())
        .filter(|&i| usable(&first[i], &batch[i].1).is_none())
        .collect();
    let retry_prompts: Vec<String> = unusable
        .iter()
        .map(|&i| strict_prompt(&batch[i].1))
        .collect();
    let retried = if retry_prompts.is_empty() {
        Vec::new()
    } else {
        chat(&retry_prompts)?
    };
    anyhow::ensure!(
        retried.len() == retry_prompts.len(),
        "the tagger model answered {} of {} retry prompts",
        retried.len(),
        retry_prompts.len()
    );
    for (i, (id, text)) in batch.iter().enumerate() {
        let mut replies = vec![first[i].clone()];
        let (tags, origin) = match usable(&first[i], text) {
            Some(tags) => (tags, TagOrigin::Llm),
            None => {
                let reply = &retried[unusable.iter().position(|&u| u == i).expect("retried")];
                replies.push(reply.clone());
                match usable(reply, text) {
                    Some(tags) => (tags, TagOrigin::LlmRetry),
                    None => (
                        super::keyphrases(text, keyphrases),
                        TagOrigin::KeyphraseFallback,
                    ),
                }
            }
        };
        file.retries += usize::from(origin != TagOrigin::Llm);
        file.fallbacks += usize::from(origin == TagOrigin::KeyphraseFallback);
        file.instructions.push(LlmTagRecord {
            id: id.clone(),
            text: text.clone(),
            tags,
            origin,
            replies,
        });
    }
    file.seconds += started.elapsed().as_secs_f64();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_objects_give_their_tag_field() {
        let reply = r#"Here you go: [{"tag": "Sentiment Analysis", "explanation": "x"}, {"tag": "Text Classification", "explanation": "y"}]"#;
        assert_eq!(
            parse_tags(reply).unwrap(),
            vec!["Sentiment Analysis", "Text Classification"]
        );
        // Without a "tag" key, the value that is not an explanation (the official code's
        // `info_ls[0]`, the first value).
        assert_eq!(
            parse_tags(r#"[{"name": "Math", "explanation": "z"}]"#).unwrap(),
            vec!["Math"]
        );
        assert_eq!(
            parse_tags(r#"[{"explanation": "z", "category": "Logic"}]"#).unwrap(),
            vec!["Logic"]
        );
    }

    #[test]
    fn json_strings_and_cut_off_arrays() {
        assert_eq!(
            parse_tags(r#"["question answering", "reading comprehension"]"#).unwrap(),
            vec!["question answering", "reading comprehension"]
        );
        // Cut off by the token budget in the middle of the second object.
        let cut = r#"[{"tag": "Summarization", "explanation": "Condense."}, {"tag": "News", "expl"#;
        assert_eq!(parse_tags(cut).unwrap(), vec!["Summarization"]);
    }

    #[test]
    fn lines_and_commas() {
        let reply = "1. Grammar Check: fixes errors\n2. Text Editing - rewrite\n- Style, Tone";
        assert_eq!(
            parse_tags(reply).unwrap(),
            vec!["Grammar Check", "Text Editing", "Style", "Tone"]
        );
    }

    #[test]
    fn unusable_replies_are_none() {
        assert_eq!(parse_tags(""), None);
        assert_eq!(parse_tags("123, 456\n---"), None);
        let sentence = "This instruction asks the assistant to read a long passage and then \
                        answer a question about it carefully";
        assert_eq!(parse_tags(sentence), None);
        // Prose with short clauses is still prose.
        let prose = "Sure! Here are the tags you asked for, in the format that you asked";
        assert_eq!(parse_tags(prose), None);
    }

    #[test]
    fn echoes_and_markers_are_not_tags() {
        let instruction = "In this task, you are given two phrases: Head and Tail, separated";
        assert!(is_echo(
            "[begin] In this task, you are given two phrases: Head and Tail",
            instruction
        ));
        assert!(!is_echo("[\"Commonsense Reasoning\"]", instruction));
        assert_eq!(
            parse_tags("[begin]\nSentiment Analysis\n[end]").unwrap(),
            vec!["Sentiment Analysis"]
        );
    }

    #[test]
    fn repeats_and_long_lists_are_cut() {
        let reply = (0..20)
            .map(|i| format!("tag{i}"))
            .chain(["Tag0".to_owned()])
            .collect::<Vec<_>>()
            .join(", ");
        let tags = parse_tags(&reply).unwrap();
        assert_eq!(tags.len(), MAX_TAGS);
        assert_eq!(tags[0], "tag0");
    }

    #[test]
    fn prompts_hold_the_instruction() {
        let prompt = instag_prompt("Classify the review.");
        assert!(prompt.contains("[begin]\nClassify the review.\n[end]"));
        assert!(prompt.contains(r#"[{"tag": str, "explanation": str}]"#));
        assert!(strict_prompt("Classify the review.").contains("JSON list of strings"));
        let long = "word ".repeat(1000);
        assert!(instag_prompt(&long).len() < 2200);
    }
}
