//! LLaMA decoder in burn, following Hugging Face `transformers`' `LlamaForCausalLM`
//! (`models/llama/modeling_llama.py`): token embedding, pre-norm decoder layers (RMSNorm,
//! grouped-query self-attention with rotary position embeddings in the rotate-half
//! convention, SwiGLU MLP), final RMSNorm and a tied or untied output head.
//!
//! Tensors are burn's backend-dispatched [`Tensor`]s: the same code runs on any device
//! (flex CPU, wgpu) chosen at run time through [`Device`]. Module field names mirror HF's
//! (`layers.3.self_attn.q_proj.weight`); the seven projections of a layer are [`LoraLinear`]s,
//! which carry a LoRA adapter once [`crate::peft::apply_lora`] attaches one.

use burn::module::{Module, Param};
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::config::LlamaConfig;
use crate::io::host::{CheckpointTensors, HostTensor, HostTensors};
use crate::kernels::attention::masked_attention;
use crate::kernels::frozen_matmul::project;
use crate::kernels::head_loss::head_nll_sum;
use crate::kernels::swiglu::swiglu;
use crate::lora::{LoraLinear, LoraTarget};
use crate::shapes::{FixedShapes, ShapeKind, record};

/// Label value excluded from the loss (PyTorch `CrossEntropyLoss(ignore_index=-100)`).
pub const IGNORE_INDEX: i64 = -100;

/// Errors while building a [`Llama`] from a configuration and checkpoint tensors.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// A tensor the architecture needs is absent from the checkpoint.
    #[error("checkpoint has no tensor `{0}`")]
    MissingTensor(String),
    /// A tensor has a different shape than the configuration implies.
    #[error("tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch {
        /// HF tensor name.
        name: String,
        /// Shape implied by the configuration (HF layout).
        expected: Vec<usize>,
        /// Shape found in the checkpoint.
        found: Vec<usize>,
    },
    /// Head counts or widths that do not divide as LLaMA requires.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// `rope_scaling` names a scaling type this implementation does not know.
    #[error("unsupported rope_scaling type `{0}` (supported: default, linear, llama3)")]
    UnsupportedRopeScaling(String),
    /// `rope_scaling` lacks a field (or has a non-numeric one) that its type requires.
    #[error("rope_scaling of type `{kind}` needs a numeric `{field}`")]
    InvalidRopeScaling {
        /// Scaling type.
        kind: String,
        /// Missing or malformed field.
        field: String,
    },
}

/// RoPE inverse frequencies `θ^(-2i/d)` for `i < d/2` (HF `_compute_default_rope_parameters`),
/// adjusted by `config.rope_scaling`:
/// - `linear`: divided by `factor` (HF `_compute_linear_scaling_rope_parameters`);
/// - `llama3`: long wavelengths divided by `factor`, short ones kept, the band between smoothly
///   interpolated (HF `_compute_llama3_parameters`).
///
/// Both leave HF's attention scaling at 1. Computed in f64, returned as f32.
///
/// # Errors
/// [`ModelError::UnsupportedRopeScaling`] for another `rope_type`/`type`,
/// [`ModelError::InvalidRopeScaling`] when a required field is missing.
pub fn rope_inv_freq(config: &LlamaConfig) -> Result<Vec<f32>, ModelError> {
    let d = config.head_dim();
    let inv: Vec<f64> = (0..d / 2)
        .map(|i| 1.0 / config.rope_theta.powf(2.0 * i as f64 / d as f64))
        .collect();
    let Some(scaling) = &config.rope_scaling else {
        return Ok(inv.into_iter().map(|f| f as f32).collect());
    };
    let kind = scaling
        .get("rope_type")
        .or_else(|| scaling.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default")
        .to_string();
    let field = |name: &str| {
        scaling
            .get(name)
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| ModelError::InvalidRopeScaling {
                kind: kind.clone(),
                field: name.to_string(),
            })
    };
    let scaled: Vec<f64> = match kind.as_str() {
        "default" => inv,
        "linear" => {
            let factor = field("factor")?;
            inv.into_iter().map(|f| f / factor).collect()
        }
        "llama3" => {
            let factor = field("factor")?;
            let low = field("low_freq_factor")?;
            let high = field("high_freq_factor")?;
            let old_ctx = field("original_max_position_embeddings")?;
            let (low_wavelen, high_wavelen) = (old_ctx / low, old_ctx / high);
            inv.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old_ctx / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
        _ => return Err(ModelError::UnsupportedRopeScaling(kind)),
    };
    Ok(scaled.into_iter().map(|f| f as f32).collect())
}

/// Grouped-query self-attention (HF `LlamaAttention`, no biases).
#[derive(Module, Debug)]
pub struct Attention {
    /// Query projection, burn layout `[d, n_heads * head_dim]`.
    pub q_proj: LoraLinear,
    /// Key projection, `[d, n_kv_heads * head_dim]`.
    pub k_proj: LoraLinear,
    /// Value projection, `[d, n_kv_heads * head_dim]`.
    pub v_proj: LoraLinear,
    /// Output projection, `[n_heads * head_dim, d]`.
    pub o_proj: LoraLinear,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
}

/// SwiGLU feed-forward block: `down(silu(gate(x)) * up(x))` (HF `LlamaMLP`).
#[derive(Module, Debug)]
pub struct Mlp {
    /// `[d, intermediate]`.
    pub gate_proj: LoraLinear,
    /// `[d, intermediate]`.
    pub up_proj: LoraLinear,
    /// `[intermediate, d]`.
    pub down_proj: LoraLinear,
}

/// One pre-norm decoder layer (HF `LlamaDecoderLayer`).
#[derive(Module, Debug)]
pub struct DecoderLayer {
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm,
    /// Self-attention.
    pub self_attn: Attention,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm,
    /// Feed-forward block.
    pub mlp: Mlp,
}

/// A LLaMA causal language model (HF `LlamaForCausalLM`).
#[derive(Module, Debug)]
pub struct Llama {
    /// Token embedding `[V, d]` (also the output head when embeddings are tied).
    pub embed_tokens: Embedding,
    /// Decoder layers.
    pub layers: Vec<DecoderLayer>,
    /// Final RMSNorm.
    pub norm: RmsNorm,
    /// Untied output head `[d, V]`; `None` when it is the transposed embedding.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    inv_freq: Vec<f32>,
    #[module(skip)]
    config: LlamaConfig,
    /// Whether training recomputes each decoder layer in the backward pass
    /// ([`crate::checkpoint`]).
    #[module(skip)]
    checkpoint_layers: bool,
    /// Bucketed shapes for the GPU backends ([`crate::shapes`]); `None` = exact shapes.
    #[module(skip)]
    fixed_shapes: Option<FixedShapes>,
}

/// Key/value cache for incremental decoding: per layer the rotated keys and the values of every
/// position seen so far (`[b, n_kv_heads, t, head_dim]`, see [`LayerCache`]), and the
/// attention mask of those positions (`[b, t]`, 1 = real token, 0 = padding).
///
/// Rows can leave ([`KvCache::keep_rows`]) and join ([`KvCache::append_rows`]) between steps,
/// for continuous batching.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerCache>>,
    mask: Option<Tensor<2, Int>>,
}

