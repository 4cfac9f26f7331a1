//! Batched autoregressive generation with a KV cache: greedy decoding or temperature + nucleus
//! (top-p) sampling (Holtzman et al. 2020) from seeded ChaCha8 generators. A queue of prompts is
//! decoded by continuous batching ([`generate_queued`]: a row leaves the batch when it stops
//! and the next prompt takes its place, as in Orca, Yu et al. OSDI 2022, and vLLM's
//! scheduler). Works on token ids; tokenisation and chat templates belong to
//! [`crate::tokenizer`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::ops::{Bound, ControlFlow};
use std::time::Instant;

use burn::tensor::{Device, Int, Tensor, TensorData};
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
    /// Where the time went.
    pub stats: GenerationStats,
}

/// Where a [`generate_queued`] call's time went: the prompts' forward passes (prefill)
/// against the one-token steps (decode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Prefill forward passes (one per group of prompts joining the batch).
    pub prefills: usize,
    /// Prompt tokens computed (without padding and reused prefixes).
    pub prompt_tokens: usize,
    /// Prompt positions computed, padding included (per prefill: rows × longest prompt, or
    /// longest part after a reused prefix).
    pub padded_prompt_tokens: usize,
    /// Prompt tokens not computed because an earlier prompt's cache held them (a shared
    /// prefix such as the instruction, see [`generate_queued`]).
    pub reused_prompt_tokens: usize,
    /// Seconds of the prefill forward passes, the joining of their caches to the batch's
    /// included.
    pub prefill_seconds: f64,
    /// One-token decoding steps.
    pub decode_steps: usize,
    /// Seconds of the decoding steps (forward, logits read back, token choice, rows leaving).
    pub decode_seconds: f64,
    /// Rows summed over the decoding steps: the rows' positions decoded.
    pub row_steps: usize,
}

