//! Byte-level BPE tokenizers (Hugging Face `tokenizers`, pure-Rust build) loaded from a
//! `tokenizer.json` or built from a GGUF file's embedded vocabulary, plus chat templates.
//!
//! Special tokens written in the text (e.g. `<|im_start|>`) are always recognised as single
//! tokens, as in HF `tokenizers` and llama.cpp's `parse_special = true`.

use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper};

use crate::io::gguf::{GgufError, GgufFile};

/// GGUF `tokenizer.ggml.token_type` of control tokens (llama.cpp `LLAMA_TOKEN_TYPE_CONTROL`).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF token type of user-defined added tokens (`LLAMA_TOKEN_TYPE_USER_DEFINED`).
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Errors of building or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Reading the GGUF metadata failed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// `tokenizer.json` (or `tokenizer_config.json`) could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The GGUF describes a tokenizer this module does not build.
    #[error("{path}: {key} = {value:?} is not supported (supported: {supported})")]
    Unsupported {
        /// The GGUF file.
        path: PathBuf,
        /// The metadata key (`tokenizer.ggml.model` or `tokenizer.ggml.pre`).
        key: &'static str,
        /// Its value.
        value: String,
        /// The values that are.
        supported: &'static str,
    },
    /// The vocabulary or merges are inconsistent (e.g. a merge of unknown tokens).
    #[error("{path}: cannot build the BPE model: {message}")]
    Build {
        /// The GGUF file.
        path: PathBuf,
        /// The `tokenizers` error.
        message: String,
    },
    /// Encoding or decoding failed inside `tokenizers` (e.g. an id outside the vocabulary).
    #[error("tokenizer: {0}")]
    Codec(String),
    /// A chat template that is not one of the known formats.
    #[error(
        "{}unknown chat template (only ChatML, with `<|im_start|>`, is supported): {excerpt:?}",
        location.as_deref().map(|l| format!("{l}: ")).unwrap_or_default()
    )]
    UnknownChatTemplate {
        /// The file and key it was read from (`None` for [`ChatTemplate::from_jinja`] itself).
        location: Option<String>,
        /// The template's first 120 characters.
        excerpt: String,
    },
}

impl TokenizerError {
    /// An [`TokenizerError::UnknownChatTemplate`] that names the file and key it came from;
    /// other errors unchanged.
    fn located(self, path: &Path, key: &str) -> Self {
        match self {
            TokenizerError::UnknownChatTemplate { excerpt, .. } => {
                TokenizerError::UnknownChatTemplate {
                    location: Some(format!("{}: {key}", path.display())),
                    excerpt,
                }
            }
            other => other,
        }
    }
}

