//! Checkpoint tensors on the host, in Hugging Face names and layouts, before they become
//! burn parameters. Both checkpoint readers (GGUF, safetensors) produce these.

use std::collections::BTreeMap;

/// A dense f32 tensor in row-major order with its shape (HF layout: linear weights are
/// `[out_features, in_features]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

/// All tensors of a checkpoint by HF name (e.g. `model.layers.0.self_attn.q_proj.weight`).
pub type HostTensors = BTreeMap<String, HostTensor>;
