//! Instructions of prompt-only tasks: when a task's records hold the definition and the input
//! in one prompt field, a rule of its dataset description cuts every prompt into an
//! instruction and an input, so the task has the few distinct instructions InsCL compares
//! (the derived instructions are the instruction texts of `embeddings.json`).

use regex::Regex;
use serde::Deserialize;

/// How a prompt-only task's instruction is cut from its prompts (`derive_instruction` of a
/// dataset description entry). Written `{"separator": "\n\n"}`, `{"regex": "..."}` or
/// `"common_prefix"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum InstructionRule {
    /// The text before the first occurrence of the separator is the instruction, the text
    /// after it the input.
    Separator(String),
    /// The first match of the regular expression (Rust `regex` syntax): its group named
    /// `instruction`, else its group 1, else the whole match is the instruction; the prompt
    /// without the match is the input.
    Regex(String),
    /// The longest common prefix of the task's prompts (train and test), cut back to a
    /// whitespace boundary, is the instruction; the rest of each prompt its input. Needs at
    /// least two distinct prompts.
    CommonPrefix,
}

impl InstructionRule {
    /// The rule as written, for error messages.
    pub fn describe(&self) -> String {
        match self {
            InstructionRule::Separator(s) => format!("separator {s:?}"),
            InstructionRule::Regex(r) => format!("regex {r:?}"),
            InstructionRule::CommonPrefix => "common_prefix".to_owned(),
        }
    }

    /// The cutter for one task whose prompts are `prompts`.
    ///
    /// # Errors
    /// Why no instruction can be derived for the whole task: an invalid regex, fewer than two
    /// distinct prompts or no common prefix (`common_prefix`).
    pub fn cutter(&self, prompts: &[&str]) -> Result<Cutter, String> {
        match self {
            InstructionRule::Separator(separator) if separator.is_empty() => {
                Err("the separator is empty".to_owned())
            }
            InstructionRule::Separator(separator) => Ok(Cutter::Separator(separator.clone())),
            InstructionRule::Regex(pattern) => Regex::new(pattern)
                .map(Cutter::Regex)
                .map_err(|e| format!("invalid regex: {e}")),
            InstructionRule::CommonPrefix => {
                let Some((first, rest)) = prompts.split_first() else {
                    return Err("the task has no prompts".to_owned());
                };
                if rest.iter().all(|p| p == first) {
                    return Err(format!(
                        "{} prompt(s), all equal: a common prefix needs two distinct prompts",
                        prompts.len()
                    ));
                }
                let mut len = first.len();
                for prompt in rest {
                    len = first.as_bytes()[..len]
                        .iter()
                        .zip(prompt.as_bytes())
                        .take_while(|(a, b)| a == b)
                        .count();
                }
                while !first.is_char_boundary(len) {
                    len -= 1;
                }
                let mut prefix = &first[..len];
                if !prefix.ends_with(char::is_whitespace) {
                    // Never cut inside a word: back off to the last whitespace.
                    prefix = prefix
                        .rfind(char::is_whitespace)
                        .map_or("", |at| &prefix[..at]);
                }
                if prefix.trim().is_empty() {
                    return Err(format!(
                        "its {} prompts share no common prefix (first: {:?})",
                        prompts.len(),
                        super::show_text(first)
                    ));
                }
                Ok(Cutter::Prefix(prefix.to_owned()))
            }
        }
    }
}

/// An [`InstructionRule`] ready for one task's prompts.
#[derive(Debug, Clone)]
pub enum Cutter {
    /// See [`InstructionRule::Separator`].
    Separator(String),
    /// See [`InstructionRule::Regex`].
    Regex(Regex),
    /// The task's common prefix ([`InstructionRule::CommonPrefix`]).
    Prefix(String),
}

impl Cutter {
    /// (instruction, input) of `prompt`, both trimmed; `None` when the rule does not apply
    /// (no separator, no match) or leaves an empty instruction.
    pub fn cut(&self, prompt: &str) -> Option<(String, String)> {
        let (instruction, input) = match self {
            Cutter::Separator(separator) => {
                let (instruction, input) = prompt.split_once(separator.as_str())?;
                (instruction.to_owned(), input.to_owned())
            }
            Cutter::Regex(regex) => {
                let captures = regex.captures(prompt)?;
                let whole = captures.get(0)?;
                let instruction = captures
                    .name("instruction")
                    .or_else(|| captures.get(1))
                    .unwrap_or(whole);
                let input = format!("{}{}", &prompt[..whole.start()], &prompt[whole.end()..]);
                (instruction.as_str().to_owned(), input)
            }
            Cutter::Prefix(prefix) => {
                let input = prompt.strip_prefix(prefix.as_str())?;
                (prefix.clone(), input.to_owned())
            }
        };
        let instruction = instruction.trim();
        (!instruction.is_empty()).then(|| (instruction.to_owned(), input.trim().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separator_regex_and_common_prefix() {
        let prompt = "Classify the review.\n\nGreat film!";
        let cut = |rule: InstructionRule, prompts: &[&str]| {
            rule.cutter(prompts).unwrap().cut(prompt).unwrap()
        };
        let expected = ("Classify the review.".to_owned(), "Great film!".to_owned());
        assert_eq!(
            cut(InstructionRule::Separator("\n\n".into()), &[prompt]),
            expected
        );
        assert_eq!(
            cut(InstructionRule::Regex(r"^(.*?)\n\n".into()), &[prompt]),
            expected
        );
        assert_eq!(
            cut(
                InstructionRule::Regex(r"(?s)Great (?P<instruction>\w+)".into()),
                &[prompt]
            ),
            ("film".to_owned(), "Classify the review.\n\n!".to_owned())
        );
        let prompts = [
            prompt,
            "Classify the review.\n\nDull.",
            "Classify the reviewer.",
        ];
        // The byte prefix "Classify the review" is cut back to a whole word.
        assert_eq!(
            cut(InstructionRule::CommonPrefix, &prompts),
            (
                "Classify the".to_owned(),
                "review.\n\nGreat film!".to_owned()
            )
        );
    }

    #[test]
    fn rules_that_derive_nothing_say_why() {
        let separator = InstructionRule::Separator("\n\n".into())
            .cutter(&[])
            .unwrap();
        assert_eq!(separator.cut("no blank line here"), None);
        assert_eq!(separator.cut("  \n\ninput only"), None);
        let regex = InstructionRule::Regex("Definition: (.*)".into());
        assert_eq!(regex.cutter(&[]).unwrap().cut("Input: x"), None);
        let err = InstructionRule::Regex("(".into()).cutter(&[]).unwrap_err();
        assert!(err.starts_with("invalid regex"), "{err}");
        let prefix = InstructionRule::CommonPrefix;
        let err = prefix.cutter(&["same", "same"]).unwrap_err();
        assert!(err.contains("two distinct prompts"), "{err}");
        let err = prefix.cutter(&["Alpha one", "Beta two"]).unwrap_err();
        assert!(err.contains("share no common prefix"), "{err}");
        let err = prefix.cutter(&["Alpha one", "Alphabet"]).unwrap_err();
        assert!(err.contains("share no common prefix"), "{err}");
        let err = InstructionRule::Separator(String::new())
            .cutter(&[])
            .unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }
}