/// One decoder layer's cached keys and values: buffers `[b, n_kv_heads, capacity, head_dim]`
/// whose first `len` positions are filled. Appending a step's keys writes them in place
/// (burn-flex's `slice_assign` reuses a uniquely owned buffer) instead of concatenating the
/// whole cache anew at every step; a full buffer doubles.
#[derive(Debug, Clone)]
struct LayerCache {
    keys: Tensor<4>,
    values: Tensor<4>,
    len: usize,
}

impl LayerCache {
    /// A cache holding exactly `keys` and `values` (`[b, n_kv_heads, t, head_dim]`).
    fn new(keys: Tensor<4>, values: Tensor<4>) -> Self {
        let len = keys.dims()[2];
        Self { keys, values, len }
    }

    /// This cache with `keys` and `values` (`[b, n_kv_heads, s, head_dim]`) appended.
    fn appended(self, keys: Tensor<4>, values: Tensor<4>) -> Self {
        let [b, heads, s, head_dim] = keys.dims();
        let end = self.len + s;
        let (mut key_buffer, mut value_buffer) = (self.keys, self.values);
        if end > key_buffer.dims()[2] {
            let capacity = 2 * end;
            key_buffer = with_capacity(key_buffer, self.len, capacity);
            value_buffer = with_capacity(value_buffer, self.len, capacity);
        }
        let range = [0..b, 0..heads, self.len..end, 0..head_dim];
        Self {
            keys: key_buffer.slice_assign(range.clone(), keys),
            values: value_buffer.slice_assign(range, values),
            len: end,
        }
    }

    /// Views of the filled positions: keys and values `[b, n_kv_heads, len, head_dim]`.
    fn filled(&self) -> (Tensor<4>, Tensor<4>) {
        (
            self.keys.clone().narrow(2, 0, self.len),
            self.values.clone().narrow(2, 0, self.len),
        )
    }

    /// Views of the first `t` positions (`t ≥ len`: the filled ones, then zeros that the
    /// attention mask blocks), `[b, n_kv_heads, t, head_dim]`; the buffers grow to hold `t`.
    fn window(&mut self, t: usize) -> (Tensor<4>, Tensor<4>) {
        if t > self.keys.dims()[2] {
            self.keys = with_capacity(self.keys.clone(), self.len, t);
            self.values = with_capacity(self.values.clone(), self.len, t);
        }
        (
            self.keys.clone().narrow(2, 0, t),
            self.values.clone().narrow(2, 0, t),
        )
    }

    /// Applies `f` to the filled keys and to the filled values; the result has no spare room.
    fn map(self, f: impl Fn(Tensor<4>) -> Tensor<4>) -> Self {
        let (keys, values) = self.filled();
        Self::new(f(keys), f(values))
    }
}

/// The first `len` positions of `buffer` (`[b, h, t, d]`) in a new buffer of `capacity`
/// positions, the rest zero.
fn with_capacity(buffer: Tensor<4>, len: usize, capacity: usize) -> Tensor<4> {
    let [b, heads, _, head_dim] = buffer.dims();
    let spare = Tensor::<4>::zeros([b, heads, capacity - len, head_dim], &buffer.device());
    Tensor::cat(vec![buffer.narrow(2, 0, len), spare], 2)
}

