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

impl HostTensor {
    /// The transpose of a 2-D tensor (`[r, c]` → `[c, r]`): converts linear weights between HF
    /// `[out, in]` and burn `[in, out]` layouts.
    ///
    /// # Panics
    /// When the tensor is not 2-D.
    pub fn transposed(&self) -> HostTensor {
        let [rows, cols] = self.shape[..] else {
            panic!("transposed needs a 2-D tensor, got shape {:?}", self.shape)
        };
        let mut data = vec![0.0; self.data.len()];
        for (i, row) in self.data.chunks_exact(cols).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                data[j * rows + i] = x;
            }
        }
        HostTensor {
            shape: vec![cols, rows],
            data,
        }
    }
}

/// All tensors of a checkpoint by HF name (e.g. `model.layers.0.self_attn.q_proj.weight`).
pub type HostTensors = BTreeMap<String, HostTensor>;
