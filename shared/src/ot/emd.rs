//! Exact optimal transport by the primal network simplex.
//!
//! Uniform clouds of equal size are handed to the linear assignment solver instead
//! ([`super::assignment`], [`EmdConfig::assignment`]); everything below describes the
//! general case.
//!
//! This is a Rust rendering of the *algorithm* of LEMON's `NetworkSimplex` (Kovács,
//! "Minimum-cost flow algorithms: an experimental evaluation", 2015) in the form POT uses it
//! for `ot.emd` / `ot.emd2` (`network_simplex_simple.h`, Bonneel et al. 2011): the transport
//! problem is a min-cost flow on the complete bipartite graph sources → sinks, started from an
//! artificial spanning tree rooted at an extra node, with
//!
//! - the spanning tree stored as `parent` / `pred` (arc to the parent and its direction) plus
//!   a preorder `thread` list with `rev_thread`, `succ_num` (subtree sizes) and `last_succ`,
//!   so that cycle search, tree re-hanging and potential updates touch only the affected
//!   subtree;
//! - the *block search* pivot rule: arcs are scanned cyclically in blocks of ≈ √(#arcs) and
//!   the most negative reduced cost of the first block that has one enters the basis;
//! - the strongly-feasible-tree tie rule (`<` on the source side, `≤` on the target side of
//!   the cycle) that prevents cycling on degenerate pivots;
//! - float64 supplies, and POT's relative tolerance on reduced costs.
//!
//! Capacities are infinite, so non-tree arcs always carry zero flow: flows are stored per
//! tree node (the flow of its `pred` arc), and the only arc states are "in tree" and "at lower
//! bound", kept by masking tree arcs with `+∞` in the scanned copy of the costs.

use serde::{Deserialize, Serialize};

use super::{CostMatrix, OtError, check_weights};

/// Options of [`emd_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmdConfig {
    /// Simplex pivots allowed whatever the problem size; default 100 000, POT's `numItermax`.
    pub max_iter: usize,
    /// Pivots allowed per node beyond that: the limit is
    /// `max(max_iter, pivots_per_node · (n + m))` ([`EmdConfig::limit`]); reaching it is an
    /// [`OtError::IterationLimit`]. Default 100; 0 keeps POT's fixed limit.
    ///
    /// Why: the pivots the network simplex needs grow with the problem (about 75 000 at
    /// n = m = 2000 on the benchmark clouds of `shared/benches/ot.rs`), so POT's fixed 100 000
    /// fails somewhere above n = 2000 although nothing is wrong with the problem.
    #[serde(default)]
    pub pivots_per_node: usize,
    /// Solve problems with `n = m` and uniform weights on both sides (every `a_i` equal,
    /// every `b_j` equal) as a linear assignment ([`super::linear_assignment`]): the same
    /// optimal `W` (Birkhoff–von Neumann), 1.4–2.5× faster than the network simplex at
    /// n = 1000–4000 (`tools/bench/RESULTS.md`). Default `true`; `false` always runs the
    /// network simplex, as POT does.
    #[serde(default = "assignment_default")]
    pub assignment: bool,
}

fn assignment_default() -> bool {
    true
}

impl Default for EmdConfig {
    fn default() -> Self {
        Self {
            max_iter: 100_000,
            pivots_per_node: 100,
            assignment: true,
        }
    }
}

impl EmdConfig {
    /// The pivot limit for `rows` sources and `cols` targets:
    /// `max(max_iter, pivots_per_node · (rows + cols))`.
    pub fn limit(&self, rows: usize, cols: usize) -> usize {
        self.max_iter
            .max(self.pivots_per_node.saturating_mul(rows + cols))
    }
}

/// One non-zero entry `P[row][col] = mass` of a transport plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransportEntry {
    /// Source index (row of the cost matrix).
    pub row: usize,
    /// Target index (column of the cost matrix).
    pub col: usize,
    /// Transported mass, > 0.
    pub mass: f64,
}

