//! The linear assignment problem, solved exactly by the Jonker–Volgenant algorithm.
//!
//! Exact OT between two clouds of the same size `n` with uniform weights is an assignment
//! problem: the transport polytope `{P ≥ 0, P1 = 1/n, Pᵀ1 = 1/n}` is `1/n` times the
//! Birkhoff polytope of doubly stochastic matrices, whose vertices are permutation matrices
//! (Birkhoff–von Neumann), so a linear objective attains its minimum at one of them. InsCL's
//! task clouds are uniform, and equal in size whenever tasks are capped at the same number of
//! instructions, so [`super::emd_with`] solves those problems here: same `W`, a plan with `n`
//! entries of mass `1/n`, about 2–3× faster than the network simplex at n = 1000–4000 on dense
//! cosine costs (`shared/examples/emd_large.rs`).
//!
//! The algorithm is LAPJV (R. Jonker and A. Volgenant, "A shortest augmenting path algorithm
//! for dense and sparse linear assignment problems", *Computing* 38, 1987), as laid out in
//! src-d/lapjv's `lapjv.h` (itself a port of Jonker's Pascal code):
//!
//! 1. *column reduction*: `v_j = min_i c_ij`, each column offered to its cheapest row, and
//!    *reduction transfer* for rows that received exactly one column;
//! 2. two passes of *augmenting row reduction* over the rows left free;
//! 3. *augmentation*: for each remaining free row, a Dijkstra-like shortest augmenting path
//!    on the reduced costs `c_ij − v_j`, then a price update of the columns it made final.
//!
//! Every step keeps the column prices `v` dual feasible, so the final assignment is optimal
//! (complementary slackness) up to floating-point rounding of the prices; ties between equally
//! cheap columns go to the lowest index as in the reference code, which makes the result
//! deterministic.

use super::{CostMatrix, OtError};

/// Sentinel for "no row" / "no column".
const NONE: usize = usize::MAX;

/// Reduced costs computed and tested together in the row scans: one AVX-512 or two AVX2
/// vectors of `f64`.
const LANES: usize = 8;

/// An optimal assignment of the rows of a square cost matrix to its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// `col_of_row[i]` is the column assigned to row `i`; a permutation of `0..n`.
    pub col_of_row: Vec<usize>,
    /// `Σ_i c[i][col_of_row[i]]`, the minimum over all permutations (cost-matrix units).
    pub cost: f64,
    /// Shortest augmenting paths searched in step 3 (0 when the reductions assigned every
    /// row); the work of the solver beyond its O(n²) reductions.
    pub augmentations: usize,
}

/// Solves `min_σ Σ_i c[i][σ(i)]` over permutations `σ` of `0..n` for a square `n × n` cost
/// matrix (LAPJV, see the [module docs](self)). O(n²) per reduction pass and per augmenting
/// path, O(n³) in the worst case.
///
/// # Errors
/// [`OtError::NotSquare`] if the matrix has `rows ≠ cols`.
pub fn linear_assignment(cost: &CostMatrix) -> Result<Assignment, OtError> {
    let (rows, cols) = (cost.rows(), cost.cols());
    if rows != cols {
        return Err(OtError::NotSquare { rows, cols });
    }
    Ok(solve(cost.as_slice(), rows))
}

/// Rows of augmenting row reduction attempted per row taken from the free list before the
/// pass gives up and leaves the rest to augmentation: `n / 16`, within `[16, 64]`. The
/// reference allows `n` (effectively unbounded); on dense cosine costs its passes then
/// dominate the run (40 ms of 41 at n = 1000, `shared/examples/emd_large.rs`). An attempt
/// scans one row (O(n)) and a shortest path O(n²), so larger problems afford more attempts:
/// 64 was the fastest of 16, 32, 64 and 96 at n = 1000, 2000 and 4000 (3, 13 and 36 rows
/// left to the paths), 16 at n = 200 (the studio's 120 clustered task pairs: 70 against
/// 96 ms at 64); `tools/bench/RESULTS.md`, "Exact W against POT".
fn arr_attempts_per_row(n: usize) -> usize {
    (n / 16).clamp(16, 64)
}