impl KvCache {
    /// An empty cache for a model with `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            mask: None,
        }
    }

    /// Number of cached positions t (including padding positions).
    pub fn len(&self) -> usize {
        self.mask.as_ref().map_or(0, |m| m.dims()[1])
    }

    /// Whether nothing has been cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the rows `rows` (indices into the current rows, in the order given) and drops the
    /// others: a finished sequence leaves a running batch (continuous batching).
    ///
    /// # Panics
    /// When a row index is out of range.
    pub fn keep_rows(&mut self, rows: &[usize]) {
        let Some(mask) = self.mask.take() else {
            return;
        };
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect(), [rows.len()]),
            &mask.device(),
        );
        for layer in self.layers.iter_mut().flatten() {
            // The whole buffers, spare room included: the next step writes in place.
            layer.keys = layer.keys.clone().select(0, index.clone());
            layer.values = layer.values.clone().select(0, index.clone());
        }
        self.mask = Some(mask.select(0, index));
    }

    /// Appends the rows of `other` (a cache of the same model) after this cache's rows. The
    /// shorter of the two is left-padded with masked positions (zero keys and values, mask 0)
    /// to the other's length, which changes no real position's attention or rotary position.
    ///
    /// # Panics
    /// When the two caches hold different numbers of layers.
    pub fn append_rows(&mut self, mut other: KvCache) {
        assert_eq!(self.layers.len(), other.layers.len(), "caches of one model");
        if self.is_empty() {
            *self = other;
            return;
        }
        if other.is_empty() {
            return;
        }
        let t = self.len().max(other.len());
        self.pad_left(t);
        other.pad_left(t);
        for (slot, theirs) in self.layers.iter_mut().zip(other.layers) {
            let (mine, theirs) = (
                slot.take().expect("a filled cache has every layer"),
                theirs.expect("a filled cache has every layer"),
            );
            let ((k_mine, v_mine), (k_theirs, v_theirs)) = (mine.filled(), theirs.filled());
            *slot = Some(LayerCache::new(
                Tensor::cat(vec![k_mine, k_theirs], 0),
                Tensor::cat(vec![v_mine, v_theirs], 0),
            ));
        }
        let (mine, theirs) = (self.mask.take(), other.mask);
        self.mask = Some(Tensor::cat(
            vec![mine.expect("non-empty"), theirs.expect("non-empty")],
            0,
        ));
    }

    /// Left-pads every row to `t` positions with masked ones (zero keys and values, mask 0).
    fn pad_left(&mut self, t: usize) {
        let Some(mask) = self.mask.take() else {
            return;
        };
        let [b, len] = mask.dims();
        let extra = t.saturating_sub(len);
        let device = mask.device();
        self.mask = Some(if extra == 0 {
            mask
        } else {
            Tensor::cat(vec![Tensor::<2, Int>::zeros([b, extra], &device), mask], 1)
        });
        if extra == 0 {
            return;
        }
        for slot in &mut self.layers {
            *slot = slot.take().map(|layer| {
                layer.map(|x| {
                    let [_, heads, _, head_dim] = x.dims();
                    let zeros = Tensor::<4>::zeros([b, heads, extra, head_dim], &device);
                    Tensor::cat(vec![zeros, x], 2)
                })
            });
        }
    }

    /// Keeps the first `n` positions of every row (a prompt's prefix shared with another one).
    ///
    /// # Panics
    /// When `n` exceeds [`KvCache::len`].
    pub fn truncate(&mut self, n: usize) {
        let t = self.len();
        assert!(n <= t, "keeping {n} of {t} cached positions");
        for slot in &mut self.layers {
            *slot = slot.take().map(|layer| layer.map(|x| x.narrow(2, 0, n)));
        }
        self.mask = self.mask.take().map(|m| m.narrow(1, 0, n));
    }

    /// Drops the first `n` positions of every row (they must be padding in every row, as
    /// after the longest rows left the batch): later steps attend over fewer keys.
    ///
    /// # Panics
    /// When `n` exceeds [`KvCache::len`].
    pub fn drop_leading(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        let t = self.len();
        assert!(n <= t, "dropping {n} of {t} cached positions");
        for slot in &mut self.layers {
            *slot = slot
                .take()
                .map(|layer| layer.map(|x| x.narrow(2, n, t - n)));
        }
        self.mask = self.mask.take().map(|m| m.narrow(1, n, t - n));
    }
}

/// Position-dependent inputs shared by all layers of one forward pass.
pub(crate) struct Positional {
    /// `[b, 1, s, head_dim]` RoPE cosines and sines.
    cos: Tensor<4>,
    sin: Tensor<4>,
    /// `[b, 1, s, t]`: true where a query may not attend to a key (future or padding).
    blocked: Tensor<4, Bool>,
}

