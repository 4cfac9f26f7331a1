//! # inscl — the arithmetic of InsCL
//!
//! Reference implementation of the pieces of InsCL (Wang et al., *InsCL: A Data-efficient
//! Continual Learning Paradigm for Fine-tuning Large Language Models with Instructions*,
//! NAACL 2024, arXiv:2403.11435) that do not need a neural network, shared by the native
//! `trainer` and the wasm `studio`:
//!
//! - [`ot`]: cost matrices, exact optimal transport (network simplex) and entropic OT
//!   (log-domain Sinkhorn, Sinkhorn divergence).
//! - [`similarity`]: tasks as weighted instruction-embedding clouds and the Wasserstein
//!   distances between them (InsCL §3.1).
//! - [`insinfo`]: tag normalisation and the InsInfo score of an instruction (InsCL §3.2).
//! - [`replay`]: replay budgets, dynamic allocation and InsInfo-guided sampling.
//! - [`seed`]: the derivations of every random stream from the one run seed.
//! - [`plan`]: the whole replay plan for a task sequence (what `trainer plan` prints).
//! - [`metrics`]: ROUGE-L / exact match and the continual-learning metrics over the score
//!   matrix (AP, F.Ra, BWT, FWT, Relative Gain).
//! - [`artifact`]: the versioned JSON schema of run artifacts.
//!
//! Everything random takes a seed and gives the same result on native and wasm32 targets.

pub mod artifact;
pub mod insinfo;
pub mod metrics;
pub mod ot;
pub mod plan;
pub mod replay;
pub mod seed;
pub mod similarity;