/// A tokenizer with its BOS/EOS ids and chat template.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    chat_template: Option<ChatTemplate>,
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`. Its post-processor decides what
    /// `encode(.., add_special = true)` adds; BOS/EOS ids and the chat template are unknown
    /// (see [`Self::from_hf_dir`]).
    ///
    /// # Errors
    /// [`TokenizerError::File`] when the file cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let file_err = |message: String| TokenizerError::File {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
        // `tokenizers` 0.23 panics on some JSON syntax errors (inside its `decoder` section):
        // only well-formed JSON reaches it.
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| file_err(e.to_string()))?;
        let inner: tokenizers::Tokenizer = text
            .parse()
            .map_err(|e: tokenizers::Error| file_err(e.to_string()))?;
        Ok(Self {
            inner,
            bos: None,
            eos: None,
            add_bos: false,
            chat_template: None,
        })
    }

    /// Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` for the BOS
    /// and EOS tokens (`bos_token` / `eos_token`, strings or `{"content": ..}` objects) and
    /// the `chat_template` (as in a Hugging Face model directory).
    ///
    /// # Errors
    /// [`TokenizerError::File`] for unreadable files; [`TokenizerError::UnknownChatTemplate`].
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let dir = dir.as_ref();
        let mut tok = Self::from_file(dir.join("tokenizer.json"))?;
        let config_path = dir.join("tokenizer_config.json");
        if !config_path.exists() {
            return Ok(tok);
        }
        let file_err = |message: String| TokenizerError::File {
            path: config_path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config_path).map_err(|e| file_err(e.to_string()))?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| file_err(e.to_string()))?;
        let token_of = |key: &str| -> Option<u32> {
            let v = &config[key];
            let content = v.as_str().or_else(|| v["content"].as_str())?;
            tok.inner.token_to_id(content)
        };
        (tok.bos, tok.eos) = (token_of("bos_token"), token_of("eos_token"));
        if let Some(template) = config["chat_template"].as_str() {
            let template = ChatTemplate::from_jinja(template)
                .map_err(|e| e.located(&config_path, "chat_template"))?;
            tok.chat_template = Some(template);
        }
        Ok(tok)
    }

    /// Builds the tokenizer a GGUF file embeds: `tokenizer.ggml.model = "gpt2"` (byte-level
    /// BPE) from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, with the pre-tokenizer
    /// llama.cpp uses for `tokenizer.ggml.pre`:
    /// - `smollm`, `starcoder`, `refact`: each digit split off (`\p{N}`), then the GPT-2
    ///   regex — SmolLM2's tokenizer.json `Sequence[Digits(individual_digits), ByteLevel]`;
    /// - `gpt-2`, `default`: the GPT-2 regex only.
    ///
    /// Tokens of type control (3) become special tokens, user-defined (4) plain added tokens.
    /// BOS/EOS come from `tokenizer.ggml.bos_token_id` / `eos_token_id`; BOS is prepended by
    /// `encode(.., true)` only if `tokenizer.ggml.add_bos_token` is true (absent = false).
    /// The chat template is `tokenizer.chat_template`, if present.
    ///
    /// # Errors
    /// [`TokenizerError::Gguf`] for missing/mistyped keys, [`TokenizerError::Unsupported`]
    /// for other models or pre-tokenizers, [`TokenizerError::Build`],
    /// [`TokenizerError::UnknownChatTemplate`].
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        let path = file.path().to_path_buf();
        let model = file.get_str("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(TokenizerError::Unsupported {
                path,
                key: "tokenizer.ggml.model",
                value: model.to_owned(),
                supported: "gpt2",
            });
        }
        let pre = match file.metadata("tokenizer.ggml.pre") {
            Some(_) => file.get_str("tokenizer.ggml.pre")?,
            None => "default",
        };
        let split_digits = match pre {
            "smollm" | "starcoder" | "refact" => true,
            "gpt-2" | "default" => false,
            other => {
                return Err(TokenizerError::Unsupported {
                    path,
                    key: "tokenizer.ggml.pre",
                    value: other.to_owned(),
                    supported: "smollm, starcoder, refact, gpt-2, default",
                });
            }
        };

        let tokens = file.get_str_array("tokenizer.ggml.tokens")?;
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, t)| ((*t).to_owned(), id as u32))
            .collect();
        let merges: Merges = file
            .get_str_array("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_owned(), b.to_owned())),
                None => Err(TokenizerError::Build {
                    path: path.clone(),
                    message: format!("merge {m:?} is not two tokens separated by a space"),
                }),
            })
            .collect::<Result<_, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| TokenizerError::Build {
                path: path.clone(),
                message: e.to_string(),
            })?;

        let mut inner = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tokenizer: PreTokenizerWrapper = if split_digits {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        } else {
            byte_level.into()
        };
        inner.with_pre_tokenizer(Some(pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let (special, user): (Vec<_>, Vec<_>) = match file.metadata("tokenizer.ggml.token_type") {
            None => (vec![], vec![]),
            Some(_) => {
                let types = file.get_array("tokenizer.ggml.token_type")?;
                tokens
                    .iter()
                    .zip(types)
                    .filter_map(|(t, ty)| match ty.as_i64() {
                        Some(TOKEN_TYPE_CONTROL) => Some((true, *t)),
                        Some(TOKEN_TYPE_USER_DEFINED) => Some((false, *t)),
                        _ => None,
                    })
                    .partition(|(is_special, _)| *is_special)
            }
        };
        let added = |list: Vec<(bool, &str)>| -> Vec<AddedToken> {
            list.into_iter()
                .map(|(is_special, t)| AddedToken::from(t, is_special).normalized(false))
                .collect()
        };
        let build_err = |e: tokenizers::Error| TokenizerError::Build {
            path: path.clone(),
            message: e.to_string(),
        };
        inner
            .add_special_tokens(added(special))
            .map_err(build_err)?;
        inner.add_tokens(added(user)).map_err(build_err)?;

        let token_id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            let Some(_) = file.metadata(key) else {
                return Ok(None);
            };
            let id = file.get_u64(key)?;
            match u32::try_from(id) {
                Ok(id) if (id as usize) < tokens.len() => Ok(Some(id)),
                _ => Err(GgufError::BadValue {
                    path: path.clone(),
                    key: key.to_owned(),
                    value: id.to_string(),
                    reason: format!("not a token id (the vocabulary has {})", tokens.len()),
                }
                .into()),
            }
        };
        let add_bos = match file.metadata("tokenizer.ggml.add_bos_token") {
            None => false,
            Some(_) => file.get_bool("tokenizer.ggml.add_bos_token")?,
        };
        let chat_template = match file.metadata("tokenizer.chat_template") {
            None => None,
            Some(_) => Some(
                ChatTemplate::from_jinja(file.get_str("tokenizer.chat_template")?)
                    .map_err(|e| e.located(&path, "tokenizer.chat_template"))?,
            ),
        };
        Ok(Self {
            inner,
            bos: token_id("tokenizer.ggml.bos_token_id")?,
            eos: token_id("tokenizer.ggml.eos_token_id")?,
            add_bos,
            chat_template,
        })
    }

    /// Token ids of `text`. With `add_special`, the tokenizer's own additions (the
    /// `tokenizer.json` post-processor; for GGUF, BOS when `tokenizer.ggml.add_bos_token`).
    ///
    /// # Errors
    /// [`TokenizerError::Codec`] from `tokenizers`.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, add_special)
            .map_err(|e| TokenizerError::Codec(e.to_string()))?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// The text of `ids`; with `skip_special`, special tokens are left out.
    ///
    /// # Errors
    /// [`TokenizerError::Codec`] from `tokenizers`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Codec(e.to_string()))
    }

    /// The id of token `token` (in the vocabulary's spelling, e.g. `"<|im_end|>"`, `"Ġthe"`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The spelling of token `id`.
    pub fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Beginning-of-sequence id, if known.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// End-of-sequence id, if known (for ChatML models, `<|im_end|>`).
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The chat template, if the checkpoint has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }
}

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The system prompt.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in chat templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// A chat prompt format, recognised from a checkpoint's Jinja `chat_template`.
///
/// Only ChatML is implemented (rendering Jinja in general would need a template engine):
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n`
/// when a reply is to be generated. Templates that insert a default system prompt when the
/// conversation has none (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by
/// Hugging Face"; Qwen2) keep that behaviour through `default_system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// ChatML.
    ChatMl {
        /// System prompt used when the first message is not a system message.
        default_system: Option<String>,
    },
}

