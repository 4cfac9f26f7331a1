//! Replay budgets, their allocation over previous tasks and the choice of replayed instances
//! (InsCL §3).
//!
//! Before training on task `t` (stage `t`, 1-based) InsCL replays `α × (t − 1)` instances of
//! the `t − 1` previous tasks (in the official code, `replay_num` per previous task). The
//! budget is split over the previous tasks either uniformly or in proportion to each task's
//! Wasserstein distance to the current task (§3.1,
//! *dynamic replay*, [`allocate_dynamic`]); within a task, instances are drawn either uniformly
//! ([`sample_random`]) or guided by the InsInfo of their instructions (§3.2,
//! [`sample_insinfo`]). [`Strategy`] names the combinations compared in the paper.
//!
//! Every random choice comes from [`replay_rng`], one ChaCha8 stream per (stage, previous task),
//! and samples only `u32` ranges, so native and wasm32 builds give identical plans.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A replay strategy: how the budget is allocated over previous tasks and how instances are
/// chosen within a task (the replay methods compared in InsCL's experiments).
///
/// Serialised and parsed as `"none"`, `"random"`, `"dynamic"`, `"insinfo"`, `"inscl"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Sequential fine-tuning without replay (the lower-bound baseline).
    None,
    /// Uniform allocation over previous tasks ([`allocate_uniform`]) and uniformly random
    /// instances ([`sample_random`]).
    Random,
    /// Wasserstein-distance allocation ([`allocate_dynamic`], InsCL §3.1) and uniformly random
    /// instances.
    Dynamic,
    /// Uniform allocation and InsInfo-guided instances ([`sample_insinfo`], InsCL §3.2).
    InsInfo,
    /// Full InsCL: Wasserstein-distance allocation and InsInfo-guided instances.
    InsCL,
}

impl Strategy {
    /// Every strategy, in the order of its documentation.
    pub const ALL: [Strategy; 5] = [
        Strategy::None,
        Strategy::Random,
        Strategy::Dynamic,
        Strategy::InsInfo,
        Strategy::InsCL,
    ];

    /// The strategy's name as serialised and parsed.
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::Random => "random",
            Strategy::Dynamic => "dynamic",
            Strategy::InsInfo => "insinfo",
            Strategy::InsCL => "inscl",
        }
    }

    /// Whether the budget is split by Wasserstein distance ([`allocate_dynamic`]) rather than
    /// uniformly: true for [`Dynamic`](Strategy::Dynamic) and [`InsCL`](Strategy::InsCL).
    pub const fn uses_distance_allocation(self) -> bool {
        matches!(self, Strategy::Dynamic | Strategy::InsCL)
    }

    /// Whether instances are chosen by InsInfo ([`sample_insinfo`]) rather than uniformly: true
    /// for [`InsInfo`](Strategy::InsInfo) and [`InsCL`](Strategy::InsCL).
    pub const fn uses_insinfo_sampling(self) -> bool {
        matches!(self, Strategy::InsInfo | Strategy::InsCL)
    }

    /// Whether anything is replayed at all: false only for [`None`](Strategy::None).
    pub const fn replays(self) -> bool {
        !matches!(self, Strategy::None)
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A strategy name that [`Strategy::from_str`] does not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown replay strategy {name:?}; expected one of: none, random, dynamic, insinfo, inscl")]
pub struct UnknownStrategy {
    /// The rejected name, as given.
    pub name: String,
}

impl FromStr for Strategy {
    type Err = UnknownStrategy;

    /// Parses the exact lower-case name (see [`Strategy::name`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|strategy| strategy.name() == s)
            .ok_or_else(|| UnknownStrategy { name: s.to_owned() })
    }
}

/// Replayed instances per stage and previous task, `α`: 200, the official InsCL code's default
/// `--replay_num`.
pub const DEFAULT_ALPHA: usize = 200;

/// Replay budget of a stage (InsCL §3; `pre_total_num` in the official code): `α × (stage − 1)`
/// instances in total, `stage` 1-based (stage 1, the first task, replays nothing).
///
/// # Panics
/// If `stage == 0`, or if the product overflows `usize`.
pub fn stage_budget(stage: usize, alpha: usize) -> usize {
    assert!(stage >= 1, "stages are 1-based, got stage 0");
    alpha
        .checked_mul(stage - 1)
        .unwrap_or_else(|| panic!("replay budget {alpha} × {} overflows usize", stage - 1))
}