fn rotate_half(x: Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

fn apply_rope(x: Tensor<4>, pos: &Positional) -> Tensor<4> {
    x.clone() * pos.cos.clone() + rotate_half(x) * pos.sin.clone()
}

impl Attention {
    /// `x`: `[b, s, d]` → `[b, s, d]`. Appends this call's keys/values to `cache` when given.
    fn forward(
        &self,
        x: Tensor<3>,
        pos: &Positional,
        cache: Option<&mut Option<LayerCache>>,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let heads = |proj: &LoraLinear, n: usize| {
            proj.forward(x.clone())
                .reshape([b, s, n, self.head_dim])
                .swap_dims(1, 2)
        };
        let q = apply_rope(heads(&self.q_proj, self.n_heads), pos);
        let k = apply_rope(heads(&self.k_proj, self.n_kv_heads), pos);
        let v = heads(&self.v_proj, self.n_kv_heads);
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        // Masked scores are −∞, so a fully masked row (a padding query of a left-padded
        // batch) attends to nothing and outputs zeros where HF's `finfo.min` fill averages V:
        // only that padding position's own states differ, and no real query reads them (their
        // keys are masked).
        let out = match cache {
            Some(slot) => {
                let mut layer = match slot.take() {
                    Some(layer) => layer.appended(k, v),
                    None => LayerCache::new(k, v),
                };
                // The attended width: the filled positions, or with fixed shapes a bucket.
                let (k, v) = layer.window(pos.blocked.dims()[3]);
                *slot = Some(layer);
                self.grouped_attention(q, k, v, pos, scale)
            }
            None => {
                let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
                let t = k.dims()[2];
                let blocked = pos.blocked.clone().expand([b, self.n_heads, s, t]);
                masked_attention(q, k, v, blocked, scale)
            }
        };
        self.o_proj.forward(
            out.swap_dims(1, 2)
                .reshape([b, s, self.n_heads * self.head_dim]),
        )
    }

    /// Attention of `q` `[b, n_heads, s, hd]` over the key/value heads `k`, `v`
    /// `[b, n_kv, t, hd]` without repeating them: the queries of each key/value head's group
    /// are stacked along the sequence (`[b, n_kv, n_rep · s, hd]`), which gives each query the
    /// same keys as HF's `repeat_kv` and copies the s queries instead of the t keys and values
    /// (t ≫ s when decoding). Returns `[b, n_heads, s, hd]`.
    fn grouped_attention(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        pos: &Positional,
        scale: f64,
    ) -> Tensor<4> {
        let [b, _, s, hd] = q.dims();
        let t = k.dims()[2];
        let (n_kv, n_rep) = (self.n_kv_heads, self.n_heads / self.n_kv_heads);
        let blocked = pos
            .blocked
            .clone()
            .unsqueeze_dim::<5>(1)
            .expand([b, n_kv, n_rep, s, t])
            .reshape([b, n_kv, n_rep * s, t]);
        masked_attention(q.reshape([b, n_kv, n_rep * s, hd]), k, v, blocked, scale).reshape([
            b,
            self.n_heads,
            s,
            hd,
        ])
    }

    /// HF `repeat_kv`: `[b, n_kv, t, hd]` → `[b, n_heads, t, hd]`, query head `h` reading
    /// key/value head `h / (n_heads / n_kv)`.
    fn repeat_kv(&self, x: Tensor<4>) -> Tensor<4> {
        let n_rep = self.n_heads / self.n_kv_heads;
        if n_rep == 1 {
            return x;
        }
        let [b, n_kv, t, hd] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, n_kv, n_rep, t, hd])
            .reshape([b, n_kv * n_rep, t, hd])
    }
}

impl Mlp {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = self.gate_proj.forward(x.clone());
        self.down_proj
            .forward(swiglu(gate, self.up_proj.forward(x)))
    }
}

impl DecoderLayer {
    fn forward(
        &self,
        x: Tensor<3>,
        pos: &Positional,
        cache: Option<&mut Option<LayerCache>>,
    ) -> Tensor<3> {
        let h = x.clone()
            + self
                .self_attn
                .forward(self.input_layernorm.forward(x), pos, cache);
        h.clone() + self.mlp.forward(self.post_attention_layernorm.forward(h))
    }

    /// The projection LoRA names `target`.
    pub fn projection(&self, target: LoraTarget) -> &LoraLinear {
        match target {
            LoraTarget::QProj => &self.self_attn.q_proj,
            LoraTarget::KProj => &self.self_attn.k_proj,
            LoraTarget::VProj => &self.self_attn.v_proj,
            LoraTarget::OProj => &self.self_attn.o_proj,
            LoraTarget::GateProj => &self.mlp.gate_proj,
            LoraTarget::UpProj => &self.mlp.up_proj,
            LoraTarget::DownProj => &self.mlp.down_proj,
        }
    }

    /// [`DecoderLayer::projection`], mutably.
    pub fn projection_mut(&mut self, target: LoraTarget) -> &mut LoraLinear {
        match target {
            LoraTarget::QProj => &mut self.self_attn.q_proj,
            LoraTarget::KProj => &mut self.self_attn.k_proj,
            LoraTarget::VProj => &mut self.self_attn.v_proj,
            LoraTarget::OProj => &mut self.self_attn.o_proj,
            LoraTarget::GateProj => &mut self.mlp.gate_proj,
            LoraTarget::UpProj => &mut self.mlp.up_proj,
            LoraTarget::DownProj => &mut self.mlp.down_proj,
        }
    }
}

/// The checkpoint's tensors as the model takes them: each once, shapes checked.
struct Source {
    tensors: CheckpointTensors,
    device: Device,
}

