//! The prompt format, training and evaluation alike.
//!
//! One ChatML user turn in the checkpoint's chat template (SmolLM2 adds its default system
//! prompt), SuperNI's "Definition + input" wording (Wang et al. 2022, §4: `Definition: …`
//! then the instance):
//!
//! ```text
//! <|im_start|>system\n{default system prompt}<|im_end|>\n
//! <|im_start|>user\nDefinition: {instruction}\n\nInput: {input}<|im_end|>\n
//! <|im_start|>assistant\n{output}<|im_end|>
//! ```
//!
//! (`\n\nInput: {input}` is left out for an empty input.) The loss covers `{output}<|im_end|>`
//! only. A checkpoint without a chat template gets the same user text followed by
//! `\nOutput: ` and the output. Sequences longer than `training.max_length` lose tokens from the
//! left of `{input}` first (its end is kept), then from the end of `{instruction}`, then from the
//! end of the output; generation prompts are cut the same way to `max_length`.

use llama::tokenizer::{ChatTemplate, Tokenizer};
use llama::train::{Cut, Encoded, encode_example};

use crate::learner::Example;

/// The prompt format of the module docs, tokenised in segments so the input can be truncated
/// on its own.
#[derive(Debug, Clone)]
pub(super) struct PromptFormat {
    pub(super) tokenizer: Tokenizer,
    pub(super) template: Option<ChatTemplate>,
    /// Appended to every response (`<|im_end|>` / EOS) so the model learns to stop.
    end: Vec<u32>,
}

impl PromptFormat {
    pub(super) fn new(tokenizer: Tokenizer, stop: &[u32]) -> Self {
        let template = tokenizer.chat_template().cloned();
        let end = tokenizer
            .eos_id()
            .or(stop.first().copied())
            .into_iter()
            .collect();
        Self {
            tokenizer,
            template,
            end,
        }
    }

    pub(super) fn tokens(&self, text: &str) -> anyhow::Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false)?)
    }

    /// Prompt segments `[markup, definition, markup, input, markup]`: the input may lose
    /// tokens from its left, then the definition from its right ([`PROMPT_CUTS`]).
    pub(super) fn prompt(&self, example: &Example) -> anyhow::Result<Vec<Vec<u32>>> {
        const DEF: &str = "\u{1}DEFINITION\u{1}";
        const INPUT: &str = "\u{1}INPUT\u{1}";
        let user = if example.input.is_empty() {
            format!("Definition: {DEF}{INPUT}")
        } else {
            format!("Definition: {DEF}\n\nInput: {INPUT}")
        };
        let text = match &self.template {
            Some(t) => t.user_prompt(&user),
            None => format!("{user}\nOutput: "),
        };
        let (head, rest) = text.split_once(DEF).expect("the marker is in the prompt");
        let (middle, tail) = rest.split_once(INPUT).expect("the marker is in the prompt");
        Ok(vec![
            self.tokens(head)?,
            self.tokens(&example.instruction)?,
            self.tokens(middle)?,
            self.tokens(&example.input)?,
            self.tokens(tail)?,
        ])
    }

    pub(super) fn training(&self, example: &Example, max_length: usize) -> anyhow::Result<Encoded> {
        let mut response = self.tokens(example.output.first().map_or("", String::as_str))?;
        response.extend(&self.end);
        Ok(encode_example(
            &self.prompt(example)?,
            &PROMPT_CUTS,
            &response,
            max_length,
        ))
    }

    pub(super) fn generation(
        &self,
        example: &Example,
        max_length: usize,
    ) -> anyhow::Result<Vec<u32>> {
        Ok(encode_example(&self.prompt(example)?, &PROMPT_CUTS, &[], max_length).tokens)
    }
}

/// Truncation order of the prompt segments: the input from its left (its end, usually the
/// part asked about, is kept), then the definition from its right.
const PROMPT_CUTS: [Cut; 2] = [
    Cut {
        segment: 3,
        from_left: true,
    },
    Cut {
        segment: 1,
        from_left: false,
    },
];