/// Splits `budget` over previous tasks in proportion to their Wasserstein distances to the
/// current task (InsCL §3.1, dynamic replay: a task far from the current one is forgotten more
/// and gets more replay).
///
/// `distances[j]` is `W_j` for previous task `j`. Task `j` first gets `⌊W_j / ΣW × budget⌋`
/// (computed as the official `int(w*pre_total_num)` over `norm_pW = W / ΣW`: divide first, then
/// multiply, then truncate); the remaining `budget − Σ⌊…⌋` instances go one each to the tasks
/// with the largest `W` (ties: the earlier task first), as in the official InsCL code
/// (`cal_dynamic_num`). The result has one quota per task and sums to exactly `budget`; a task
/// with larger `W` never gets less than one with a smaller `W`.
///
/// # Departure from the official code: exact ties
/// The official code hands out the remainder with
///
/// ```text
/// for w in sorted_norm_pW[-add_num:]:
///     add_idx = norm_pW.index(w)
/// ```
///
/// and `list.index` returns the *first* task with that value every time, so when distances tie
/// exactly that task gets every extra instance (possibly several) and its twins none: with
/// `W = [0.25, 0.5, 0.25, 0.5, 0.5]` and budget 1803 the official split is
/// `[225, 453, 225, 450, 450]`, ours `[225, 451, 225, 451, 451]`. That is an accident of the
/// lookup, not a rule: the paper describes an allocation proportional to the distances, the
/// remainder going to the largest ones, which is what distinct tasks get here (and tied tasks
/// then differ by at most one). Without exact ties the two agree; the delete branch
/// (`sorted_norm_pW[:del_num]`, `del_idx = norm_pW.index(w)`) has the same tie accident, and
/// ours takes from distinct non-empty quotas instead. tests/replay_reference.rs checks both
/// facts against shared/fixtures/insinfo.json (`dynamic_official` where `ties_differ` is
/// false, `dynamic_spread` everywhere).
///
/// Edge cases: no tasks → empty vector; `ΣW = 0` (or not a positive number) →
/// [`allocate_uniform`] (the official `normalization` raises `ZeroDivisionError` there).
/// Distances must be finite and `≥ 0` (callers validate; checked by a debug assertion). Should
/// floating-point rounding make the floors exceed `budget`, the excess is taken back one at a
/// time from the non-empty quotas of the smallest distances (ties: the later task first).
pub fn allocate_dynamic(distances: &[f64], budget: usize) -> Vec<usize> {
    debug_assert!(
        distances.iter().all(|w| w.is_finite() && *w >= 0.0),
        "Wasserstein distances must be finite and non-negative: {distances:?}"
    );
    let total: f64 = distances.iter().sum();
    if distances.is_empty() || total.is_nan() || total <= 0.0 {
        return allocate_uniform(distances.len(), budget);
    }
    let mut quotas: Vec<usize> = distances
        .iter()
        .map(|w| ((w / total) * budget as f64).floor() as usize)
        .collect();

    // Largest W first, ties in task order (a stable sort keeps the earlier task first).
    let mut order: Vec<usize> = (0..distances.len()).collect();
    order.sort_by(|&a, &b| distances[b].total_cmp(&distances[a]));

    let mut assigned: usize = quotas.iter().sum();
    for &task in order.iter().rev().cycle() {
        if assigned <= budget {
            break;
        }
        if quotas[task] > 0 {
            quotas[task] -= 1;
            assigned -= 1;
        }
    }
    for &task in order.iter().cycle().take(budget - assigned) {
        quotas[task] += 1;
    }
    quotas
}

/// Splits `budget` evenly over `tasks` previous tasks (the allocation of the Random and InsInfo
/// strategies): `budget / tasks` each, the remainder one each to the earliest tasks.
///
/// No tasks → empty vector.
pub fn allocate_uniform(tasks: usize, budget: usize) -> Vec<usize> {
    if tasks == 0 {
        return Vec::new();
    }
    let (base, remainder) = (budget / tasks, budget % tasks);
    (0..tasks)
        .map(|task| base + usize::from(task < remainder))
        .collect()
}

/// The random stream for replaying previous task `task` at stage `stage` under `seed`
/// ([`crate::seed::replay_stream`]).
pub use crate::seed::replay_stream as replay_rng;

