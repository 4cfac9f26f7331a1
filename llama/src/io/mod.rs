//! Checkpoint files in and out of the host.
//!
//! - [`gguf`]: a reader for llama.cpp's GGUF checkpoints (metadata, tensors, dequantisation).
//! - [`safetensors`]: HF checkpoint directories (`config.json` + safetensors, single or sharded).
//! - `hub` (feature `hub`): Hugging Face Hub downloads into the HF cache.
//! - [`host`]: checkpoint tensors on the host in HF names and layouts.
//! - [`stored`]: frozen weight matrices kept in their storage format (bf16, f16, GGUF blocks).

pub mod gguf;
pub mod host;
#[cfg(feature = "hub")]
pub mod hub;
pub mod safetensors;
pub mod stored;
