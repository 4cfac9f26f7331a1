//! The seeded held-out split and the seeded caps on instances per task.

use rand::seq::SliceRandom;

use super::Example;

/// Splits `examples` into (train, test): `round(fraction × n)` test examples chosen by a
/// stream seeded by `(seed, name)`, at least one of each when `n ≥ 2` and `0 < fraction < 1`.
/// Both parts keep data order.
pub fn held_out_split(
    examples: Vec<Example>,
    fraction: f64,
    seed: u64,
    name: &str,
) -> (Vec<Example>, Vec<Example>) {
    let n = examples.len();
    let mut test_count = (fraction * n as f64).round() as usize;
    if n >= 2 && fraction > 0.0 && fraction < 1.0 {
        test_count = test_count.clamp(1, n - 1);
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut inscl::seed::stream(seed, "held-out", name));
    let mut is_test = vec![false; n];
    for &i in &order[..test_count.min(n)] {
        is_test[i as usize] = true;
    }
    let (test, train): (Vec<_>, Vec<_>) = examples
        .into_iter()
        .zip(is_test)
        .partition(|(_, test)| *test);
    (
        train.into_iter().map(|(e, _)| e).collect(),
        test.into_iter().map(|(e, _)| e).collect(),
    )
}

/// At most `limit` examples: a seeded random subset, in data order.
pub(super) fn cap(
    examples: Vec<Example>,
    limit: Option<usize>,
    seed: u64,
    task: &str,
    split: &str,
) -> Vec<Example> {
    match limit {
        Some(limit) if examples.len() > limit => {
            let mut order: Vec<u32> = (0..examples.len() as u32).collect();
            order.shuffle(&mut inscl::seed::stream(seed, split, task));
            let mut keep = vec![false; examples.len()];
            for &i in &order[..limit] {
                keep[i as usize] = true;
            }
            examples
                .into_iter()
                .zip(keep)
                .filter_map(|(e, k)| k.then_some(e))
                .collect()
        }
        _ => examples,
    }
}