/// Uniformly random instances of one previous task (Random and Dynamic strategies).
///
/// `counts[i]` is the number of instances of instruction `i`; instance `k` of instruction `i`
/// is the local index `k ∈ 0..counts[i]`. Returns, per instruction, the chosen local indices
/// sorted ascending; `quota` indices in total.
///
/// Draws `quota` of the task's `n = Σ counts` instances without replacement. When `quota > n`
/// (oversampling) every instance is taken `⌊quota / n⌋` times and the remaining `quota mod n`
/// are drawn without replacement, so indices then repeat.
///
/// # Panics
/// If `quota > 0` while the task has no instances, or if the task has more than `u32::MAX`
/// instances.
pub fn sample_random(counts: &[u32], quota: usize, rng: &mut impl Rng) -> Vec<Vec<u32>> {
    let n = task_size(counts);
    let mut chosen = vec![Vec::new(); counts.len()];
    let offsets = prefix_offsets(counts);
    for global in draw_with_cycling(n, quota, rng) {
        // The instruction holding `global` is the last one starting at or before it.
        let instruction = offsets.partition_point(|&start| start <= global) - 1;
        chosen[instruction].push(global - offsets[instruction]);
    }
    for indices in &mut chosen {
        indices.sort_unstable();
    }
    chosen
}

/// InsInfo-guided instances of one previous task (InsInfo and InsCL strategies; InsCL §3.2, as
/// the official code does it).
///
/// `counts` as in [`sample_random`]; `scores[i]` is the normalised InsInfo of instruction `i`
/// (from [`TagStatistics::normalized_scores`](crate::insinfo::TagStatistics::normalized_scores),
/// summing to 1). Instructions without instances are never chosen and are not counted below.
/// Let `m` be the number of instructions with instances:
///
/// - `quota < m`: the `quota` instructions with the highest score (ties: the earlier
///   instruction) get one uniformly random instance each.
/// - `quota ≥ m`: instruction `k` gets `max(1, ⌊scores[k] × quota⌋)` random instances (the
///   official `int(InsInfo_rate[i]*num)`, raised to 1), without replacement within the
///   instruction and cycling through all of them again beyond its count. If that is short of
///   `quota`, the rest is drawn uniformly from the task's instances not yet chosen (and, should
///   none be left, from all of them, cycling as in [`sample_random`]); if it is over, uniformly
///   random chosen instances are removed, never an instruction's last one (`trim`).
///
/// Returns per instruction the chosen local indices, sorted ascending, `quota` in total;
/// every instruction with instances gets at least one when `quota ≥ m`.
///
/// # Departures from the official code (`sample_example`)
/// - **Trim.** The official code protects only the instructions it raised to one instance:
///
///   ```text
///   if InsInfo_num < 1:
///       InsInfo_num = 1
///       single_ins_ls.append(ins_ls[i])
///   ```
///
///   and its delete loop removes any example whose instruction is not in `single_ins_ls`,
///   adding an instruction there only once one of its examples is left. An instruction whose
///   share `int(rate*num)` was exactly 1 therefore starts unprotected, and its only instance can
///   be removed: the instruction vanishes from the replay although it is present in the task.
///   That contradicts what the `if InsInfo_num < 1: InsInfo_num = 1` line itself intends
///   (every instruction represented), so here no instruction ever loses its last instance.
///   The initial amounts are the official ones; tests/replay_reference.rs checks both against
///   the `insinfo_shares` cases of shared/fixtures/insinfo.json.
/// - **Small instructions.** The official `random.sample(ins_data, InsInfo_num)` raises
///   `ValueError` when an instruction has fewer instances than its share, and its top-up cannot
///   reach `num` when the whole task has fewer instances; here the draws cycle instead
///   (oversampling, as in [`sample_random`]).
///
/// # Panics
/// If `scores.len() != counts.len()`, if `quota > 0` while the task has no instances, or if the
/// task has more than `u32::MAX` instances.
pub fn sample_insinfo(
    counts: &[u32],
    scores: &[f64],
    quota: usize,
    rng: &mut impl Rng,
) -> Vec<Vec<u32>> {
    assert_eq!(
        scores.len(),
        counts.len(),
        "one InsInfo score per instruction expected"
    );
    let n = task_size(counts);
    let usable: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
    let mut chosen = vec![Vec::new(); counts.len()];

    if quota < usable.len() {
        let mut ranked = usable;
        // Highest score first; a stable sort keeps the earlier instruction first among ties.
        ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        ranked.truncate(quota);
        ranked.sort_unstable();
        for i in ranked {
            chosen[i].push(rng.random_range(0..counts[i]));
        }
        return chosen;
    }

    let mut total = 0usize;
    for &i in &usable {
        // `as usize` saturates (NaN → 0), and `max(1)` keeps every instruction represented.
        let amount = ((scores[i] * quota as f64).floor() as usize).max(1);
        chosen[i] = draw_with_cycling(counts[i], amount, rng);
        total += amount;
    }

    if total < quota {
        top_up(counts, n, &mut chosen, quota - total, rng);
    } else if total > quota {
        trim(&mut chosen, total - quota, rng);
    }
    for indices in &mut chosen {
        indices.sort_unstable();
    }
    chosen
}

