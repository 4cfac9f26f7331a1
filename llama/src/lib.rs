//! LLaMA-family causal language models for inscl's trainer.
//!
//! - [`checkpoint`]: activation checkpointing per decoder layer for training.
//! - [`config`]: hyper-parameters (HF `config.json` names).
//! - [`device`]: `auto | gpu | cuda | wgpu | cpu` device selection (CUDA, else a physical wgpu
//!   GPU, else burn's flex CPU) and the on-disk store of tuned GPU kernels.
//! - [`generate`]: batched greedy / top-p generation with a KV cache.
//! - [`heap`]: keeps freed tensor memory in the process heap (glibc), for CPU work.
//! - [`io`]: checkpoint files: GGUF, HF safetensors folders, Hub downloads (feature `hub`),
//!   and the host tensors they read into.
//! - [`kernels`]: the model's own differentiable ops with CPU (flex) kernels: attention,
//!   frozen projections, SwiGLU, the output head's loss.
//! - [`lora`]: the LoRA layer ([`lora::LoraLinear`]) of the attention/MLP projections.
//! - [`memory`]: the estimated peak memory of a fine-tuning run, and the memory free.
//! - [`model`]: the LLaMA decoder (HF `LlamaForCausalLM`) in burn, with KV cache.
//! - [`peft`]: LoRA adapters on a whole model in PEFT's format: attach, merge, load, export.
//! - [`shapes`]: fixed (bucketed) tensor shapes for the GPU backends, and a log of the shapes
//!   used.
//! - [`train`]: AdamW with warmup + cosine/linear schedules, global-norm clipping, gradient
//!   accumulation, response-only labels and length-bucketed batches.
//! - [`tokenizer`]: byte-level BPE tokenizers from `tokenizer.json` or GGUF metadata, and chat templates.
//!
//! Imports run one way: `kernels`, `io` and `shapes` use nothing of the model; `lora` uses `kernels`;
//! `model` uses `lora`, `kernels` and `io`; `peft`, `generate`, `checkpoint` and `train` use
//! `model`.

pub mod checkpoint;
pub mod config;
pub mod device;
pub mod generate;
pub mod heap;
pub mod io;
pub mod kernels;
pub mod lora;
pub mod memory;
pub mod model;
pub mod peft;
pub mod shapes;
pub mod tokenizer;
pub mod train;