impl Source {
    fn shape_mismatch(name: &str, expected: &[usize], found: &[usize]) -> ModelError {
        ModelError::ShapeMismatch {
            name: name.to_string(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        }
    }

    /// The dense tensor `name` with HF shape `shape`.
    fn dense(&mut self, name: &str, shape: &[usize]) -> Result<HostTensor, ModelError> {
        let t = self
            .tensors
            .dense
            .remove(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        if t.shape != shape {
            return Err(Self::shape_mismatch(name, shape, &t.shape));
        }
        Ok(t)
    }

    fn param<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>, ModelError> {
        let t = self.dense(name, &shape)?;
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(t.data, shape),
            &self.device,
        )))
    }

    /// A linear weight from HF `[out, in]`, transposed to burn's `[in, out]`.
    fn linear_weight(
        &mut self,
        name: &str,
        out_features: usize,
        in_features: usize,
    ) -> Result<Param<Tensor<2>>, ModelError> {
        let t = self.dense(name, &[out_features, in_features])?.transposed();
        Ok(Param::from_tensor(Tensor::from_data(
            TensorData::new(t.data, [in_features, out_features]),
            &self.device,
        )))
    }

    /// A projection: its weight kept in storage when the checkpoint read it so, else dense.
    fn projection(
        &mut self,
        name: &str,
        out_features: usize,
        in_features: usize,
    ) -> Result<LoraLinear, ModelError> {
        match self.tensors.stored.remove(name) {
            Some(w) if w.shape() != [out_features, in_features] => Err(Self::shape_mismatch(
                name,
                &[out_features, in_features],
                &w.shape(),
            )),
            Some(w) => Ok(LoraLinear::stored(w)),
            None => self
                .linear_weight(name, out_features, in_features)
                .map(LoraLinear::new),
        }
    }

    fn rms_norm(&mut self, name: &str, d: usize, eps: f64) -> Result<RmsNorm, ModelError> {
        Ok(RmsNorm {
            gamma: self.param(name, [d])?,
            epsilon: eps,
        })
    }
}

impl Llama {
    /// Builds the model from HF-named host tensors (`model.embed_tokens.weight`,
    /// `model.layers.{i}.self_attn.q_proj.weight`, …, `model.norm.weight`, and `lm_head.weight`
    /// unless `tie_word_embeddings`), all f32 parameters. Linear weights are HF `[out, in]`;
    /// extra tensors are ignored.
    ///
    /// # Errors
    /// As [`Llama::from_checkpoint`].
    pub fn from_host_tensors(
        config: &LlamaConfig,
        tensors: &HostTensors,
        device: &Device,
    ) -> Result<Self, ModelError> {
        Self::from_checkpoint(config, CheckpointTensors::dense(tensors.clone()), device)
    }