/// Which exact solver produced an [`EmdSolution`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmdAlgorithm {
    /// The network simplex (general weights and sizes).
    #[default]
    NetworkSimplex,
    /// Jonker–Volgenant linear assignment (uniform weights, `n = m`).
    Assignment,
}

/// Result of [`emd`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmdSolution {
    /// The optimal cost `W = ⟨P, M⟩ = Σ_ij P_ij M_ij` (what POT's `ot.emd2` returns), in the
    /// units of the cost matrix times mass.
    pub cost: f64,
    /// The optimal plan as its non-zero entries, sorted by `(row, col)`; a basic solution, so
    /// at most `n + m − 1` entries (`n`, one per row, from the assignment solver). Row sums
    /// equal `a`; column sums equal `b` rescaled to the mass of `a` (as POT does).
    pub plan: Vec<TransportEntry>,
    /// Simplex pivots performed, or shortest augmenting paths searched by the assignment
    /// solver ([`super::Assignment::augmentations`]).
    pub iterations: usize,
    /// The solver that ran.
    #[serde(default)]
    pub algorithm: EmdAlgorithm,
}

/// Exact optimal transport between histograms `a` (length `cost.rows()`) and `b` (length
/// `cost.cols()`) with [`EmdConfig::default`]. See [`emd_with`].
///
/// # Errors
/// As [`emd_with`].
pub fn emd(a: &[f64], b: &[f64], cost: &CostMatrix) -> Result<EmdSolution, OtError> {
    emd_with(a, b, cost, &EmdConfig::default())
}

/// Exact optimal transport `min_P ⟨P, M⟩` s.t. `P 1 = a`, `Pᵀ 1 = b`, `P ≥ 0`, solved by the
/// network simplex (mirrors POT `ot.emd` / `ot.emd2`), or, for uniform weights with `n = m`
/// and [`EmdConfig::assignment`], as a linear assignment with the same optimal cost.
///
/// Weights need not be normalised or uniform and `n ≠ m` is fine; zero-weight points are left
/// out of the flow graph (as in POT) and receive no mass. Like POT, `b` is rescaled by
/// `Σa / Σb` so that the masses match exactly.
///
/// # Errors
/// [`OtError::WeightLength`] if a weight vector does not match the cost matrix,
/// [`OtError::NegativeWeight`] / [`OtError::NonFiniteWeight`] naming side, index and value,
/// [`OtError::ZeroMass`] if one side has no mass, [`OtError::MassMismatch`] if `Σa` and `Σb`
/// differ by more than 1e-7 relative, [`OtError::IterationLimit`] if
/// [`cfg.limit(n, m)`](EmdConfig::limit) pivots did not reach optimality.
pub fn emd_with(
    a: &[f64],
    b: &[f64],
    cost: &CostMatrix,
    cfg: &EmdConfig,
) -> Result<EmdSolution, OtError> {
    let (mass_a, mass_b) = check_weights(a, b, cost.rows(), cost.cols())?;
    if cfg.assignment && a.len() == b.len() && is_uniform(a) && is_uniform(b) {
        return emd_assignment(a, cost);
    }
    let rows: Vec<usize> = (0..a.len()).filter(|&i| a[i] > 0.0).collect();
    let cols: Vec<usize> = (0..b.len()).filter(|&j| b[j] > 0.0).collect();
    let scale = mass_a / mass_b;
    let supply: Vec<f64> = rows
        .iter()
        .map(|&i| a[i])
        .chain(cols.iter().map(|&j| -b[j] * scale))
        .collect();
    let full = cost.as_slice();
    let arc_cost: Vec<f64> = if rows.len() == a.len() && cols.len() == b.len() {
        full.to_vec()
    } else {
        let m = cost.cols();
        rows.iter()
            .flat_map(|&i| cols.iter().map(move |&j| full[i * m + j]))
            .collect()
    };

    let mut simplex = NetworkSimplex::new(rows.len(), cols.len(), arc_cost, &supply);
    let iterations = simplex.run(cfg.limit(rows.len(), cols.len()))?;

    let m = cols.len();
    let mut plan: Vec<TransportEntry> = simplex
        .tree_flows()
        .map(|(e, mass)| TransportEntry {
            row: rows[e / m],
            col: cols[e % m],
            mass,
        })
        .collect();
    plan.sort_unstable_by_key(|p| (p.row, p.col));
    let total = plan.iter().map(|p| p.mass * cost.get(p.row, p.col)).sum();
    Ok(EmdSolution {
        cost: total,
        plan,
        iterations,
        algorithm: EmdAlgorithm::NetworkSimplex,
    })
}

