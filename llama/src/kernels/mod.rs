//! The model's own differentiable ops, each a burn backend extension with a flex (CPU) kernel
//! for f32 and burn's ops elsewhere.
//!
//! - [`attention`]: masked attention whose backward pass recomputes the probabilities.
//! - [`frozen_matmul`]: `x W` for a weight without gradient, written straight into its output.
//! - [`head_loss`]: the output head's cross-entropy computed with its gradient, block by block.
//! - [`stored_matmul`]: `x Wᵀ` for a frozen weight kept in bf16, f16 or a GGUF block format,
//!   dequantised tile by tile (or bf16 dot products on AVX512-BF16).
//! - [`swiglu`]: the MLP's `silu(gate) ⊙ up` with a fused backward pass.
//! - `bf16_dot`, `flex_attention`, `flex_gemm`, `vector_exp` (private): the AVX512-BF16
//!   product, the f32 attention kernels, the shared gemm calls on flex tensors, and 8-lane
//!   `exp`.

pub mod attention;
#[cfg(target_arch = "x86_64")]
mod bf16_dot;
mod flex_attention;
mod flex_gemm;
pub mod frozen_matmul;
pub mod head_loss;
pub mod stored_matmul;
pub mod swiglu;
mod vector_exp;
