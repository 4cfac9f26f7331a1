//! `[tagger]`: the chat model of the `llm` tag source.

use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// `[tagger]`: the chat model of the `llm` tag source: a local checkpoint, or an
/// OpenAI-compatible server (`endpoint`: OpenAI, vLLM, llama.cpp's server, Ollama, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaggerConfig {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com/v1`,
    /// `http://127.0.0.1:8080/v1`; a URL ending in `/chat/completions` is taken as it is);
    /// `None` = a local checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// With `endpoint`: the API's model name (required). Without: the GGUF file or HF folder
    /// of the tagging chat model; `None` = the run's base model (adapters off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The environment variable holding the API key (sent as `Authorization: Bearer`; unset
    /// = no key, as local servers need). The key itself is never written to a file or a log.
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    /// Requests to the endpoint in flight at once (≥ 1).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Seconds one request may take, connection to last byte (≥ 1).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Retries of a request answered 429 or 5xx, or cut by a timeout or a dropped connection,
    /// with exponential backoff (1 s, 2 s, 4 s, ...; a `Retry-After` header wins).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Tokens generated per instruction (≥ 8).
    pub max_new_tokens: usize,
    /// Instructions tagged per batch (≥ 1); `tags.json` is saved after each.
    pub batch_size: usize,
}

fn default_api_key_env() -> String {
    "OPENAI_API_KEY".to_owned()
}

fn default_concurrency() -> usize {
    4
}

fn default_timeout_seconds() -> u64 {
    120
}

fn default_max_retries() -> u32 {
    5
}

impl TaggerConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.max_new_tokens >= 8,
            "tagger.max_new_tokens",
            self.max_new_tokens,
            "must be at least 8",
        )?;
        check(
            self.batch_size >= 1,
            "tagger.batch_size",
            self.batch_size,
            "must be at least 1",
        )?;
        if let Some(endpoint) = &self.endpoint {
            check(
                endpoint.starts_with("http://") || endpoint.starts_with("https://"),
                "tagger.endpoint",
                endpoint,
                "expected an http:// or https:// URL",
            )?;
            check(
                self.model.is_some(),
                "tagger.model",
                "(missing)",
                "tagger.endpoint needs tagger.model, the API's model name",
            )?;
        }
        let key_env = &self.api_key_env;
        check(
            !key_env.is_empty()
                && key_env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "tagger.api_key_env",
            key_env,
            "expected an environment variable name (letters, digits, _)",
        )?;
        check(
            self.concurrency >= 1,
            "tagger.concurrency",
            self.concurrency,
            "must be at least 1",
        )?;
        check(
            self.timeout_seconds >= 1,
            "tagger.timeout_seconds",
            self.timeout_seconds,
            "must be at least 1",
        )
    }
}