/// Whether every weight equals the first (and so, after [`check_weights`], is positive).
fn is_uniform(w: &[f64]) -> bool {
    w.iter().all(|&v| v == w[0])
}

/// Uniform square problem as an assignment: row `i` sends its whole mass `a_i` to its
/// assigned column; `b` is the same mass per column up to the rescaling POT applies.
fn emd_assignment(a: &[f64], cost: &CostMatrix) -> Result<EmdSolution, OtError> {
    let assignment = super::linear_assignment(cost)?;
    let plan: Vec<TransportEntry> = assignment
        .col_of_row
        .iter()
        .enumerate()
        .map(|(row, &col)| TransportEntry {
            row,
            col,
            mass: a[row],
        })
        .collect();
    let total = plan.iter().map(|p| p.mass * cost.get(p.row, p.col)).sum();
    Ok(EmdSolution {
        cost: total,
        plan,
        iterations: assignment.augmentations,
        algorithm: EmdAlgorithm::Assignment,
    })
}

/// Sentinel for "no node / no arc".
const NONE: usize = usize::MAX;
/// POT's relative tolerance on reduced costs (`EPSILON` in `network_simplex_simple.h`):
/// an arc enters only if its reduced cost is below `−EPSILON × max(|cost|, |π_s|, |π_t|)`.
const EPSILON: f64 = 2.220_446_049_250_313e-15;
/// Direction of a tree arc relative to its child node: child → parent.
const UP: f64 = 1.0;
/// Direction of a tree arc relative to its child node: parent → child.
const DOWN: f64 = -1.0;

/// The most negative reduced cost `c_e + π_source − π_target` over a run of arcs leaving one
/// source, as `(value, offset in the run)` with the first offset on ties (LEMON's strict `<`
/// while scanning); `(0.0, None)` if no arc is negative. Independent lanes let the compiler
/// vectorise the scan; [`scan_run`] picks the widest vector unit available.
#[inline(always)]
fn min_reduced_cost(cost: &[f64], pi_target: &[f64], pi_source: f64) -> (f64, Option<usize>) {
    const LANES: usize = 8;
    let mut acc = [0.0; LANES];
    let mut at = [usize::MAX; LANES];
    let chunks = cost.chunks_exact(LANES).zip(pi_target.chunks_exact(LANES));
    for (chunk, (c, p)) in chunks.enumerate() {
        for k in 0..LANES {
            let r = c[k] + pi_source - p[k];
            if r < acc[k] {
                acc[k] = r;
                at[k] = chunk * LANES + k;
            }
        }
    }
    let tail = cost.len() - cost.len() % LANES;
    let rest = (tail..cost.len()).map(|k| (cost[k] + pi_source - pi_target[k], k));
    let (min, at) = acc
        .into_iter()
        .zip(at)
        .chain(rest)
        .fold((0.0, usize::MAX), |best, (r, k)| {
            if r < best.0 || (r == best.0 && k < best.1) {
                (r, k)
            } else {
                best
            }
        });
    (min, (at != usize::MAX).then_some(at))
}

/// [`min_reduced_cost`] compiled for AVX2 (4 lanes instead of SSE2's 2). Only
/// element-wise IEEE `+`, `−` and comparisons are involved, so the result is bit-identical.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn min_reduced_cost_avx2(cost: &[f64], pi_target: &[f64], pi_source: f64) -> (f64, Option<usize>) {
    min_reduced_cost(cost, pi_target, pi_source)
}