    /// Builds the model from a checkpoint's tensors (HF names as for
    /// [`Llama::from_host_tensors`]), taking them over: dense tensors become f32 parameters
    /// on `device` without another copy, and projection weights in `tensors.stored` stay in
    /// their storage format ([`LoraLinear::stored`]).
    ///
    /// # Errors
    /// [`ModelError::MissingTensor`] / [`ModelError::ShapeMismatch`] naming the tensor,
    /// [`ModelError::InvalidConfig`] when heads do not divide `hidden_size`, `n_kv_heads`
    /// does not divide `n_heads` or the head dimension is odd, and the RoPE-scaling errors of [`rope_inv_freq`].
    pub fn from_checkpoint(
        config: &LlamaConfig,
        tensors: CheckpointTensors,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let (d, n_heads, n_kv) = (
            config.hidden_size,
            config.num_attention_heads,
            config.kv_heads(),
        );
        if n_heads == 0 || d % n_heads != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "hidden_size {d} is not a multiple of num_attention_heads {n_heads}"
            )));
        }
        if n_kv == 0 || n_heads % n_kv != 0 {
            return Err(ModelError::InvalidConfig(format!(
                "num_attention_heads {n_heads} is not a multiple of num_key_value_heads {n_kv}"
            )));
        }
        let head_dim = config.head_dim();
        if !head_dim.is_multiple_of(2) {
            return Err(ModelError::InvalidConfig(format!(
                "head dimension {head_dim} must be even for rotary embeddings"
            )));
        }
        let (v, ff, eps) = (
            config.vocab_size,
            config.intermediate_size,
            config.rms_norm_eps,
        );
        let inv_freq = rope_inv_freq(config)?;
        let mut source = Source {
            tensors,
            device: device.clone(),
        };
        let embed_tokens = Embedding {
            weight: source.param("model.embed_tokens.weight", [v, d])?,
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("model.layers.{i}.");
                let mut lin =
                    |name: &str, out_f, in_f| source.projection(&format!("{p}{name}"), out_f, in_f);
                let self_attn = Attention {
                    q_proj: lin("self_attn.q_proj.weight", n_heads * head_dim, d)?,
                    k_proj: lin("self_attn.k_proj.weight", n_kv * head_dim, d)?,
                    v_proj: lin("self_attn.v_proj.weight", n_kv * head_dim, d)?,
                    o_proj: lin("self_attn.o_proj.weight", d, n_heads * head_dim)?,
                    n_heads,
                    n_kv_heads: n_kv,
                    head_dim,
                };
                let mlp = Mlp {
                    gate_proj: lin("mlp.gate_proj.weight", ff, d)?,
                    up_proj: lin("mlp.up_proj.weight", ff, d)?,
                    down_proj: lin("mlp.down_proj.weight", d, ff)?,
                };
                Ok(DecoderLayer {
                    input_layernorm: source.rms_norm(
                        &format!("{p}input_layernorm.weight"),
                        d,
                        eps,
                    )?,
                    self_attn,
                    post_attention_layernorm: source.rms_norm(
                        &format!("{p}post_attention_layernorm.weight"),
                        d,
                        eps,
                    )?,
                    mlp,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(Linear {
                weight: source.linear_weight("lm_head.weight", v, d)?,
                bias: None,
            })
        };
        Ok(Self {
            embed_tokens,
            layers,
            norm: source.rms_norm("model.norm.weight", d, eps)?,
            lm_head,
            inv_freq,
            config: config.clone(),
            checkpoint_layers: false,
            fixed_shapes: None,
        })
    }

    /// The model with activation checkpointing per decoder layer on or off: training
    /// ([`crate::train::accumulate_gradients`]) then recomputes each layer's activations in
    /// the backward pass instead of keeping them ([`crate::checkpoint`]).
    pub fn with_layer_checkpointing(mut self, on: bool) -> Self {
        self.checkpoint_layers = on;
        self
    }

    /// Whether training checkpoints each decoder layer.
    pub fn checkpoints_layers(&self) -> bool {
        self.checkpoint_layers
    }

    /// The model with `shapes` ([`crate::shapes`]): the scored rows of its loss padded to a
    /// bucket, generation prompts and the attended KV-cache positions to bucketed widths. The
    /// caller pads training batches ([`crate::train::collate_shaped`] with
    /// [`Llama::fixed_shapes`]). `None`: exact shapes (the default).
    pub fn with_fixed_shapes(mut self, shapes: Option<FixedShapes>) -> Self {
        self.fixed_shapes = shapes;
        self
    }

    /// The shapes set by [`Llama::with_fixed_shapes`].
    pub fn fixed_shapes(&self) -> Option<FixedShapes> {
        self.fixed_shapes
    }

    /// The width a sequence of `longest` tokens is padded to: `longest` itself without fixed
    /// shapes, else its bucket ([`FixedShapes::width`]).
    pub fn padded_width(&self, longest: usize) -> usize {
        self.fixed_shapes
            .map_or(longest, |shapes| shapes.width(longest))
    }

    /// Whether an adapter drops inputs while training (a dropout probability above 0).
    pub fn adapter_dropout_active(&self) -> bool {
        self.layers.iter().any(|layer| {
            LoraTarget::ALL.into_iter().any(|target| {
                layer
                    .projection(target)
                    .lora
                    .as_ref()
                    .is_some_and(|a| a.dropout.prob > 0.0)
            })
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Next-token logits `[b, s, V]` for `tokens` `[b, s]` with `attention_mask` `[b, s]`
    /// (1 = real token, 0 = padding; left or right padding).
    ///
    /// Position ids are `cumsum(mask) - 1` clamped at 0 (what HF `generate` passes for padded
    /// batches; `arange(s)` for unpadded and right-padded rows), so the logits at a row's real
    /// positions equal those of the unpadded sequence. Logits at padding positions are finite
    /// but meaningless.
    pub fn forward(&self, tokens: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<3> {
        let h = self.run(tokens, attention_mask, None, self.layers.len());
        self.head(h)
    }

    /// Like [`Llama::forward`] for the new tokens `[b, s]` after the positions already in
    /// `cache`, which is extended with them (incremental decoding). `attention_mask` `[b, s]`
    /// covers the new tokens only; the cached positions keep their mask. Returns `[b, s, V]`.
    pub fn forward_cached(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        cache: &mut KvCache,
    ) -> Tensor<3> {
        let h = self.run(tokens, attention_mask, Some(cache), self.layers.len());
        self.head(h)
    }

    /// [`Llama::forward_cached`] restricted to the last new position: next-token logits
    /// `[b, V]`. Skips the output head at the other positions (the head is a d × V matmul per
    /// position, the largest single cost for small models with large vocabularies).
    pub fn next_token_logits(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        cache: &mut KvCache,
    ) -> Tensor<2> {
        let h = self.run(tokens, attention_mask, Some(cache), self.layers.len());
        let [b, s, _] = h.dims();
        let logits = self.head(h.narrow(1, s - 1, 1));
        let v = logits.dims()[2];
        logits.reshape([b, v])
    }

    /// Hidden states `[b, s, d]` with HF's `output_hidden_states` indexing: `layer = 0` is the
    /// token embedding, `layer = i` the output of decoder layer i, and `layer = num_layers`
    /// the final (RMS-normalised) hidden state. `layer` is clamped to `num_layers`.
    pub fn hidden_states(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        layer: usize,
    ) -> Tensor<3> {
        self.run(tokens, attention_mask, None, layer.min(self.layers.len()))
    }

    /// Mean of [`Llama::hidden_states`] over each row's real tokens: `[b, d]`. Used as an
    /// instruction embedding (InsCL, Wang et al. 2024: task similarity from the embeddings of its
    /// instructions). A row without real tokens gives NaN.
    pub fn mean_pooled_hidden(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        layer: usize,
    ) -> Tensor<2> {
        let h = self.hidden_states(tokens, attention_mask.clone(), layer);
        let m = attention_mask.float().unsqueeze_dim::<3>(2);
        let summed = (h * m.clone()).sum_dim(1).squeeze_dim::<2>(1);
        summed / m.sum_dim(1).squeeze_dim::<2>(1)
    }

    /// Mean next-token cross-entropy (nats) as HF `LlamaForCausalLM(labels=...)`: the logits
    /// at position i are scored against `labels[i + 1]` and labels equal to [`IGNORE_INDEX`]
    /// (-100: prompt and padding tokens) are skipped. `tokens`, `attention_mask`, `labels`:
    /// `[b, s]`; returns `[1]`. NaN when no label is scored (as in PyTorch).
    ///
    /// With a frozen output head (LoRA) the loss and its gradient come from
    /// [`head_nll_sum`], which never holds all the scored logits at once; a trained head
    /// takes burn's log-softmax of the logits.
    pub fn causal_lm_loss(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        labels: Tensor<2, Int>,
    ) -> Tensor<1> {
        let hidden = self.final_hidden(tokens, attention_mask);
        self.causal_lm_loss_of_hidden(hidden, labels)
    }

    /// [`Llama::causal_lm_loss`] of the final hidden states `hidden` `[b, s, d]`
    /// ([`Llama::final_hidden`]) and `labels` `[b, s]`.
    pub fn causal_lm_loss_of_hidden(&self, hidden: Tensor<3>, labels: Tensor<2, Int>) -> Tensor<1> {
        let device = hidden.device();
        let Some((hidden, targets)) = scored_hidden(hidden, labels) else {
            return Tensor::<1>::from_data(TensorData::new(vec![f32::NAN], [1]), &device);
        };
        let [n, d] = hidden.dims();
        // Fixed shapes: zero filler rows up to a bucket. A zero hidden state has all logits
        // 0 (LLaMA's head has no bias), so each filler row's loss is exactly ln V, taken off
        // below, and its gradient reaches neither the head nor the model.
        let filler = self
            .fixed_shapes
            .map_or(0, |shapes| shapes.scored_rows(n) - n);
        let (hidden, targets) = if self.fixed_shapes.is_some() {
            record(ShapeKind::ScoredRows, &[n + filler]);
            (
                Tensor::cat(vec![hidden, Tensor::zeros([filler, d], &device)], 0),
                Tensor::cat(vec![targets, Tensor::zeros([filler, 1], &device)], 0),
            )
        } else {
            (hidden, targets)
        };
        let weight = self.head_weight();
        let summed = if weight.is_tracked() {
            let log_p = log_softmax(project(hidden, weight.transpose()), 1).gather(1, targets);
            log_p.sum().neg()
        } else {
            head_nll_sum(hidden, weight, targets)
        };
        let summed = match filler {
            0 => summed,
            filler => summed.sub_scalar(filler as f64 * (self.config.vocab_size as f64).ln()),
        };
        summed / n as f64
    }

    /// The logits `[n, V]` of the n positions that predict a scored label (position i with
    /// `labels[i + 1] != IGNORE_INDEX`, row-major over the batch) and those labels `[n, 1]`;
    /// `None` when no label is scored.
    ///
    /// Only these positions go through the output head (HF computes the logits of every
    /// position): with response-only labels that skips most of the `d × V` head, the largest
    /// single matmul of a small model with a large vocabulary. The labels are read back to the
    /// host to find the positions.
    pub fn scored_logits(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        labels: Tensor<2, Int>,
    ) -> Option<(Tensor<2>, Tensor<2, Int>)> {
        self.scored_logits_of_hidden(self.final_hidden(tokens, attention_mask), labels)
    }

    /// [`Llama::scored_logits`] of the final hidden states `hidden` `[b, s, d]`.
    pub fn scored_logits_of_hidden(
        &self,
        hidden: Tensor<3>,
        labels: Tensor<2, Int>,
    ) -> Option<(Tensor<2>, Tensor<2, Int>)> {
        let (hidden, targets) = scored_hidden(hidden, labels)?;
        Some((project(hidden, self.head_weight().transpose()), targets))
    }

    /// The final (RMS-normalised) hidden states `[b, s, d]`: what the output head reads.
    pub fn final_hidden(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
    ) -> Tensor<3> {
        self.run(tokens, attention_mask, None, self.layers.len())
    }

    /// Logits `[b, s, V]` of final hidden states `[b, s, d]` ([`Llama::final_hidden`]).
    pub fn logits_of_hidden(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.head(hidden)
    }

    /// The output head as `[V, d]`: the token embedding when tied, else the transposed view of
    /// `lm_head`'s `[d, V]` weight.
    fn head_weight(&self) -> Tensor<2> {
        match &self.lm_head {
            Some(head) => head.weight.val().transpose(),
            None => self.embed_tokens.weight.val(),
        }
    }

    /// Logits `[b, s, V]` of hidden states `[b, s, d]`.
    fn head(&self, h: Tensor<3>) -> Tensor<3> {
        project(h, self.head_weight().transpose())
    }

    /// The token embeddings `[b, s, d]` of a whole-sequence pass (no cache) and the positional
    /// inputs its layers share: what [`crate::checkpoint`] runs the layers on one at a time.
    pub(crate) fn trunk_inputs(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
    ) -> (Tensor<3>, Positional) {
        let [b, s] = tokens.dims();
        if self.fixed_shapes.is_some() {
            record(ShapeKind::Forward, &[b, s, s]);
        }
        let pos = self.positional(attention_mask, 0, s);
        (self.embed_tokens.forward(tokens), pos)
    }

    /// Decoder layer `i` on `h` `[b, s, d]` without a cache.
    pub(crate) fn layer_forward(&self, i: usize, h: Tensor<3>, pos: &Positional) -> Tensor<3> {
        self.layers[i].forward(h, pos, None)
    }

    /// Embedding, then `depth` decoder layers, then the final norm when all layers ran.
    fn run(
        &self,
        tokens: Tensor<2, Int>,
        attention_mask: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
        depth: usize,
    ) -> Tensor<3> {
        let [b, s] = tokens.dims();
        let past = cache.as_ref().map_or(0, |c| c.len());
        let full_mask = match cache.as_deref_mut() {
            Some(c) => {
                let full = match c.mask.take() {
                    Some(old) => Tensor::cat(vec![old, attention_mask], 1),
                    None => attention_mask,
                };
                c.mask = Some(full.clone());
                // With fixed shapes the cached positions are attended in a bucketed width,
                // the positions not yet written masked.
                let t = self.padded_width(past + s);
                match t - (past + s) {
                    0 => full,
                    unwritten => {
                        let zeros = Tensor::<2, Int>::zeros([b, unwritten], &full.device());
                        Tensor::cat(vec![full, zeros], 1)
                    }
                }
            }
            None => attention_mask,
        };
        if self.fixed_shapes.is_some() {
            record(ShapeKind::Forward, &[b, s, full_mask.dims()[1]]);
        }
        let pos = self.positional(full_mask, past, s);
        let mut h = self.embed_tokens.forward(tokens);
        for (i, layer) in self.layers.iter().take(depth).enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            h = layer.forward(h, &pos, slot);
        }
        if depth == self.layers.len() {
            h = self.norm.forward(h);
        }
        h
    }

    /// RoPE angles and the attention mask of `s` new positions after `past` cached ones, from
    /// the mask `full_mask` `[b, t]` of all of them (`t ≥ past + s`: the positions after the
    /// new ones, with fixed shapes, are masked).
    fn positional(&self, full_mask: Tensor<2, Int>, past: usize, s: usize) -> Positional {
        let [b, t] = full_mask.dims();
        let device = full_mask.device();
        let positions = (full_mask.clone().cumsum(1) - 1)
            .clamp_min(0)
            .narrow(1, past, s)
            .float();
        let half = self.inv_freq.len();
        let inv_freq =
            Tensor::<1>::from_data(TensorData::new(self.inv_freq.clone(), [half]), &device);
        let freqs = positions.reshape([b, s, 1]) * inv_freq.reshape([1, 1, half]);
        let emb = Tensor::cat(vec![freqs.clone(), freqs], 2).unsqueeze_dim::<4>(1);
        let causal: Vec<bool> = (0..s)
            .flat_map(|i| (0..t).map(move |j| j > past + i))
            .collect();
        let causal = Tensor::<2, Bool>::from_data(TensorData::new(causal, [s, t]), &device)
            .reshape([1, 1, s, t])
            .expand([b, 1, s, t]);
        let padding = full_mask
            .equal_elem(0)
            .reshape([b, 1, 1, t])
            .expand([b, 1, s, t]);
        Positional {
            cos: emb.clone().cos(),
            sin: emb.sin(),
            blocked: causal.bool_or(padding),
        }
    }
}

/// The rows of `hidden` `[b, s, d]` flattened to `[b · s, d]` that predict a scored label
/// ([`scored_positions`]), `[n, d]`, and those labels `[n, 1]`; `None` when none is scored.
fn scored_hidden(hidden: Tensor<3>, labels: Tensor<2, Int>) -> Option<(Tensor<2>, Tensor<2, Int>)> {
    let [b, s, d] = hidden.dims();
    let (rows, targets) = scored_positions(labels)?;
    Some((hidden.reshape([b * s, d]).select(0, rows), targets))
}

/// The positions of a `[b, s]` batch that predict a scored label: their row in the batch
/// flattened to `[b · s]` (position i of row r is `r · s + i`, for `labels[r][i + 1] !=`
/// [`IGNORE_INDEX`]) `[n]`, and those labels `[n, 1]`; `None` when no label is scored. The
/// labels are read back to the host.
///
/// # Panics
/// When the backend cannot read the labels back as integers.
pub fn scored_positions(labels: Tensor<2, Int>) -> Option<(Tensor<1, Int>, Tensor<2, Int>)> {
    let [_, s] = labels.dims();
    let device = labels.device();
    let next = labels
        .narrow(1, 1, s - 1)
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .expect("i64 labels");
    let (rows, targets): (Vec<i64>, Vec<i64>) = next
        .iter()
        .enumerate()
        .filter(|&(_, &label)| label != IGNORE_INDEX)
        .map(|(k, &label)| (((k / (s - 1)) * s + k % (s - 1)) as i64, label))
        .unzip();
    let n = rows.len();
    (n > 0).then(|| {
        (
            Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device),
            Tensor::<2, Int>::from_data(TensorData::new(targets, [n, 1]), &device),
        )
    })
}
