//! `[run]`: what the whole run shares.

use serde::{Deserialize, Serialize};

/// `[run]`: what the whole run shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The run seed (`--seed`): every random choice of a run derives from it through
    /// [`inscl::seed`] — LoRA initialisation, replay sampling, the training mix's shuffle,
    /// batch order, dropout and the methods' own draws — but not the data split
    /// (`data.split_seed`). Written `strategy.seed` by older configurations and `run.json`
    /// files, which still read ([`super::layers::RENAMED_KEYS`]).
    pub seed: u64,
}
