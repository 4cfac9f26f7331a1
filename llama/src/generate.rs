//! Batched autoregressive generation with a KV cache: greedy decoding or temperature + nucleus
//! (top-p) sampling (Holtzman et al. 2020) from a seeded ChaCha8 generator. Works on token ids;
//! tokenisation and chat templates belong to [`crate::tokenizer`].

use std::time::Instant;

use burn::tensor::{Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::LlamaConfig;
use crate::model::{KvCache, Llama};

/// How the next token is chosen from the logits.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampling {
    /// The arg-max token (lowest id on ties).
    Greedy,
    /// Sample from `softmax(logits / temperature)` restricted to the smallest set of most
    /// probable tokens whose total probability reaches `top_p` (nucleus sampling).
    TopP {
        /// Softmax temperature, > 0.
        temperature: f32,
        /// Probability mass kept, in (0, 1].
        top_p: f32,
    },
}

/// Generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationConfig {
    /// Most tokens generated per prompt.
    pub max_new_tokens: usize,
    /// Token choice.
    pub sampling: Sampling,
    /// A row stops after producing any of these (not included in its output).
    pub eos_token_ids: Vec<u32>,
    /// Seed of the sampling generator (unused by greedy decoding).
    pub seed: u64,
}

impl GenerationConfig {
    /// Greedy decoding of up to `max_new_tokens`, stopping at the model's EOS token(s)
    /// ([`eos_token_ids`]).
    pub fn greedy(max_new_tokens: usize, config: &LlamaConfig) -> Self {
        Self {
            max_new_tokens,
            sampling: Sampling::Greedy,
            eos_token_ids: eos_token_ids(config),
            seed: 0,
        }
    }
}

/// The EOS ids of an HF config (`eos_token_id` may be a number or a list; absent → none).
pub fn eos_token_ids(config: &LlamaConfig) -> Vec<u32> {
    match &config.eos_token_id {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|id| id as u32).into_iter().collect(),
        Some(serde_json::Value::Array(ids)) => ids
            .iter()
            .filter_map(|v| v.as_u64().map(|id| id as u32))
            .collect(),
        _ => Vec::new(),
    }
}

/// Result of [`generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// New token ids per prompt, without the EOS token.
    pub tokens: Vec<Vec<u32>>,
    /// Whether each row stopped at an EOS token (rather than at `max_new_tokens`).
    pub finished: Vec<bool>,
    /// Wall-clock seconds for prefill and decoding.
    pub seconds: f64,
    /// Generated tokens (all rows, EOS included) per second of wall-clock time.
    pub tokens_per_second: f64,
}

/// Errors of [`generate`] and [`sample_token`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GenerateError {
    /// The prompt list is empty.
    #[error("no prompts to generate from")]
    NoPrompts,
    /// A prompt has no tokens.
    #[error("prompt {0} is empty")]
    EmptyPrompt(usize),
    /// A prompt token is not below the vocabulary size.
    #[error("prompt {prompt} has token {token} outside the vocabulary of {vocab_size}")]
    TokenOutOfVocabulary {
        /// Prompt index.
        prompt: usize,
        /// The token id.
        token: u32,
        /// Vocabulary size.
        vocab_size: usize,
    },
    /// Temperature ≤ 0 or not finite, or `top_p` outside (0, 1].
    #[error("invalid sampling parameters: temperature {temperature}, top_p {top_p}")]
    InvalidSampling {
        /// The temperature.
        temperature: f32,
        /// The nucleus mass.
        top_p: f32,
    },
}

