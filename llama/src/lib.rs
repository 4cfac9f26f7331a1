//! LLaMA-family causal language models for inscl's trainer.
//!
//! - [`attention`]: masked attention whose backward pass recomputes the probabilities.
//! - [`config`]: hyper-parameters (HF `config.json` names).
//! - [`device`]: `auto | gpu | cpu` device selection (a physical wgpu GPU, else burn's flex CPU).
//! - [`frozen_matmul`]: `x W` for a weight without gradient, written straight into its output.
//! - [`generate`]: batched greedy / top-p generation with a KV cache.
//! - `hub` (feature `hub`): Hugging Face Hub downloads into the HF cache.
//! - [`host`]: checkpoint tensors on the host in HF names and layouts.
//! - [`head_loss`]: the output head's cross-entropy computed with its gradient, block by block.
//! - [`heap`]: keeps freed tensor memory in the process heap (glibc), for CPU work.
//! - [`gguf`]: a reader for llama.cpp's GGUF checkpoints (metadata, tensors, dequantisation).
//! - [`lora`]: LoRA adapters on the attention/MLP projections, PEFT-compatible export.
//! - [`model`]: the LLaMA decoder (HF `LlamaForCausalLM`) in burn, with KV cache.
//! - [`safetensors`]: HF checkpoint directories (`config.json` + safetensors, single or sharded).
//! - [`train`]: AdamW with warmup + cosine/linear schedules, global-norm clipping, gradient
//!   accumulation, response-only labels and length-bucketed batches.
//! - [`tokenizer`]: byte-level BPE tokenizers from `tokenizer.json` or GGUF metadata, and chat templates.

pub mod attention;
pub mod config;
pub mod device;
mod flex_attention;
mod flex_gemm;
pub mod frozen_matmul;
pub mod generate;
pub mod gguf;
pub mod head_loss;
pub mod heap;
pub mod host;
#[cfg(feature = "hub")]
pub mod hub;
pub mod lora;
pub mod model;
pub mod safetensors;
pub mod swiglu;
pub mod tokenizer;
pub mod train;
mod vector_exp;