/// The three LAPJV phases on a row-major `n × n` cost buffer, with the AVX-512 or AVX2 build
/// of every loop when the CPU has it (checked once, cached by `std`). Only IEEE `+`, `−`,
/// comparisons and selects are involved, so every build gives bit-identical results.
fn solve(cost: &[f64], n: usize) -> Assignment {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the only requirement of the function.
        return unsafe { solve_avx512(cost, n) };
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only requirement of the function.
        return unsafe { solve_avx2(cost, n) };
    }
    #[cfg(target_arch = "wasm32")]
    return solve_simd128(cost, n);
    #[cfg(not(target_arch = "wasm32"))]
    solve_portable(cost, n)
}

/// The studio's build: wasm has no runtime feature detection, and its `gemm` cost matrices
/// already need simd128 (every current browser has it).
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn solve_simd128(cost: &[f64], n: usize) -> Assignment {
    solve_portable(cost, n)
}

/// [`solve_portable`] compiled for AVX2 (blocks of [`LANES`] as two vectors).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn solve_avx2(cost: &[f64], n: usize) -> Assignment {
    solve_portable(cost, n)
}

/// [`solve_portable`] compiled for AVX-512F (blocks of [`LANES`] as one vector).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn solve_avx512(cost: &[f64], n: usize) -> Assignment {
    solve_portable(cost, n)
}

#[inline(always)]
fn solve_portable(cost: &[f64], n: usize) -> Assignment {
    let mut solver = Jv::new(cost, n);
    let free = solver.column_reduction();
    let free = solver.augmenting_row_reduction(free);
    let free = solver.augmenting_row_reduction(free);
    let augmentations = free.len();
    for row in free {
        solver.augment(row);
    }
    let cost = (0..n).map(|i| solver.row(i)[solver.col_of_row[i]]).sum();
    Assignment {
        col_of_row: solver.col_of_row,
        cost,
        augmentations,
    }
}

/// The two cheapest reduced costs of a row seen so far, with their columns.
struct TwoCheapest {
    j1: usize,
    u1: f64,
    j2: usize,
    u2: f64,
}

impl TwoCheapest {
    /// Takes column `j` with reduced cost `c` into account; the first of equal costs stays
    /// first, as in the reference.
    #[inline(always)]
    fn offer(&mut self, j: usize, c: f64) {
        if c < self.u2 {
            if c >= self.u1 {
                (self.j2, self.u2) = (j, c);
            } else {
                (self.j2, self.u2) = (self.j1, self.u1);
                (self.j1, self.u1) = (j, c);
            }
        }
    }
}

/// LAPJV state: the partial assignment in both directions and the column prices.
struct Jv<'a> {
    cost: &'a [f64],
    n: usize,
    col_of_row: Vec<usize>,
    row_of_col: Vec<usize>,
    /// Column prices (dual variables `v_j`); row prices are implicit.
    price: Vec<f64>,
}

impl<'a> Jv<'a> {
    #[inline(always)]
    fn new(cost: &'a [f64], n: usize) -> Self {
        Self {
            cost,
            n,
            col_of_row: vec![NONE; n],
            row_of_col: vec![NONE; n],
            price: vec![f64::INFINITY; n],
        }
    }