/// Adds `deficit` instances to `chosen`: first distinct ones not chosen yet, then (if the task
/// runs out) cycling over the whole task.
fn top_up(counts: &[u32], n: u32, chosen: &mut [Vec<u32>], deficit: usize, rng: &mut impl Rng) {
    let mut free: Vec<(usize, u32)> = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let mut taken = vec![false; count as usize];
        for &k in &chosen[i] {
            taken[k as usize] = true;
        }
        free.extend((0..count).filter(|&k| !taken[k as usize]).map(|k| (i, k)));
    }
    let from_free = deficit.min(free.len());
    for slot in choose_distinct(free.len() as u32, from_free as u32, rng) {
        let (i, k) = free[slot as usize];
        chosen[i].push(k);
    }
    if deficit > from_free {
        let offsets = prefix_offsets(counts);
        for global in draw_with_cycling(n, deficit - from_free, rng) {
            let instruction = offsets.partition_point(|&start| start <= global) - 1;
            chosen[instruction].push(global - offsets[instruction]);
        }
    }
}

/// Removes `excess` uniformly random entries from `chosen`, keeping each instruction's first.
///
/// Departs on purpose from the official `sample_example`, whose delete loop skips only
/// instructions in `single_ins_ls` (those whose `int(rate*num)` was below 1, or that are already
/// down to one example): an instruction whose share was exactly 1 is not protected there and
/// can lose its only instance. Here an instruction's last instance is never removable, so every
/// instruction of the task stays represented (see [`sample_insinfo`]).
fn trim(chosen: &mut [Vec<u32>], excess: usize, rng: &mut impl Rng) {
    let removable: Vec<(usize, usize)> = chosen
        .iter()
        .enumerate()
        .flat_map(|(i, indices)| (1..indices.len()).map(move |position| (i, position)))
        .collect();
    let mut drop: Vec<Vec<bool>> = chosen.iter().map(|c| vec![false; c.len()]).collect();
    for slot in choose_distinct(removable.len() as u32, excess as u32, rng) {
        let (i, position) = removable[slot as usize];
        drop[i][position] = true;
    }
    for (indices, drop) in chosen.iter_mut().zip(drop) {
        let mut flags = drop.into_iter();
        indices.retain(|_| !flags.next().unwrap_or(false));
    }
}

/// Total instances of a task, as `u32` so that every draw samples a `u32` range.
fn task_size(counts: &[u32]) -> u32 {
    let n: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    u32::try_from(n).unwrap_or_else(|_| panic!("a task of {n} instances exceeds u32::MAX"))
}

/// Start of each instruction's instances in the task's global numbering.
fn prefix_offsets(counts: &[u32]) -> Vec<u32> {
    counts
        .iter()
        .scan(0u32, |start, &count| {
            let this = *start;
            *start += count;
            Some(this)
        })
        .collect()
}

/// `amount` indices in `0..n`: every index `⌊amount / n⌋` times, plus `amount mod n` distinct
/// random ones. Panics if `amount > 0 == n`.
fn draw_with_cycling(n: u32, amount: usize, rng: &mut impl Rng) -> Vec<u32> {
    if amount == 0 {
        return Vec::new();
    }
    assert!(n > 0, "cannot draw {amount} instances from an empty set");
    let n_usize = n as usize;
    let (rounds, rest) = (amount / n_usize, amount % n_usize);
    let mut drawn: Vec<u32> = Vec::with_capacity(amount);
    for _ in 0..rounds {
        drawn.extend(0..n);
    }
    drawn.extend(choose_distinct(n, rest as u32, rng));
    drawn
}

