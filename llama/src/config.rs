//! Model hyper-parameters, as in Hugging Face `LlamaConfig` (`config.json`).

use serde::{Deserialize, Serialize};

/// LLaMA hyper-parameters with Hugging Face `config.json` field names.
///
/// Also built from GGUF metadata (`llama.*` keys) by [`crate::io::gguf`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size V (rows of the embedding matrix).
    pub vocab_size: usize,
    /// Model width d.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads; head dimension = `hidden_size / num_attention_heads`.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when smaller than `num_attention_heads`).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// ε of RMSNorm.
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base θ.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling (`{"rope_type": "llama3", ...}` or `{"type": "linear", "factor": ..}`), if any.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// Longest position the model was trained on.
    #[serde(default = "default_max_position_embeddings")]
    pub max_position_embeddings: usize,
    /// Whether the output head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id(s) (HF allows a number or a list).
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_max_position_embeddings() -> usize {
    2048
}

impl LlamaConfig {
    /// Key/value heads, defaulting to the query heads (multi-head attention).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
