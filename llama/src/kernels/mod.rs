//! The model's own differentiable ops, each a burn backend extension with a flex (CPU) kernel
//! for f32 and burn's ops elsewhere.
//!
//! - [`attention`]: masked attention whose backward pass recomputes the probabilities.
//! - [`frozen_matmul`]: `x W` for a weight without gradient, written straight into its output.
//! - [`head_loss`]: the output head's cross-entropy computed with its gradient, block by block.
//! - [`swiglu`]: the MLP's `silu(gate) ⊙ up` with a fused backward pass.
//! - `flex_attention`, `flex_gemm`, `vector_exp` (private): the f32 attention kernels, the
//!   shared gemm calls on flex tensors, and 8-lane `exp`.

pub mod attention;
mod flex_attention;
mod flex_gemm;
pub mod frozen_matmul;
pub mod head_loss;
pub mod swiglu;
mod vector_exp;