/// Picks the next token from one row of logits.
///
/// Greedy: arg-max (lowest id on ties). Top-p: tokens sorted by probability
/// `softmax(logits / temperature)` (computed in f64), the shortest prefix whose mass reaches
/// `top_p` is kept and one token is drawn in proportion to its probability with one uniform
/// draw from `rng`.
///
/// # Errors
/// [`GenerateError::InvalidSampling`].
pub fn sample_token(
    logits: &[f32],
    sampling: Sampling,
    rng: &mut ChaCha8Rng,
) -> Result<u32, GenerateError> {
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                if x > best.1 { (i, x) } else { best }
            })
            .0 as u32
    };
    let (temperature, top_p) = match sampling {
        Sampling::Greedy => return Ok(argmax()),
        Sampling::TopP { temperature, top_p } => (temperature, top_p),
    };
    if !(temperature > 0.0 && temperature.is_finite() && top_p > 0.0 && top_p <= 1.0) {
        return Err(GenerateError::InvalidSampling { temperature, top_p });
    }
    let max = f64::from(logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)));
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            (
                i as u32,
                ((f64::from(x) - max) / f64::from(temperature)).exp(),
            )
        })
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0;
    let mut mass = 0.0;
    for &(_, p) in &probs {
        kept += 1;
        mass += p;
        if mass >= f64::from(top_p) * total {
            break;
        }
    }
    let mut u = rng.random::<f64>() * mass;
    for &(id, p) in &probs[..kept] {
        if u < p {
            return Ok(id);
        }
        u -= p;
    }
    Ok(probs[kept - 1].0)
}

/// Generates continuations of `prompts` (token ids) as one batch: prompts are left-padded to a
/// common length, prefilled in one forward pass, then decoded one token per step with the
/// KV cache until every row has produced an EOS token or `max_new_tokens` tokens.
///
/// # Errors
/// [`GenerateError::NoPrompts`], [`GenerateError::EmptyPrompt`],
/// [`GenerateError::TokenOutOfVocabulary`],
/// [`GenerateError::InvalidSampling`].
///
/// # Panics
/// When the backend cannot read the logits back as f32.
pub fn generate(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> Result<Generation, GenerateError> {
    let vocab_size = model.config().vocab_size;
    if prompts.is_empty() {
        return Err(GenerateError::NoPrompts);
    }
    for (p, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt(p));
        }
        if let Some(&token) = prompt.iter().find(|&&t| t as usize >= vocab_size) {
            return Err(GenerateError::TokenOutOfVocabulary {
                prompt: p,
                token,
                vocab_size,
            });
        }
    }
    let device = model.embed_tokens.weight.val().device();
    let start = Instant::now();
    let b = prompts.len();
    let s = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(b * s);
    let mut mask = Vec::with_capacity(b * s);
    for prompt in prompts {
        let pad = s - prompt.len();
        ids.extend(std::iter::repeat_n(0i64, pad).chain(prompt.iter().map(|&t| i64::from(t))));
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, prompt.len())));
    }
    let int = |data: Vec<i64>, cols: usize| {
        Tensor::<2, Int>::from_data(TensorData::new(data, [b, cols]), &device)
    };

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut cache = KvCache::new(model.layers.len());
    let mut logits = model.next_token_logits(int(ids, s), int(mask, s), &mut cache);
    let mut tokens = vec![Vec::new(); b];
    let mut finished = vec![false; b];
    let mut produced = 0usize;
    for step in 0..config.max_new_tokens {
        let v = logits.dims()[1];
        let last = logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 logits");
        let mut next = Vec::with_capacity(b);
        for r in 0..b {
            let token = sample_token(&last[r * v..(r + 1) * v], config.sampling, &mut rng)?;
            if !finished[r] {
                produced += 1;
                if config.eos_token_ids.contains(&token) {
                    finished[r] = true;
                } else {
                    tokens[r].push(token);
                }
            }
            next.push(i64::from(token));
        }
        if finished.iter().all(|&f| f) || step + 1 == config.max_new_tokens {
            break;
        }
        logits = model.next_token_logits(int(next, 1), int(vec![1; b], 1), &mut cache);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Generation {
        tokens,
        finished,
        seconds,
        tokens_per_second: produced as f64 / seconds.max(f64::MIN_POSITIVE),
    })
}
