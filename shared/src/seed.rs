//! One run seed, many independent random streams.
//!
//! A run has one seed. Every random choice of a run draws from a value derived from that seed
//! and from what the choice is for, so that changing one choice (a task's replay quota, the
//! number of epochs) never moves the draws of another. Every derivation of the project lives
//! here, each named for what it feeds:
//!
//! | derivation | formula | used for |
//! |---|---|---|
//! | [`derive`] | first 8 bytes (little-endian) of SHA-256(`"{seed}/{purpose}/{index}"`) | the training mix's shuffle and a stage's training stream (LoRA dropout, methods) |
//! | [`stream`] | ChaCha8 keyed by SHA-256(`"{seed}/{purpose}/{index}"`) | the held-out split and the per-task caps of the data |
//! | [`replay_stream`] | ChaCha8 from `seed`, stream `(stage << 32) \| task` | replay sampling of the planner |
//! | [`epoch`] | `seed + epoch` (wrapping) | batch order within a stage |
//! | [`salted`] | `seed XOR salt` | a method's own draws besides the stage's (memory sampling, a new adapter's initialisation) |
//!
//! [`derive`] is the derivation new code uses. The other four are what earlier versions used
//! and are kept exactly: the committed studies and example run were made with them, and the
//! same configuration must give byte-identical artifacts.

use std::fmt::Display;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// SHA-256 of `"{seed}/{purpose}/{index}"`: 32 bytes independent for every distinct triple.
fn key(seed: u64, purpose: &str, index: impl Display) -> [u8; 32] {
    Sha256::digest(format!("{seed}/{purpose}/{index}").as_bytes()).into()
}

/// The seed for `purpose` number `index` (a stage, a task name) under the run seed `seed`:
/// the first 8 bytes, little-endian, of SHA-256(`"{seed}/{purpose}/{index}"`). Distinct
/// triples give independent seeds.
pub fn derive(seed: u64, purpose: &str, index: impl Display) -> u64 {
    let [b0, b1, b2, b3, b4, b5, b6, b7, ..] = key(seed, purpose, index);
    u64::from_le_bytes([b0, b1, b2, b3, b4, b5, b6, b7])
}

/// A ChaCha8 stream for `purpose` number `index` under `seed`, keyed by all 32 bytes of
/// SHA-256(`"{seed}/{purpose}/{index}"`) (the data split and caps: one stream per task name).
pub fn stream(seed: u64, purpose: &str, index: impl Display) -> ChaCha8Rng {
    ChaCha8Rng::from_seed(key(seed, purpose, index))
}

/// The random stream for replaying previous task `task` at stage `stage` under `seed`:
/// `ChaCha8Rng::seed_from_u64(seed)` on stream `(stage << 32) | task`.
///
/// Each (stage, task) pair has its own stream, so changing one task's quota never changes the
/// instances drawn for another task. `stage` and `task` must be below 2³² (debug assertion).
pub fn replay_stream(seed: u64, stage: usize, task: usize) -> ChaCha8Rng {
    debug_assert!(
        u32::try_from(stage).is_ok() && u32::try_from(task).is_ok(),
        "stage {stage} and task {task} must fit in 32 bits"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((stage as u64) << 32) | task as u64);
    rng
}

/// The batch-order seed of epoch `epoch` (0-based) of a stage whose seed is `stage_seed`:
/// `stage_seed + epoch`, wrapping.
pub fn epoch(stage_seed: u64, epoch: usize) -> u64 {
    stage_seed.wrapping_add(epoch as u64)
}

/// A method's own seed beside the stage seed `stage_seed`: `stage_seed XOR salt`, one fixed
/// `salt` per kind of draw (each method names its salts as constants).
pub fn salted(stage_seed: u64, salt: u64) -> u64 {
    stage_seed ^ salt
}

#[cfg(test)]
mod tests {
    use rand::RngCore;

    use super::*;

    /// `derive` and `stream` share the key: the seed is the stream key's first 8 bytes.
    #[test]
    fn derive_is_the_prefix_of_the_stream_key() {
        let key = key(7, "shuffle", 3);
        assert_eq!(derive(7, "shuffle", 3).to_le_bytes(), key[..8]);
        assert_eq!(
            stream(7, "shuffle", 3).next_u64(),
            ChaCha8Rng::from_seed(key).next_u64()
        );
    }

    /// Values from Python's hashlib (`tools/reference/seed_reference.py`).
    #[test]
    fn derive_matches_python_hashlib() {
        let cases = [
            (0, "shuffle", "1", 13_178_116_320_608_052_218),
            (42, "train", "3", 7_595_012_722_211_247_477),
            (7, "held-out", "task039_qasc", 10_700_581_979_676_977_949),
        ];
        for (seed, purpose, index, expected) in cases {
            assert_eq!(
                derive(seed, purpose, index),
                expected,
                "{seed}/{purpose}/{index}"
            );
        }
        // An integer index is written in decimal, as the stage numbers are.
        assert_eq!(derive(42, "train", 3usize), derive(42, "train", "3"));
    }
}