/// [`min_reduced_cost`] compiled for wasm's simd128 (2 float64 lanes), the studio's build:
/// wasm has no runtime feature detection, and its `gemm` cost matrices already need simd128.
/// Bit-identical for the same reason as the AVX2 build.
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn min_reduced_cost_simd128(
    cost: &[f64],
    pi_target: &[f64],
    pi_source: f64,
) -> (f64, Option<usize>) {
    min_reduced_cost(cost, pi_target, pi_source)
}

/// [`min_reduced_cost`] with the AVX2 build when the CPU has it (checked once, cached by
/// `std`), the simd128 build on wasm32.
fn scan_run(cost: &[f64], pi_target: &[f64], pi_source: f64) -> (f64, Option<usize>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2, the only requirement of the function.
        return unsafe { min_reduced_cost_avx2(cost, pi_target, pi_source) };
    }
    #[cfg(target_arch = "wasm32")]
    return min_reduced_cost_simd128(cost, pi_target, pi_source);
    #[cfg(not(target_arch = "wasm32"))]
    min_reduced_cost(cost, pi_target, pi_source)
}

/// Network simplex state for the complete bipartite graph with `n` sources (nodes `0..n`),
/// `m` sinks (nodes `n..n+m`) and the artificial root (node `n + m`).
///
/// Arc `e < n·m` goes from source `e / m` to sink `n + e % m` with cost `cost[e]`; arc
/// `n·m + u` is the artificial arc between node `u` and the root.
struct NetworkSimplex {
    n: usize,
    m: usize,
    /// Arc costs with tree arcs masked by `+∞`: the pivot scan reads only this array, and a
    /// tree arc (reduced cost zero up to rounding) can never look improving. This replaces
    /// LEMON's per-arc `state × reduced cost`; the true costs of tree arcs live in
    /// `pred_cost`.
    scan_cost: Vec<f64>,
    parent: Vec<usize>,
    pred: Vec<usize>,
    /// [`UP`] or [`DOWN`]: orientation of `pred[u]` relative to `u`.
    pred_dir: Vec<f64>,
    /// Flow on `pred[u]`.
    flow: Vec<f64>,
    /// Cost of `pred[u]` (kept per node so that pivots never touch the big cost array at
    /// random places).
    pred_cost: Vec<f64>,
    thread: Vec<usize>,
    rev_thread: Vec<usize>,
    succ_num: Vec<usize>,
    last_succ: Vec<usize>,
    pi: Vec<f64>,
    dirty_revs: Vec<usize>,
    block_size: usize,
    next_arc: usize,
    // Current pivot.
    in_arc: usize,
    in_cost: f64,
    join: usize,
    u_in: usize,
    v_in: usize,
    u_out: usize,
    delta: f64,
}

impl NetworkSimplex {
    /// Builds the initial strongly feasible tree: every node hangs from the root by an
    /// artificial arc carrying its supply (LEMON's `init()` for the `EQ` supply type).
    fn new(n: usize, m: usize, cost: Vec<f64>, supply: &[f64]) -> Self {
        let nodes = n + m;
        let root = nodes;
        let art_cost = (cost.iter().fold(0.0_f64, |acc, &c| acc.max(c)) + 1.0) * nodes as f64;
        let mut s = Self {
            n,
            m,
            scan_cost: cost,
            parent: vec![root; nodes + 1],
            pred: (0..=nodes).map(|u| n * m + u).collect(),
            pred_dir: vec![UP; nodes + 1],
            flow: vec![0.0; nodes + 1],
            pred_cost: vec![0.0; nodes + 1],
            thread: (1..=nodes + 1).collect(),
            rev_thread: vec![0; nodes + 1],
            succ_num: vec![1; nodes + 1],
            last_succ: (0..=nodes).collect(),
            pi: vec![0.0; nodes + 1],
            dirty_revs: Vec::new(),
            block_size: ((n * m) as f64).sqrt().ceil().max(10.0) as usize,
            next_arc: 0,
            in_arc: NONE,
            in_cost: 0.0,
            join: NONE,
            u_in: NONE,
            v_in: NONE,
            u_out: NONE,
            delta: 0.0,
        };
        for (u, &sup) in supply.iter().enumerate() {
            s.rev_thread[u + 1] = u;
            s.flow[u] = sup.abs();
            // Demand nodes hang from the root by a root → node arc of artificial cost.
            if sup < 0.0 {
                s.pred_dir[u] = DOWN;
                s.pi[u] = art_cost;
                s.pred_cost[u] = art_cost;
            }
        }
        s.parent[root] = NONE;
        s.pred[root] = NONE;
        s.thread[root] = 0;
        s.rev_thread[0] = root;
        s.succ_num[root] = nodes + 1;
        s.last_succ[root] = root - 1;
        s
    }