impl std::ops::AddAssign for GenerationStats {
    /// Sums the counts and seconds of two calls.
    fn add_assign(&mut self, other: Self) {
        self.prefills += other.prefills;
        self.prompt_tokens += other.prompt_tokens;
        self.padded_prompt_tokens += other.padded_prompt_tokens;
        self.reused_prompt_tokens += other.reused_prompt_tokens;
        self.prefill_seconds += other.prefill_seconds;
        self.decode_steps += other.decode_steps;
        self.decode_seconds += other.decode_seconds;
        self.row_steps += other.row_steps;
    }
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

/// Generates continuations of `prompts` (token ids), all decoding together: [`generate_queued`]
/// with a batch as large as the prompt list.
///
/// # Errors
/// As [`generate_queued`].
pub fn generate(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
) -> Result<Generation, GenerateError> {
    generate_queued(model, prompts, config, prompts.len().max(1), &mut |_| {
        ControlFlow::Continue(())
    })
}

/// Generates continuations of `prompts` (token ids) with at most `max_batch` rows decoding at
/// once (continuous batching): prompts join the batch in the order given, a row leaves it as
/// soon as it has produced an EOS token or `max_new_tokens` tokens, and the next queued prompts
/// are prefilled (left-padded to the longest of them, one forward pass) and join in the freed
/// places. So no step computes a row that has stopped, and one long answer does not hold up
/// the prompts behind it. Give the prompts sorted by length to keep the padding small.
///
/// A prompt that begins with at least [`MIN_SHARED_PREFIX`] tokens of an earlier prompt's (the
/// instruction that a task's instances share) takes those positions' keys and values from that
/// prompt's cache and computes only the rest (`PrefixPlan`): the keys and values of a position
/// depend only on the tokens up to it, so they are the same numbers.
///
/// A row's tokens do not depend on its batch: its positions and attention see only its own
/// tokens (padding is masked and does not move rotary positions), and top-p sampling draws
/// from a generator of its own (ChaCha8 seeded by `config.seed`, stream = the prompt's
/// index). Floating-point sums may still round differently with other padding or batch sizes.
///
/// `on_finished(p)` is called when prompt `p` stops; [`ControlFlow::Break`] ends the
/// generation there, returning what was generated so far.
///
/// # Errors
/// [`GenerateError::NoPrompts`], [`GenerateError::EmptyPrompt`],
/// [`GenerateError::TokenOutOfVocabulary`],
/// [`GenerateError::InvalidSampling`].
///
/// # Panics
/// When `max_batch` is 0.
pub fn generate_queued(
    model: &Llama,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    max_batch: usize,
    on_finished: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> Result<Generation, GenerateError> {
    assert!(max_batch > 0, "a batch holds at least one row");
    check_prompts(prompts, model.config().vocab_size)?;
    let start = Instant::now();
    let mut stats = GenerationStats::default();
    let mut tokens = vec![Vec::new(); prompts.len()];
    let mut finished = vec![false; prompts.len()];
    let mut produced = 0usize;
    // Nothing to generate: no prompt is prefilled.
    let queued = if config.max_new_tokens == 0 {
        0
    } else {
        prompts.len()
    };
    let mut queue = 0..queued;
    let mut prefixes = PrefixPlan::new(prompts);
    let mut rows: Vec<Row> = Vec::new();
    let mut cache = KvCache::new(model.layers.len());
    // Next-token logits `[rows, V]` of the running rows, in row order.
    let mut logits: Option<Tensor<2>> = None;
    loop {
        let admitted: Vec<usize> = queue.by_ref().take(max_batch - rows.len()).collect();
        if !admitted.is_empty() {
            let phase = Instant::now();
            for (new_cache, new_logits, spans) in
                prefixes.prefill(model, prompts, &admitted, &mut stats)
            {
                cache.append_rows(new_cache);
                logits = Some(match logits.take() {
                    Some(old) => Tensor::cat(vec![old, new_logits], 0),
                    None => new_logits,
                });
                rows.extend(
                    spans
                        .into_iter()
                        .map(|(prompt, span)| Row::new(prompt, span, config)),
                );
            }
            stats.prefill_seconds += phase.elapsed().as_secs_f64();
        }
        let Some(step_logits) = logits.take() else {
            break;
        };
        let phase = Instant::now();
        let v = step_logits.dims()[1];
        let host = step_logits
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 logits");
        let mut running = Vec::with_capacity(rows.len());
        let mut next = Vec::with_capacity(rows.len());
        let mut stopped = Vec::new();
        for (i, row) in rows.iter_mut().enumerate() {
            let token = sample_token(&host[i * v..(i + 1) * v], config.sampling, &mut row.rng)?;
            produced += 1;
            let out = &mut tokens[row.prompt];
            if config.eos_token_ids.contains(&token) {
                finished[row.prompt] = true;
                stopped.push(row.prompt);
            } else {
                out.push(token);
                if out.len() == config.max_new_tokens {
                    stopped.push(row.prompt);
                } else {
                    running.push(i);
                    next.push(i64::from(token));
                }
            }
        }
        if running.is_empty() {
            rows.clear();
            cache = KvCache::new(model.layers.len());
        } else if running.len() < rows.len() {
            cache.keep_rows(&running);
            rows = running.iter().map(|&i| rows[i].clone()).collect();
            // Positions every remaining row pads: left by the longer rows that stopped.
            let span = rows.iter().map(|r| r.span).max().unwrap_or(0);
            cache.drop_leading(cache.len() - span);
        }
        let mut interrupted = false;
        for &prompt in &stopped {
            interrupted |= on_finished(prompt).is_break();
        }
        if interrupted {
            break;
        }
        if !rows.is_empty() {
            let b = rows.len();
            let device = &cache_device(model);
            logits = Some(model.next_token_logits(
                int_tensor(next, [b, 1], device),
                Tensor::<2, Int>::ones([b, 1], device),
                &mut cache,
            ));
            for row in &mut rows {
                row.span += 1;
            }
            stats.decode_steps += 1;
            stats.row_steps += b;
        }
        stats.decode_seconds += phase.elapsed().as_secs_f64();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Generation {
        tokens,
        finished,
        seconds,
        tokens_per_second: produced as f64 / seconds.max(f64::MIN_POSITIVE),
        stats,
    })
}

/// A running row of [`generate_queued`].
#[derive(Debug, Clone)]
struct Row {
    /// Index of its prompt.
    prompt: usize,
    /// Its sampling generator.
    rng: ChaCha8Rng,
    /// Cached positions from its first real one to the end (the rest is padding).
    span: usize,
}

impl Row {
    fn new(prompt: usize, span: usize, config: &GenerationConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(prompt as u64);
        Self { prompt, rng, span }
    }
}

/// Rejects an empty prompt list, empty prompts and tokens outside the vocabulary.
fn check_prompts(prompts: &[Vec<u32>], vocab_size: usize) -> Result<(), GenerateError> {
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
    Ok(())
}

/// The device the model's weights live on.
fn cache_device(model: &Llama) -> Device {
    model.embed_tokens.weight.val().device()
}

/// `[rows, cols]` int tensor of `data`.
fn int_tensor(data: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// Shortest shared prefix that a prompt takes from an earlier prompt's cache. Longer than a
/// chat template's system turn (about 25 tokens for SmolLM2), which every prompt shares, so
/// that prompts follow the earlier prompt of their own instruction, not the first prompt.
pub const MIN_SHARED_PREFIX: usize = 32;

/// Rows joining the batch: their cache, next-token logits `[rows, V]`, and per row its prompt
/// and span (cached positions from its first real one).
type Joining = (KvCache, Tensor<2>, Vec<(usize, usize)>);

/// Which prompts reuse which earlier prompt's cache. In queue order, a prompt whose longest
/// common prefix with an earlier *leader* is at least [`MIN_SHARED_PREFIX`] tokens follows that
/// leader (sharing at most its own length − 1: one token is left to give its logits);
/// otherwise it is a leader itself. A leader's cache is kept from its prefill until its last
/// follower has joined (as vLLM's and SGLang's prefix caching reuse earlier requests').
struct PrefixPlan {
    /// Per prompt: the leader it follows and the number of tokens shared.
    follows: Vec<Option<(usize, usize)>>,
    /// Per leader: followers that have not joined yet.
    waiting: Vec<usize>,
    /// Caches of leaders with followers still to join: one row, no padding.
    kept: HashMap<usize, KvCache>,
}

impl PrefixPlan {
    fn new(prompts: &[Vec<u32>]) -> Self {
        let common = |a: &[u32], b: &[u32]| a.iter().zip(b).take_while(|(x, y)| x == y).count();
        // In sorted order, the longest common prefix with any leader is a neighbour's.
        let mut leaders: BTreeMap<&[u32], usize> = BTreeMap::new();
        let mut follows = vec![None; prompts.len()];
        let mut waiting = vec![0; prompts.len()];
        for (p, prompt) in prompts.iter().enumerate() {
            let key = prompt.as_slice();
            let below = leaders
                .range::<[u32], _>((Bound::Unbounded, Bound::Included(key)))
                .next_back();
            let above = leaders
                .range::<[u32], _>((Bound::Included(key), Bound::Unbounded))
                .next();
            let best = below
                .into_iter()
                .chain(above)
                .map(|(&leader, &l)| (common(leader, key).min(key.len() - 1), l))
                .max_by_key(|&(shared, l)| (shared, Reverse(l)));
            match best {
                Some((shared, leader)) if shared >= MIN_SHARED_PREFIX => {
                    follows[p] = Some((leader, shared));
                    waiting[leader] += 1;
                }
                _ => {
                    leaders.insert(key, p);
                }
            }
        }
        Self {
            follows,
            waiting,
            kept: HashMap::new(),
        }
    }

    /// Prefills the `admitted` prompts (in queue order): those without a leader in one forward
    /// pass, then the followers after their leaders' cached prefixes in another.
    fn prefill(
        &mut self,
        model: &Llama,
        prompts: &[Vec<u32>],
        admitted: &[usize],
        stats: &mut GenerationStats,
    ) -> Vec<Joining> {
        let (followers, plain): (Vec<usize>, Vec<usize>) =
            admitted.iter().partition(|&&p| self.follows[p].is_some());
        let mut joining = Vec::new();
        if !plain.is_empty() {
            let parts: Vec<&[u32]> = plain.iter().map(|&p| prompts[p].as_slice()).collect();
            let (cache, logits) =
                forward_parts(model, &parts, KvCache::new(model.layers.len()), stats);
            let longest = model.padded_width(parts.iter().map(|p| p.len()).max().unwrap_or(0));
            for (row, &p) in plain.iter().enumerate() {
                if self.waiting[p] > 0 {
                    let mut own = cache.clone();
                    own.keep_rows(&[row]);
                    own.drop_leading(longest - prompts[p].len());
                    self.kept.insert(p, own);
                }
            }
            let spans = plain.iter().map(|&p| (p, prompts[p].len())).collect();
            joining.push((cache, logits, spans));
        }
        if !followers.is_empty() {
            let mut prefixes = KvCache::new(model.layers.len());
            let mut parts = Vec::with_capacity(followers.len());
            for &p in &followers {
                let (leader, shared) = self.follows[p].expect("a follower");
                let mut prefix = self.kept[&leader].clone();
                prefix.truncate(shared);
                prefixes.append_rows(prefix);
                parts.push(&prompts[p][shared..]);
                stats.reused_prompt_tokens += shared;
                self.waiting[leader] -= 1;
                if self.waiting[leader] == 0 {
                    self.kept.remove(&leader);
                }
            }
            let (cache, logits) = forward_parts(model, &parts, prefixes, stats);
            // The width `forward_parts` pads the parts to.
            let rest = model.padded_width(parts.iter().map(|p| p.len()).max().unwrap_or(0));
            let spans = followers
                .iter()
                .zip(&parts)
                .map(|(&p, part)| (p, prompts[p].len() - part.len() + rest))
                .collect();
            joining.push((cache, logits, spans));
        }
        joining
    }
}

/// One forward pass over `parts` (per row the tokens to compute), left-padded to the longest
/// of them (with fixed shapes, to its bucket: [`Llama::padded_width`]), after the positions
/// `cache` already holds for each row (none for whole prompts): the extended cache and the
/// next-token logits `[rows, V]`.
fn forward_parts(
    model: &Llama,
    parts: &[&[u32]],
    mut cache: KvCache,
    stats: &mut GenerationStats,
) -> (KvCache, Tensor<2>) {
    let b = parts.len();
    let s = model.padded_width(parts.iter().map(|p| p.len()).max().unwrap_or(0));
    let mut ids = Vec::with_capacity(b * s);
    let mut mask = Vec::with_capacity(b * s);
    for part in parts {
        let pad = s - part.len();
        ids.extend(std::iter::repeat_n(0i64, pad).chain(part.iter().map(|&t| i64::from(t))));
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, part.len())));
        stats.prompt_tokens += part.len();
    }
    stats.prefills += 1;
    stats.padded_prompt_tokens += b * s;
    let device = cache_device(model);
    let logits = model.next_token_logits(
        int_tensor(ids, [b, s], &device),
        int_tensor(mask, [b, s], &device),
        &mut cache,
    );
    (cache, logits)
}
