//! The `llm` tag source on an OpenAI-compatible server (`[tagger] endpoint`): OpenAI, vLLM,
//! llama.cpp's server, Ollama. Each prompt is one chat completion, a single user message as
//! the official InsCL code sends InsTag's prompt to GPT-4 (`get_api_output.py`:
//! `generate(get_prompt(q))`), answered greedily (`temperature` 0) within `max_tokens`.
//!
//! Requests run `concurrency` at a time (scoped threads over one connection pool, ureq with
//! rustls); a request answered 429 or 5xx, or cut by a timeout or a dropped connection, is
//! retried up to `max_retries` times after 1 s, 2 s, 4 s, ... (a `Retry-After` header in
//! seconds wins, capped at [`MAX_WAIT`]); any other answer is an error naming the URL and
//! status. The API key is read from the environment variable `api_key_env` names and is
//! only ever put in the `Authorization` header: it is not part of any error, of [`ChatApi`]'s
//! description or of `tags.json`, and the body of a 401 / 403 answer (which may quote part of
//! a key) is not shown.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::TaggerConfig;

/// The longest wait before a retry, whatever `Retry-After` asks.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Characters of an answer's body shown in an error.
const BODY_IN_ERRORS: usize = 300;

/// Why a chat completion failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// An answer that retrying cannot fix (400, 401, 404, ...).
    #[error("{url} answered {status}{detail}")]
    Status {
        /// The endpoint.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The body (shortened), or for 401 / 403 a hint about the key.
        detail: String,
    },
    /// Still 429 / 5xx / timeouts after every retry.
    #[error("{url}: no answer after {attempts} attempts; the last: {last}")]
    GaveUp {
        /// The endpoint.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: String,
    },
    /// The request could not be sent (bad URL, unknown host, TLS).
    #[error("{url}: {error}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The transport's error.
        error: String,
    },
    /// A 2xx answer that is not a chat completion.
    #[error("{url}: not a chat completion ({problem}): {body}")]
    Answer {
        /// The endpoint.
        url: String,
        /// What is missing or malformed.
        problem: &'static str,
        /// The answer's body (shortened).
        body: String,
    },
}

/// A client of one OpenAI-compatible chat completions endpoint.
pub struct ChatApi {
    url: String,
    model: String,
    /// Never shown: no `Debug`, no `Display`.
    key: Option<String>,
    key_env: String,
    agent: ureq::Agent,
    concurrency: usize,
    max_retries: u32,
    first_wait: Duration,
    max_tokens: usize,
}

/// One failed attempt.
enum Attempt {
    /// Worth retrying (429, 5xx, timeout, dropped connection), after the server's wait if it
    /// gave one.
    Retry { why: String, wait: Option<Duration> },
    /// Not worth retrying.
    Fail(ApiError),
}