    #[inline(always)]
    fn row(&self, i: usize) -> &'a [f64] {
        &self.cost[i * self.n..(i + 1) * self.n]
    }

    /// Step 1 (`ccrrt_dense`): column minima as prices, each column offered to its cheapest
    /// row (the highest column wins a row wanted by several), then reduction transfer for
    /// rows holding exactly one column. Returns the rows left free, in increasing order.
    #[inline(always)]
    fn column_reduction(&mut self) -> Vec<usize> {
        let n = self.n;
        // Row-major scan; strict `<` keeps the lowest row among equal minima.
        for i in 0..n {
            let cheapest = self.price.iter_mut().zip(self.row_of_col.iter_mut());
            for ((v, r), &c) in cheapest.zip(self.cost[i * n..(i + 1) * n].iter()) {
                let lower = c < *v;
                *v = if lower { c } else { *v };
                *r = if lower { i } else { *r };
            }
        }
        let mut unique = vec![true; n];
        for j in (0..n).rev() {
            let i = self.row_of_col[j];
            if self.col_of_row[i] == NONE {
                self.col_of_row[i] = j;
            } else {
                unique[i] = false;
                self.row_of_col[j] = NONE;
            }
        }
        let mut free = Vec::new();
        for (i, (&j, &alone)) in self.col_of_row.iter().zip(&unique).enumerate() {
            if j == NONE {
                free.push(i);
            } else if alone && n > 1 {
                // Transfer: lower the price of the row's column as far as its second-best
                // reduced cost allows.
                let second = self.cost[i * n..(i + 1) * n]
                    .iter()
                    .zip(&self.price)
                    .enumerate()
                    .filter(|&(k, _)| k != j)
                    .map(|(_, (&c, &v))| c - v)
                    .fold(f64::INFINITY, f64::min);
                self.price[j] -= second;
            }
        }
        free
    }

    /// Step 2 (`_carr_dense`): each free row takes its cheapest column by reduced cost,
    /// lowering that column's price by the gap to its second cheapest; the row it displaces
    /// is retried at once if the price fell, else queued. Bounded to
    /// [`arr_attempts_per_row`] attempts per processed row (the reference: `n`), which also
    /// keeps rounding from making it cycle. Returns the rows still free.
    #[inline(always)]
    fn augmenting_row_reduction(&mut self, mut free: Vec<usize>) -> Vec<usize> {
        let cap = arr_attempts_per_row(self.n);
        let (mut current, mut kept, mut attempts) = (0, 0, 0usize);
        while current < free.len() {
            attempts += 1;
            let row = free[current];
            current += 1;
            let (mut j1, u1, j2, u2) = self.two_cheapest(row);
            let mut displaced = self.row_of_col[j1];
            let lowered = self.price[j1] - (u2 - u1);
            let price_falls = lowered < self.price[j1];
            if attempts < current * cap {
                if price_falls {
                    self.price[j1] = lowered;
                } else if displaced != NONE && j2 != NONE {
                    j1 = j2;
                    displaced = self.row_of_col[j2];
                }
                if displaced != NONE {
                    if price_falls {
                        current -= 1;
                        free[current] = displaced;
                    } else {
                        free[kept] = displaced;
                        kept += 1;
                    }
                }
            } else if displaced != NONE {
                free[kept] = displaced;
                kept += 1;
            }
            self.col_of_row[row] = j1;
            self.row_of_col[j1] = row;
        }
        free.truncate(kept);
        free
    }

    /// The cheapest and second cheapest reduced costs `c_ij − v_j` of row `i`, as
    /// `(j1, u1, j2, u2)`; `j2` is [`NONE`] (and `u2 = +∞`) when `n = 1`. Branchy as in the
    /// reference, but each block of [`LANES`] reduced costs is first tested at once against
    /// `u2` (vector instructions): past the first columns almost every block fails, and only
    /// a hit takes its entries one by one, in the reference's order. Exact, because `u2`
    /// never grows (it becomes `c < u2` or the old `u1 ≤ u2`): a block with no entry below
    /// `u2` at its start would have changed nothing entry by entry either.
    #[inline(always)]
    fn two_cheapest(&self, i: usize) -> (usize, f64, usize, f64) {
        let row = self.row(i);
        let mut best = TwoCheapest {
            j1: 0,
            u1: row[0] - self.price[0],
            j2: NONE,
            u2: f64::INFINITY,
        };
        let blocks_end = 1 + (self.n - 1) / LANES * LANES;
        let blocks = row[1..blocks_end].chunks_exact(LANES);
        for (block, (costs, prices)) in blocks
            .zip(self.price[1..blocks_end].chunks_exact(LANES))
            .enumerate()
        {
            let mut reduced = [0.0; LANES];
            for ((r, &c), &v) in reduced.iter_mut().zip(costs).zip(prices) {
                *r = c - v;
            }
            if reduced.iter().fold(false, |hit, &c| hit | (c < best.u2)) {
                for (j, &c) in (1 + block * LANES..).zip(&reduced) {
                    best.offer(j, c);
                }
            }
        }
        for (j, (&c, &v)) in row.iter().zip(&self.price).enumerate().skip(blocks_end) {
            best.offer(j, c - v);
        }
        (best.j1, best.u1, best.j2, best.u2)
    }

    /// Step 3 (`_ca_dense`): assigns free row `start` along a shortest augmenting path.
    #[inline(always)]
    fn augment(&mut self, start: usize) {
        let (mut j, pred) = self.shortest_path(start);
        loop {
            let i = pred[j];
            self.row_of_col[j] = i;
            let previous = std::mem::replace(&mut self.col_of_row[i], j);
            if i == start {
                break;
            }
            j = previous;
        }
    }

    /// Dijkstra on reduced costs from row `start` (`find_path_dense`): returns the free
    /// column that ends the path and the predecessor row of every column, after raising
    /// the prices of the columns made final so that reduced costs stay non-negative.
    ///
    /// Position `k` holds column `cols[k]`; positions `[0, ready)` are final, `[ready, hi)`
    /// at the current minimum distance (scanned from `lo`), `[hi, n)` still to do. Prices
    /// and distances are kept in position order, so that the relaxation loop reads them
    /// contiguously and gathers only the cost row.
    #[inline(always)]
    fn shortest_path(&mut self, start: usize) -> (usize, Vec<usize>) {
        let n = self.n;
        let price = self.price.clone();
        let dist = self.row(start).iter().zip(&price).map(|(&c, &v)| c - v);
        let mut f = Frontier {
            cols: (0..n).collect(),
            dist: dist.collect(),
            price,
            pred: vec![start; n],
        };
        let (mut lo, mut hi, mut ready, mut min) = (0, 0, 0, 0.0);
        let end = 'search: loop {
            if lo == hi {
                // Gather every todo position at the new minimum into `[lo, hi)` (`find_dense`).
                ready = lo;
                hi = lo + 1;
                min = f.dist[lo];
                for k in lo + 1..n {
                    if f.dist[k] <= min {
                        if f.dist[k] < min {
                            hi = lo;
                            min = f.dist[k];
                        }
                        f.swap(k, hi);
                        hi += 1;
                    }
                }
                if let Some(&j) = f.cols[lo..hi].iter().find(|&&j| self.row_of_col[j] == NONE) {
                    break 'search j;
                }
            }
            // Scan the positions at the minimum: relax the todo columns through their rows.
            while lo < hi {
                let i = self.row_of_col[f.cols[lo]];
                let row = self.row(i);
                let h = row[f.cols[lo]] - f.price[lo] - min;
                lo += 1;
                // The range is fixed here: positions that join `[lo, hi)` below were visited.
                // Blocks of `LANES` reduced costs are computed and tested at once (vector
                // instructions). `hi` starts at the first block and grows by at most one per
                // position visited, so relaxing position `p` swaps only positions `≤ p`: a
                // block's later values stay those of their positions while its hits are
                // taken one by one.
                let mut block = hi;
                while block + LANES <= n {
                    let mut reduced = [0.0; LANES];
                    for (l, r) in reduced.iter_mut().enumerate() {
                        *r = row[f.cols[block + l]] - f.price[block + l] - h;
                    }
                    let below = |hit, l: usize| hit | (reduced[l] < f.dist[block + l]);
                    if (0..LANES).fold(false, below) {
                        for (p, &r) in (block..).zip(&reduced) {
                            if let Some(j) = f.relax(p, r, i, min, &mut hi, &self.row_of_col) {
                                break 'search j;
                            }
                        }
                    }
                    block += LANES;
                }
                for k in block..n {
                    let r = row[f.cols[k]] - f.price[k] - h;
                    if let Some(j) = f.relax(k, r, i, min, &mut hi, &self.row_of_col) {
                        break 'search j;
                    }
                }
            }
        };
        for k in 0..ready {
            self.price[f.cols[k]] += f.dist[k] - min;
        }
        (end, f.pred)
    }
}

