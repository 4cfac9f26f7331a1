//! What a routing method shares with the learner: a bank of adapters (*experts*), each with a
//! key, and the rule that sends an instance to the expert whose key is nearest its
//! instruction's embedding ([`super::ContinualMethod::routes`]).

use llama::io::host::HostTensors;

/// One adapter of the bank.
#[derive(Debug, Clone)]
pub struct Expert {
    /// Mean base-model embedding of the instructions of its tasks.
    pub key: Vec<f32>,
    /// The tasks it was trained on, in order.
    pub tasks: Vec<String>,
    /// Its factors, PEFT names and layouts.
    pub adapter: HostTensors,
    /// Instructions its key averages (one key per task, weighted by this count).
    pub instructions: usize,
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator > 0.0 {
        dot / denominator
    } else {
        0.0
    }
}

/// The index of the key most similar (cosine) to `embedding`; `None` without keys.
pub fn nearest_key(keys: &[Vec<f32>], embedding: &[f32]) -> Option<usize> {
    keys.iter()
        .map(|key| cosine(key, embedding))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}
