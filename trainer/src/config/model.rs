//! `[model]`: which checkpoint, on which device.

use llama::device::DeviceChoice;
use llama::io::stored::BasePrecision;
use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// `[model]`: which checkpoint, on which device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// GGUF file or HF model folder, relative to the working directory, or
    /// `hf:owner/name[@revision]` (builds with the `hub` feature).
    pub path: String,
    /// `auto`, `gpu`, `cuda`, `wgpu` or `cpu` ([`llama::device::DeviceChoice`]).
    pub device: String,
    /// The precision the frozen base of LoRA keeps: `stored` (as in the checkpoint: bf16,
    /// f16 or a GGUF block format), `f32` or `bf16` (re-encoded). Full fine-tuning trains f32
    /// weights: `stored` loads them as f32 there and `bf16` is refused. Absent in `run.json`
    /// files written before the field existed, whose runs dequantised everything: `f32`.
    #[serde(default = "f32_base")]
    pub base_precision: BasePrecision,
}

/// What runs recorded before `model.base_precision` existed used.
fn f32_base() -> BasePrecision {
    BasePrecision::F32
}

impl ModelConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.device.parse::<DeviceChoice>().is_ok(),
            "model.device",
            &self.device,
            "expected auto, gpu, cuda, wgpu or cpu",
        )
    }
}