/// One shortest-path search's columns, prices and distances in position order (see
/// [`Jv::shortest_path`]), and the predecessor row of every column (by column).
struct Frontier {
    cols: Vec<usize>,
    price: Vec<f64>,
    dist: Vec<f64>,
    pred: Vec<usize>,
}

impl Frontier {
    /// Exchanges positions `a` and `b` (column, price and distance together).
    #[inline(always)]
    fn swap(&mut self, a: usize, b: usize) {
        self.cols.swap(a, b);
        self.price.swap(a, b);
        self.dist.swap(a, b);
    }

    /// Relaxes position `k` through row `i` with reduced distance `reduced`; a column that
    /// reaches the current minimum `min` joins `[lo, hi)`, or ends the path when free
    /// (returned).
    #[inline(always)]
    fn relax(
        &mut self,
        k: usize,
        reduced: f64,
        i: usize,
        min: f64,
        hi: &mut usize,
        row_of_col: &[usize],
    ) -> Option<usize> {
        if reduced < self.dist[k] {
            self.dist[k] = reduced;
            self.pred[self.cols[k]] = i;
            if reduced == min {
                if row_of_col[self.cols[k]] == NONE {
                    return Some(self.cols[k]);
                }
                self.swap(k, *hi);
                *hi += 1;
            }
        }
        None
    }
}