impl ChatTemplate {
    /// Recognises a Jinja chat template: ChatML when it contains `<|im_start|>`, with the
    /// default system prompt taken from a literal `<|im_start|>system\n…<|im_end|>` in it.
    ///
    /// # Errors
    /// [`TokenizerError::UnknownChatTemplate`] for any other template.
    pub fn from_jinja(template: &str) -> Result<Self, TokenizerError> {
        if !template.contains("<|im_start|>") {
            return Err(TokenizerError::UnknownChatTemplate {
                location: None,
                excerpt: template.chars().take(120).collect(),
            });
        }
        let default_system = template
            .split_once("<|im_start|>system\n")
            .and_then(|(_, rest)| rest.split_once("<|im_end|>"))
            .map(|(system, _)| system)
            // A literal prompt only: no Jinja expressions or string concatenation in it.
            .filter(|s| !s.is_empty() && !s.contains(['{', '}', '\'', '"', '+']))
            .map(str::to_owned);
        Ok(Self::ChatMl { default_system })
    }

    /// The prompt text of `messages`, ending with the assistant header when
    /// `add_generation_prompt` (HF `apply_chat_template` semantics).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let Self::ChatMl { default_system } = self;
        let mut out = String::new();
        let mut turn = |role: &str, content: &str| {
            out.push_str("<|im_start|>");
            out.push_str(role);
            out.push('\n');
            out.push_str(content);
            out.push_str("<|im_end|>\n");
        };
        if let Some(system) = default_system
            && messages.first().is_none_or(|m| m.role != Role::System)
        {
            turn("system", system);
        }
        for m in messages {
            turn(m.role.as_str(), &m.content);
        }
        if add_generation_prompt {
            out.push_str("<|im_start|>assistant\n");
        }
        out
    }

    /// The prompt for one user message, ready for generation.
    pub fn user_prompt(&self, user: &str) -> String {
        self.render(&[ChatMessage::new(Role::User, user)], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_with_default_system() {
        let t = ChatTemplate::from_jinja(SMOLLM2_TEMPLATE).unwrap();
        assert_eq!(
            t.user_prompt("What is the capital of France?"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
        );
        let with_system = [
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Hi"),
            ChatMessage::new(Role::Assistant, "Hello."),
        ];
        assert_eq!(
            t.render(&with_system, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello.<|im_end|>\n"
        );
    }

    #[test]
    fn chatml_without_literal_system_prompt() {
        // The generic ChatML template of HF docs: the system header is built from variables.
        let generic = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
        let t = ChatTemplate::from_jinja(generic).unwrap();
        assert_eq!(
            t,
            ChatTemplate::ChatMl {
                default_system: None
            }
        );
        assert_eq!(
            t.user_prompt("Hi"),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn unknown_template_is_an_error() {
        let llama2 = "{{ bos_token }}{% for message in messages %}[INST] {{ message['content'] }} [/INST]{% endfor %}";
        let msg = ChatTemplate::from_jinja(llama2).unwrap_err().to_string();
        assert!(
            msg.contains("unknown chat template") && msg.contains("[INST]"),
            "{msg}"
        );
    }
}