/// `k` distinct uniformly random indices in `0..n` (partial Fisher–Yates over `u32`), in draw
/// order. Requires `k ≤ n`.
fn choose_distinct(n: u32, k: u32, rng: &mut impl Rng) -> Vec<u32> {
    debug_assert!(k <= n, "cannot choose {k} distinct of {n}");
    let mut pool: Vec<u32> = (0..n).collect();
    for i in 0..k {
        let j = rng.random_range(i..n);
        pool.swap(i as usize, j as usize);
    }
    pool.truncate(k as usize);
    pool
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for strategy in Strategy::ALL {
            assert_eq!(strategy.to_string().parse::<Strategy>(), Ok(strategy));
            assert_eq!(
                serde_json::to_string(&strategy).unwrap(),
                format!("\"{strategy}\"")
            );
        }
        let err = "InsCL".parse::<Strategy>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown replay strategy \"InsCL\"; expected one of: none, random, dynamic, insinfo, inscl"
        );
    }

    #[test]
    fn strategy_components() {
        let table: Vec<(bool, bool, bool)> = Strategy::ALL
            .iter()
            .map(|s| {
                (
                    s.uses_distance_allocation(),
                    s.uses_insinfo_sampling(),
                    s.replays(),
                )
            })
            .collect();
        assert_eq!(
            table,
            vec![
                (false, false, false),
                (false, false, true),
                (true, false, true),
                (false, true, true),
                (true, true, true),
            ]
        );
    }

    #[test]
    fn budget_grows_with_stage() {
        assert_eq!(stage_budget(1, DEFAULT_ALPHA), 0);
        assert_eq!(stage_budget(2, DEFAULT_ALPHA), 200);
        assert_eq!(stage_budget(16, 200), 3000);
    }

    #[test]
    #[should_panic(expected = "1-based")]
    fn budget_rejects_stage_zero() {
        stage_budget(0, DEFAULT_ALPHA);
    }

    #[test]
    fn dynamic_allocation_floors_then_largest_distances() {
        // 0.5/1.0 × 401 = 200.5 → 200; 0.3 × 401 = 120.3 → 120; 0.2 × 401 = 80.2 → 80.
        // Σ = 400, remainder 1 → the largest distance (task 0).
        assert_eq!(allocate_dynamic(&[0.5, 0.3, 0.2], 401), vec![201, 120, 80]);
        // Same shares in another order: the remainder still follows the largest W.
        assert_eq!(allocate_dynamic(&[0.2, 0.3, 0.5], 401), vec![80, 120, 201]);
        // W = [1, 2, 2], budget 7: 7/5 = 1.4 → 1, 2.8 → 2, 2.8 → 2; remainder 2 goes to the two
        // tied largest tasks, task 1 first, then task 2.
        assert_eq!(allocate_dynamic(&[1.0, 2.0, 2.0], 7), vec![1, 3, 3]);
        // W = [2, 2, 2, 1], budget 10: 10 × 2/7 = 2.857 → 2 (×3), 1.43 → 1; remainder 3 →
        // tasks 0, 1, 2.
        assert_eq!(
            allocate_dynamic(&[2.0, 2.0, 2.0, 1.0], 10),
            vec![3, 3, 3, 1]
        );
    }

    #[test]
    fn dynamic_allocation_edge_cases() {
        assert!(allocate_dynamic(&[], 10).is_empty());
        assert_eq!(allocate_dynamic(&[0.0, 0.0, 0.0], 5), vec![2, 2, 1]);
        assert_eq!(allocate_dynamic(&[0.0, 3.0], 5), vec![0, 5]);
        assert_eq!(allocate_dynamic(&[0.4, 0.6], 0), vec![0, 0]);
    }

    #[test]
    fn uniform_allocation_remainder_to_earliest() {
        assert_eq!(allocate_uniform(3, 401), vec![134, 134, 133]);
        assert_eq!(allocate_uniform(4, 2), vec![1, 1, 0, 0]);
        assert!(allocate_uniform(0, 7).is_empty());
    }

    #[test]
    fn rng_streams_differ_per_stage_and_task() {
        let first = |mut rng: ChaCha8Rng| rng.random::<u64>();
        let a = first(replay_rng(7, 3, 1));
        assert_eq!(a, first(replay_rng(7, 3, 1)));
        assert_ne!(a, first(replay_rng(7, 3, 2)));
        assert_ne!(a, first(replay_rng(7, 4, 1)));
        assert_ne!(a, first(replay_rng(8, 3, 1)));
        assert_eq!(replay_rng(7, 3, 1).get_stream(), (3 << 32) | 1);
    }

    #[test]
    fn choose_distinct_is_a_partial_permutation() {
        let mut rng = replay_rng(1, 2, 0);
        let mut drawn = choose_distinct(10, 10, &mut rng);
        drawn.sort_unstable();
        assert_eq!(drawn, (0..10).collect::<Vec<_>>());
        assert!(choose_distinct(0, 0, &mut rng).is_empty());
    }

    #[test]
    fn random_sampling_oversamples_evenly() {
        // 3 instances, quota 7: every instance twice, plus one more.
        let chosen = sample_random(&[2, 1], 7, &mut replay_rng(3, 2, 0));
        let total: usize = chosen.iter().map(Vec::len).sum();
        assert_eq!(total, 7);
        let mut multiplicity = [0usize; 3];
        for (i, indices) in chosen.iter().enumerate() {
            for &k in indices {
                multiplicity[i * 2 + k as usize] += 1;
            }
        }
        multiplicity.sort_unstable();
        assert_eq!(multiplicity, [2, 2, 3]);
    }

    #[test]
    fn insinfo_sampling_below_instruction_count_takes_top_scores() {
        // Scores rank instructions 2, then 0 and 3 tied (the earlier, 0, wins), then 1.
        let counts = [5, 5, 5, 5];
        let scores = [0.25, 0.1, 0.4, 0.25];
        let chosen = sample_insinfo(&counts, &scores, 2, &mut replay_rng(9, 2, 0));
        let sizes: Vec<usize> = chosen.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 0, 1, 0]);
        // Instructions without instances never count: instruction 2 is empty here.
        let chosen = sample_insinfo(&[5, 5, 0, 5], &scores, 2, &mut replay_rng(9, 2, 0));
        let sizes: Vec<usize> = chosen.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 0, 0, 1]);
    }

    #[test]
    fn insinfo_sampling_proportional_then_top_up() {
        // quota 10: floors 5, 2, 1 → 8 chosen, 2 topped up from the remaining instances.
        let counts = [6, 6, 6];
        let scores = [0.55, 0.25, 0.2];
        let chosen = sample_insinfo(&counts, &scores, 10, &mut replay_rng(5, 2, 1));
        let sizes: Vec<usize> = chosen.iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 10);
        assert!(sizes[0] >= 5 && sizes[1] >= 2 && sizes[2] >= 2);
        // With 18 instances and quota 10 nothing repeats.
        for indices in &chosen {
            assert!(indices.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn insinfo_sampling_trims_but_keeps_every_instruction() {
        // quota 4 over 4 instructions: floors 3, 0, 0, 0 → max(1, ·) = 3, 1, 1, 1 = 6 → trim 2,
        // which must come from instruction 0 (the others hold their last instance).
        let chosen = sample_insinfo(
            &[9, 9, 9, 9],
            &[0.9, 0.05, 0.03, 0.02],
            4,
            &mut replay_rng(1, 2, 0),
        );
        let sizes: Vec<usize> = chosen.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 1, 1, 1]);
    }

    #[test]
    fn insinfo_sampling_cycles_small_instructions() {
        // Instruction 0 has 2 instances but is owed ⌊0.8 × 5⌋ = 4 → each twice.
        let chosen = sample_insinfo(&[2, 3], &[0.8, 0.2], 5, &mut replay_rng(4, 2, 0));
        assert_eq!(chosen[0], vec![0, 0, 1, 1]);
        assert_eq!(chosen[1].len(), 1);
    }

    #[test]
    fn samplers_known_answer() {
        let counts = [3, 0, 5, 2, 4];
        let scores = [0.1, 0.0, 0.5, 0.15, 0.25];
        let random = sample_random(&counts, 6, &mut replay_rng(2024, 3, 1));
        let insinfo = sample_insinfo(&counts, &scores, 9, &mut replay_rng(2024, 3, 1));
        // Regression values: they pin the ChaCha8 stream layout and the order of the draws, so
        // native and wasm32 must both reproduce them.
        assert_eq!(
            random,
            vec![vec![1, 2], vec![], vec![0, 4], vec![0], vec![2]]
        );
        // Floors of 9 × scores: 0 → 1, 4, 1, 2 (8 in all); one top-up instance went to
        // instruction 4.
        assert_eq!(
            insinfo,
            vec![vec![0], vec![], vec![1, 2, 3, 4], vec![0], vec![0, 1, 3]]
        );
        for (chosen, quota) in [(&random, 6), (&insinfo, 9)] {
            assert_eq!(chosen.iter().map(Vec::len).sum::<usize>(), quota);
            for (indices, &count) in chosen.iter().zip(&counts) {
                assert!(indices.windows(2).all(|w| w[0] < w[1]));
                assert!(indices.iter().all(|&k| k < count));
            }
        }
    }
}
