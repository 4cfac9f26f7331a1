//! LLaMA-family causal language models for inscl's trainer.
//!
//! - [`config`]: hyper-parameters (HF `config.json` names).
//! - [`host`]: checkpoint tensors on the host in HF names and layouts.
//! - [`gguf`]: a reader for llama.cpp's GGUF checkpoints (metadata, tensors, dequantisation).
//! - [`tokenizer`]: byte-level BPE tokenizers from `tokenizer.json` or GGUF metadata, and chat templates.

pub mod config;
pub mod gguf;
pub mod host;
pub mod tokenizer;
