//! LLaMA-family causal language models for inscl's trainer.
//!
//! - [`gguf`]: a reader for llama.cpp's GGUF checkpoints (metadata, tensors, dequantisation).
//! - [`tokenizer`]: byte-level BPE tokenizers from `tokenizer.json` or GGUF metadata, and chat templates.

pub mod gguf;
pub mod tokenizer;