    /// Pivots until no arc has a negative reduced cost; returns the number of pivots.
    fn run(&mut self, max_iter: usize) -> Result<usize, OtError> {
        let mut iterations = 0;
        while self.find_entering_arc() {
            if iterations == max_iter {
                return Err(OtError::IterationLimit {
                    solver: "network simplex",
                    max_iter,
                });
            }
            iterations += 1;
            self.find_join_node();
            self.find_leaving_arc();
            self.change_flow();
            self.update_tree_structure();
            self.update_potential();
        }
        Ok(iterations)
    }

    /// `(arc, flow)` for every real (non-artificial) tree arc with positive flow.
    fn tree_flows(&self) -> impl Iterator<Item = (usize, f64)> + '_ {
        let arcs = self.n * self.m;
        (0..self.n + self.m)
            .filter(move |&u| self.pred[u] < arcs && self.flow[u] > 0.0)
            .map(|u| (self.pred[u], self.flow[u]))
    }

    fn source(&self, e: usize) -> usize {
        e / self.m
    }

    fn target(&self, e: usize) -> usize {
        self.n + e % self.m
    }

    /// Whether the best arc found so far has a reduced cost that is negative beyond rounding.
    fn is_improving(&self, best: usize, min: f64) -> bool {
        if best == NONE {
            return false;
        }
        let scale = self.pi[self.source(best)]
            .abs()
            .max(self.pi[self.target(best)].abs())
            .max(self.scan_cost[best].abs());
        min < -EPSILON * scale
    }

    /// Block search pivot rule: scans arcs cyclically from `next_arc`, one block at a time,
    /// and picks the most negative reduced cost `c_e + π_s − π_t` of the first block that
    /// contains an improving arc. Returns false at optimality.
    fn find_entering_arc(&mut self) -> bool {
        let (n, m) = (self.n, self.m);
        let arcs = n * m;
        let (pi_src, pi_dst) = self.pi.split_at(n);
        let pi_dst = &pi_dst[..m];
        let (mut min, mut best) = (0.0, NONE);
        let mut left_in_block = self.block_size;
        let mut e = self.next_arc;
        let mut scanned = 0;
        while scanned < arcs {
            // Scan a run of arcs that stays in one source row and one block.
            let (i, j0) = (e / m, e % m);
            let len = left_in_block.min(m - j0);
            let (cost, pj) = (&self.scan_cost[e..e + len], &pi_dst[j0..j0 + len]);
            if let (run_min, Some(k)) = scan_run(cost, pj, pi_src[i])
                && run_min < min
            {
                min = run_min;
                best = e + k;
            }
            e += len;
            if e == arcs {
                e = 0;
            }
            scanned += len;
            left_in_block -= len;
            if left_in_block == 0 {
                if self.is_improving(best, min) {
                    break;
                }
                left_in_block = self.block_size;
            }
        }
        if !self.is_improving(best, min) {
            return false;
        }
        self.in_arc = best;
        self.in_cost = self.scan_cost[best];
        self.next_arc = e;
        true
    }

    /// The apex of the cycle closed by the entering arc: the deepest common ancestor of its
    /// endpoints (walk up from whichever side has the smaller subtree).
    fn find_join_node(&mut self) {
        let mut u = self.source(self.in_arc);
        let mut v = self.target(self.in_arc);
        while u != v {
            if self.succ_num[u] < self.succ_num[v] {
                u = self.parent[u];
            } else {
                v = self.parent[v];
            }
        }
        self.join = u;
    }

    /// Finds the bottleneck arc of the cycle. Flow is pushed source → target along the
    /// entering arc, so on the source side arcs pointing up lose flow and on the target side
    /// arcs pointing down do; ties go to the last candidate on the target side (`≤`), which
    /// keeps the tree strongly feasible.
    fn find_leaving_arc(&mut self) {
        let first = self.source(self.in_arc);
        let second = self.target(self.in_arc);
        let mut delta = f64::INFINITY;
        let mut out = NONE;
        let mut on_first = true;
        let mut u = first;
        while u != self.join {
            if self.pred_dir[u] == UP && self.flow[u] < delta {
                delta = self.flow[u];
                out = u;
            }
            u = self.parent[u];
        }
        u = second;
        while u != self.join {
            if self.pred_dir[u] == DOWN && self.flow[u] <= delta {
                delta = self.flow[u];
                out = u;
                on_first = false;
            }
            u = self.parent[u];
        }
        // The graph has no directed cycle (sinks have no outgoing arcs), so a bottleneck
        // always exists.
        debug_assert!(out != NONE, "unbounded cycle in a transport problem");
        self.u_out = out;
        self.delta = delta;
        (self.u_in, self.v_in) = if on_first {
            (first, second)
        } else {
            (second, first)
        };
    }

    /// Pushes `delta` around the cycle and swaps arc states.
    fn change_flow(&mut self) {
        let delta = self.delta;
        if delta > 0.0 {
            let mut u = self.source(self.in_arc);
            while u != self.join {
                self.flow[u] -= self.pred_dir[u] * delta;
                u = self.parent[u];
            }
            u = self.target(self.in_arc);
            while u != self.join {
                self.flow[u] += self.pred_dir[u] * delta;
                u = self.parent[u];
            }
        }
        self.scan_cost[self.in_arc] = f64::INFINITY;
        let leaving = self.pred[self.u_out];
        if leaving < self.n * self.m {
            self.scan_cost[leaving] = self.pred_cost[self.u_out];
        }
    }

    /// Re-hangs the subtree cut off by the leaving arc below `v_in` via the entering arc,
    /// reversing the stem path `u_in … u_out` and patching the thread list, subtree sizes
    /// and last successors (LEMON's `updateTreeStructure`).
    fn update_tree_structure(&mut self) {
        let (u_in, v_in, u_out, join) = (self.u_in, self.v_in, self.u_out, self.join);
        let in_dir = if u_in == self.source(self.in_arc) {
            UP
        } else {
            DOWN
        };
        let old_rev_thread = self.rev_thread[u_out];
        let old_succ_num = self.succ_num[u_out];
        let old_last_succ = self.last_succ[u_out];
        let v_out = self.parent[u_out];

        if u_in == u_out {
            self.parent[u_in] = v_in;
            self.pred[u_in] = self.in_arc;
            self.pred_dir[u_in] = in_dir;
            self.flow[u_in] = self.delta;
            self.pred_cost[u_in] = self.in_cost;
            if self.thread[v_in] != u_out {
                let mut after = self.thread[old_last_succ];
                self.thread[old_rev_thread] = after;
                self.rev_thread[after] = old_rev_thread;
                after = self.thread[v_in];
                self.thread[v_in] = u_out;
                self.rev_thread[u_out] = v_in;
                self.thread[old_last_succ] = after;
                self.rev_thread[after] = old_last_succ;
            }
        } else {
            // When the subtree of u_out directly follows v_in in the thread, join == v_out
            // and the thread continues after the moved subtree instead.
            let thread_continue = if old_rev_thread == v_in {
                self.thread[old_last_succ]
            } else {
                self.thread[v_in]
            };
            let mut stem = u_in;
            let mut par_stem = v_in;
            let mut last = self.last_succ[u_in];
            let mut after = self.thread[last];
            self.thread[v_in] = u_in;
            self.dirty_revs.clear();
            self.dirty_revs.push(v_in);
            while stem != u_out {
                let next_stem = self.parent[stem];
                self.thread[last] = next_stem;
                self.dirty_revs.push(last);
                // Cut the subtree of `stem` out of the thread list.
                let before = self.rev_thread[stem];
                self.thread[before] = after;
                self.rev_thread[after] = before;
                self.parent[stem] = par_stem;
                par_stem = stem;
                stem = next_stem;
                last = if self.last_succ[stem] == self.last_succ[par_stem] {
                    self.rev_thread[par_stem]
                } else {
                    self.last_succ[stem]
                };
                after = self.thread[last];
            }
            self.parent[u_out] = par_stem;
            self.thread[last] = thread_continue;
            self.rev_thread[thread_continue] = last;
            self.last_succ[u_out] = last;
            if old_rev_thread != v_in {
                self.thread[old_rev_thread] = after;
                self.rev_thread[after] = old_rev_thread;
            }
            for &u in &self.dirty_revs {
                self.rev_thread[self.thread[u]] = u;
            }
            // Shift pred arcs (with their flows) one step down the reversed stem.
            let mut tmp_sc = 0;
            let tmp_ls = self.last_succ[u_out];
            let mut u = u_out;
            while u != u_in {
                let p = self.parent[u];
                self.pred[u] = self.pred[p];
                self.pred_dir[u] = -self.pred_dir[p];
                self.flow[u] = self.flow[p];
                self.pred_cost[u] = self.pred_cost[p];
                tmp_sc += self.succ_num[u] - self.succ_num[p];
                self.succ_num[u] = tmp_sc;
                self.last_succ[p] = tmp_ls;
                u = p;
            }
            self.pred[u_in] = self.in_arc;
            self.pred_dir[u_in] = in_dir;
            self.flow[u_in] = self.delta;
            self.pred_cost[u_in] = self.in_cost;
            self.succ_num[u_in] = old_succ_num;
        }

        let up_limit_out = if self.last_succ[join] == v_in {
            join
        } else {
            NONE
        };
        let last_succ_out = self.last_succ[u_out];
        let mut u = v_in;
        while u != NONE && self.last_succ[u] == v_in {
            self.last_succ[u] = last_succ_out;
            u = self.parent[u];
        }
        let replacement = if join != old_rev_thread && v_in != old_rev_thread {
            Some(old_rev_thread)
        } else if last_succ_out != old_last_succ {
            Some(last_succ_out)
        } else {
            None
        };
        if let Some(replacement) = replacement {
            let mut u = v_out;
            while u != up_limit_out && self.last_succ[u] == old_last_succ {
                self.last_succ[u] = replacement;
                u = self.parent[u];
            }
        }
        let mut u = v_in;
        while u != join {
            self.succ_num[u] += old_succ_num;
            u = self.parent[u];
        }
        let mut u = v_out;
        while u != join {
            self.succ_num[u] -= old_succ_num;
            u = self.parent[u];
        }
    }

    /// Shifts the potentials of the re-hung subtree so the entering arc has zero reduced
    /// cost (the subtree is the thread segment from `u_in` to its last successor).
    fn update_potential(&mut self) {
        let sigma =
            self.pi[self.v_in] - self.pi[self.u_in] - self.pred_dir[self.u_in] * self.in_cost;
        let end = self.thread[self.last_succ[self.u_in]];
        let mut u = self.u_in;
        while u != end {
            self.pi[u] += sigma;
            u = self.thread[u];
        }
    }
}
