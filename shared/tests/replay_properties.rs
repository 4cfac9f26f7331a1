#![cfg(not(target_arch = "wasm32"))]
//! Property tests of `inscl::replay`: allocation totals and monotonicity, sample totals,
//! coverage, index ranges and seeded determinism.

use inscl::replay::{
    allocate_dynamic, allocate_uniform, replay_rng, sample_insinfo, sample_random, stage_budget,
};
use proptest::prelude::*;

/// Instances per instruction of one task: 1–8 instructions, at least one instance overall.
fn task_counts() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..12, 1..8)
        .prop_filter("task has instances", |c| c.iter().any(|&count| count > 0))
}

/// A task with InsInfo weights that sum to 1 (some zero).
fn task_with_scores() -> impl Strategy<Value = (Vec<u32>, Vec<f64>)> {
    task_counts().prop_flat_map(|counts| {
        let n = counts.len();
        (
            Just(counts),
            prop::collection::vec(prop_oneof![Just(0.0), 0.0f64..5.0], n).prop_map(|raw| {
                let total: f64 = raw.iter().sum();
                if total > 0.0 {
                    raw.iter().map(|x| x / total).collect()
                } else {
                    vec![1.0 / raw.len() as f64; raw.len()]
                }
            }),
        )
    })
}

fn total(chosen: &[Vec<u32>]) -> usize {
    chosen.iter().map(Vec::len).sum()
}

fn sorted_and_in_range(chosen: &[Vec<u32>], counts: &[u32]) -> bool {
    chosen.len() == counts.len()
        && chosen.iter().zip(counts).all(|(indices, &count)| {
            indices.windows(2).all(|w| w[0] <= w[1]) && indices.iter().all(|&k| k < count)
        })
}

fn has_repeats(chosen: &[Vec<u32>]) -> bool {
    chosen
        .iter()
        .any(|indices| indices.windows(2).any(|w| w[0] == w[1]))
}

proptest! {
    #[test]
    fn dynamic_allocation_sums_to_budget_and_is_monotone(
        distances in prop::collection::vec(prop_oneof![Just(0.0), Just(0.5), 0.0f64..3.0], 1..20),
        budget in 0usize..5000,
    ) {
        let quotas = allocate_dynamic(&distances, budget);
        prop_assert_eq!(quotas.len(), distances.len());
        prop_assert_eq!(quotas.iter().sum::<usize>(), budget);
        for a in 0..distances.len() {
            for b in 0..distances.len() {
                if distances[a] > distances[b] {
                    prop_assert!(quotas[a] >= quotas[b], "{:?} → {:?}", distances, quotas);
                }
            }
        }
    }

    #[test]
    fn uniform_allocation_sums_to_budget_and_is_even(tasks in 1usize..30, budget in 0usize..5000) {
        let quotas = allocate_uniform(tasks, budget);
        prop_assert_eq!(quotas.len(), tasks);
        prop_assert_eq!(quotas.iter().sum::<usize>(), budget);
        prop_assert!(quotas.windows(2).all(|w| w[0] >= w[1] && w[0] - w[1] <= 1));
    }

    #[test]
    fn stage_budget_is_linear(stage in 1usize..100, alpha in 0usize..1000) {
        prop_assert_eq!(stage_budget(stage + 1, alpha) - stage_budget(stage, alpha), alpha);
    }

    #[test]
    fn random_sampling_totals_and_ranges(
        counts in task_counts(),
        quota in 0usize..120,
        seed: u64,
        stage in 1usize..20,
        task in 0usize..20,
    ) {
        let chosen = sample_random(&counts, quota, &mut replay_rng(seed, stage, task));
        prop_assert_eq!(total(&chosen), quota);
        prop_assert!(sorted_and_in_range(&chosen, &counts));
        let n: usize = counts.iter().map(|&c| c as usize).sum();
        if quota <= n {
            prop_assert!(!has_repeats(&chosen));
        } else {
            // Oversampling: every instance ⌊quota/n⌋ or ⌈quota/n⌉ times.
            for (indices, &count) in chosen.iter().zip(&counts) {
                for k in 0..count {
                    let times = indices.iter().filter(|&&x| x == k).count();
                    prop_assert!(times == quota / n || times == quota / n + 1);
                }
            }
        }
    }

    #[test]
    fn insinfo_sampling_totals_coverage_and_ranges(
        (counts, scores) in task_with_scores(), quota in 0usize..120, seed: u64,
    ) {
        let chosen = sample_insinfo(&counts, &scores, quota, &mut replay_rng(seed, 2, 0));
        prop_assert_eq!(total(&chosen), quota);
        prop_assert!(sorted_and_in_range(&chosen, &counts));
        let usable: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
        if quota >= usable.len() {
            for &i in &usable {
                prop_assert!(!chosen[i].is_empty(), "instruction {} left out", i);
            }
            let n: usize = counts.iter().map(|&c| c as usize).sum();
            let fits = usable.iter().all(|&i| {
                (((scores[i] * quota as f64).floor() as usize).max(1)) <= counts[i] as usize
            });
            if quota <= n && fits {
                prop_assert!(!has_repeats(&chosen));
            }
        } else {
            // Exactly `quota` instructions, one instance each, none scored below a left-out one.
            let picked: Vec<usize> = (0..counts.len()).filter(|&i| !chosen[i].is_empty()).collect();
            prop_assert_eq!(picked.len(), quota);
            prop_assert!(picked.iter().all(|&i| chosen[i].len() == 1));
            for &p in &picked {
                for &u in usable.iter().filter(|u| !picked.contains(u)) {
                    prop_assert!(scores[p] > scores[u] || (scores[p] == scores[u] && p < u));
                }
            }
        }
    }

    #[test]
    fn sampling_is_deterministic_per_stream(
        (counts, scores) in task_with_scores(), quota in 0usize..60, seed: u64, stage in 1usize..20,
    ) {
        let once = sample_insinfo(&counts, &scores, quota, &mut replay_rng(seed, stage, 3));
        let again = sample_insinfo(&counts, &scores, quota, &mut replay_rng(seed, stage, 3));
        prop_assert_eq!(once, again);
        let once = sample_random(&counts, quota, &mut replay_rng(seed, stage, 3));
        let again = sample_random(&counts, quota, &mut replay_rng(seed, stage, 3));
        prop_assert_eq!(once, again);
    }

    #[test]
    fn streams_are_independent(seed: u64, stage in 1usize..50, task in 0usize..50) {
        // 10 of 200 instances: two independent streams agree with probability 1 / C(200, 10).
        let counts = [50u32; 4];
        let base = sample_random(&counts, 10, &mut replay_rng(seed, stage, task));
        let other_task = sample_random(&counts, 10, &mut replay_rng(seed, stage, task + 1));
        let other_stage = sample_random(&counts, 10, &mut replay_rng(seed, stage + 1, task));
        prop_assert_ne!(&base, &other_task);
        prop_assert_ne!(&base, &other_stage);
    }
}