impl ChatApi {
    /// The client `config` describes (`endpoint` and `model` set), the key read from the
    /// environment now.
    pub fn new(config: &TaggerConfig) -> Self {
        let endpoint = config.endpoint.as_deref().unwrap_or_default();
        let url = if endpoint.ends_with("/chat/completions") {
            endpoint.to_owned()
        } else {
            format!("{}/chat/completions", endpoint.trim_end_matches('/'))
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .build();
        ChatApi {
            url,
            model: config.model.clone().unwrap_or_default(),
            key: std::env::var(&config.api_key_env)
                .ok()
                .filter(|k| !k.is_empty()),
            key_env: config.api_key_env.clone(),
            agent,
            concurrency: config.concurrency.max(1),
            max_retries: config.max_retries,
            first_wait: Duration::from_secs(1),
            max_tokens: config.max_new_tokens,
        }
    }

    /// The same client with another first wait before a retry (tests).
    pub fn with_first_wait(self, first_wait: Duration) -> Self {
        ChatApi { first_wait, ..self }
    }

    /// `MODEL at URL`: how `tags.json` and the logs name the tagger (never the key).
    pub fn describe(&self) -> String {
        format!("{} at {}", self.model, self.url)
    }

    /// The replies to `prompts`, in order, asked `concurrency` at a time.
    ///
    /// # Errors
    /// The first [`ApiError`] of any prompt; the prompts not yet sent are then not asked.
    ///
    /// # Panics
    /// Never: every prompt before an error is answered (the worker threads claim them in
    /// order).
    pub fn chat(&self, prompts: &[String]) -> Result<Vec<String>, ApiError> {
        let next = AtomicUsize::new(0);
        let replies: Mutex<Vec<Option<Result<String, ApiError>>>> =
            Mutex::new((0..prompts.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..self.concurrency.min(prompts.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(prompt) = prompts.get(i) else {
                            break;
                        };
                        let reply = self.ask(prompt);
                        let failed = reply.is_err();
                        replies
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(reply);
                        if failed {
                            // Send no more: the batch fails with this error.
                            next.store(prompts.len(), Ordering::SeqCst);
                            break;
                        }
                    }
                });
            }
        });
        // Prompts are claimed in order and every claimed one is answered, so an error comes
        // before any prompt left unasked.
        replies
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .into_iter()
            .map(|reply| reply.expect("unasked prompts follow an error"))
            .collect()
    }

    /// One prompt's reply, retried as the module says.
    fn ask(&self, prompt: &str) -> Result<String, ApiError> {
        let body = json!({
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.max_tokens,
            "temperature": 0.0,
        })
        .to_string();
        let mut wait = self.first_wait;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.post(&body) {
                Ok(reply) => return Ok(reply),
                Err(Attempt::Fail(error)) => return Err(error),
                Err(Attempt::Retry { why, .. }) if attempt > self.max_retries => {
                    return Err(ApiError::GaveUp {
                        url: self.url.clone(),
                        attempts: attempt,
                        last: why,
                    });
                }
                Err(Attempt::Retry { wait: asked, .. }) => {
                    std::thread::sleep(asked.unwrap_or(wait).min(MAX_WAIT));
                    wait = (wait * 2).min(MAX_WAIT);
                }
            }
        }
    }

    /// One request; the reply's text.
    fn post(&self, body: &str) -> Result<String, Attempt> {
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json");
        if let Some(key) = &self.key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let response = match request.send_string(body) {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            // Timeouts are I/O errors; a refused or dropped connection may be a restart.
            Err(ureq::Error::Transport(error))
                if matches!(
                    error.kind(),
                    ureq::ErrorKind::Io | ureq::ErrorKind::ConnectionFailed
                ) =>
            {
                return Err(Attempt::Retry {
                    why: error.to_string(),
                    wait: None,
                });
            }
            Err(error) => {
                return Err(Attempt::Fail(ApiError::Transport {
                    url: self.url.clone(),
                    error: error.to_string(),
                }));
            }
        };
        let status = response.status();
        let retry_after = response
            .header("retry-after")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let text = match response.into_string() {
            Ok(text) => text,
            Err(error) => {
                return Err(Attempt::Retry {
                    why: format!("reading the answer: {error}"),
                    wait: None,
                });
            }
        };
        match status {
            200..=299 => self.content(&text).map_err(Attempt::Fail),
            429 | 500..=599 => Err(Attempt::Retry {
                why: format!("{status}: {}", self.shown(&text)),
                wait: retry_after,
            }),
            401 | 403 => Err(Attempt::Fail(ApiError::Status {
                url: self.url.clone(),
                status,
                detail: format!(
                    " (the answer is not shown: it may quote the key); check the key in ${}{}",
                    self.key_env,
                    if self.key.is_none() {
                        ", which is unset"
                    } else {
                        ""
                    }
                ),
            })),
            _ => Err(Attempt::Fail(ApiError::Status {
                url: self.url.clone(),
                status,
                detail: format!(": {}", self.shown(&text)),
            })),
        }
    }

    /// `choices[0].message.content` of a chat completion (null content is an empty reply).
    fn content(&self, text: &str) -> Result<String, ApiError> {
        let fail = |problem| ApiError::Answer {
            url: self.url.clone(),
            problem,
            body: self.shown(text),
        };
        let value: Value = serde_json::from_str(text).map_err(|_| fail("not JSON"))?;
        let message = value
            .get("choices")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("message"))
            .ok_or_else(|| fail("no choices[0].message"))?;
        match message.get("content") {
            Some(Value::String(content)) => Ok(content.clone()),
            Some(Value::Null) | None => Ok(String::new()),
            Some(_) => Err(fail("choices[0].message.content is not a string")),
        }
    }

    /// An answer's body for an error: shortened, the key (should a server echo it) removed.
    fn shown(&self, text: &str) -> String {
        let text = match &self.key {
            Some(key) => text.replace(key.as_str(), "***"),
            None => text.to_owned(),
        };
        crate::data::show_text_max(&text, BODY_IN_ERRORS)
    }
}
