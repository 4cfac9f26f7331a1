//! The burn LLaMA of crate `llama` behind the runner's [`crate::learner::ContinualLearner`] trait: its
//! checkpoints ([`checkpoint`]), the prompt format ([`prompt`]) and the learner itself
//! ([`learner`]).

pub mod checkpoint;
pub mod learner;
mod prompt;

pub use checkpoint::{Checkpoint, open_checkpoint, resolve_model, stop_tokens};
pub use learner::LlamaLearner;