/// The block-tested scans against the plain loops they replace (src-d/lapjv's `lapjv.h`
/// order), and every compiled build of the solver against the portable one.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// `_carr_dense`'s scan, entry by entry (this module's code before the block test).
    fn two_cheapest_reference(row: &[f64], price: &[f64]) -> (usize, f64, usize, f64) {
        let (mut j1, mut u1) = (0, row[0] - price[0]);
        let (mut j2, mut u2) = (NONE, f64::INFINITY);
        for (j, (&cost, &v)) in row.iter().zip(price).enumerate().skip(1) {
            let c = cost - v;
            if c < u2 {
                if c >= u1 {
                    (j2, u2) = (j, c);
                } else {
                    (j2, u2) = (j1, u1);
                    (j1, u1) = (j, c);
                }
            }
        }
        (j1, u1, j2, u2)
    }

    /// Small integers: many equal reduced costs, so the order among ties is tested too.
    fn tie_heavy(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * n)
            .map(|_| f64::from(rng.random_range(0u8..4)))
            .collect()
    }

    proptest! {
        #[test]
        fn two_cheapest_matches_the_plain_scan(n in 1usize..=40, seed in any::<u64>()) {
            let cost = tie_heavy(n, seed);
            let mut solver = Jv::new(&cost, n);
            solver.price = tie_heavy(n, seed ^ 1)[..n].to_vec();
            for i in 0..n {
                let got = solver.two_cheapest(i);
                let want = two_cheapest_reference(solver.row(i), &solver.price);
                prop_assert_eq!((got.0, got.1.to_bits(), got.2, got.3.to_bits()),
                    (want.0, want.1.to_bits(), want.2, want.3.to_bits()), "row {}", i);
            }
        }
    }

    /// Tie-heavy sizes around the block length, and a uniform random n = 1040 where the
    /// row-reduction cap reaches 64 and shortest paths remain.
    #[test]
    fn every_build_gives_the_portable_result() {
        let mut cases: Vec<(usize, Vec<f64>)> = [7, 9, 16, 17, 33]
            .map(|n| (n, tie_heavy(n, n as u64)))
            .into();
        let mut rng = ChaCha8Rng::seed_from_u64(1040);
        cases.push((
            1040,
            (0..1040 * 1040).map(|_| rng.random::<f64>()).collect(),
        ));
        let mut paths_at_1040 = 0;
        for (n, cost) in &cases {
            let portable = solve_portable(cost, *n);
            let dispatched = solve(cost, *n);
            assert_eq!(dispatched.col_of_row, portable.col_of_row, "n = {n}");
            assert_eq!(
                dispatched.cost.to_bits(),
                portable.cost.to_bits(),
                "n = {n}"
            );
            assert_eq!(dispatched.augmentations, portable.augmentations, "n = {n}");
            paths_at_1040 = dispatched.augmentations;
        }
        assert!(paths_at_1040 > 0, "paths exercised at n = 1040");
    }
}
