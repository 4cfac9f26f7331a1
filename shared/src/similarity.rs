//! Task similarity as optimal transport between instruction distributions (InsCL §3.1).
//!
//! InsCL represents a task by the distribution of its instructions in embedding space: each
//! distinct instruction `k` is a point `x_k` (its embedding) carrying probability mass
//! proportional to how many training examples use it (the paper's "real distribution"). The
//! dissimilarity of two tasks is the Wasserstein distance between these distributions under
//! the cosine ground cost, `W(T_i, T_j) = min_P ⟨P, M⟩` (InsCL Eq. 1–2), which the replay
//! budget allocation then uses to favour previous tasks that drifted far from the current one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ot::{
    CostKind, CostPrecision, OtError, PointCloud, PreparedCloud, SinkhornConfig, cost_matrix, emd,
    prepared_cost_matrix, prepared_plan_cost, sinkhorn_divergence,
};

/// How a task's instruction embeddings are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightScheme {
    /// `count_k / Σ count`: the frequency of each instruction in the task's data (InsCL's
    /// "real distribution").
    #[default]
    Real,
    /// `1 / n` for each of the `n` distinct instructions.
    Uniform,
}

impl WeightScheme {
    /// The lowercase name used by serde, [`FromStr`] and [`fmt::Display`].
    pub fn name(self) -> &'static str {
        match self {
            WeightScheme::Real => "real",
            WeightScheme::Uniform => "uniform",
        }
    }
}

impl fmt::Display for WeightScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`WeightScheme::from_str`]: the unknown name and the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown weight scheme {0:?}; valid names are \"real\", \"uniform\"")]
pub struct ParseWeightSchemeError(pub String);

impl FromStr for WeightScheme {
    type Err = ParseWeightSchemeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [WeightScheme::Real, WeightScheme::Uniform]
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| ParseWeightSchemeError(s.to_owned()))
    }
}

/// Which transport problem measures the distance between two tasks.
///
/// Serialised internally tagged: `{"kind": "exact"}` or `{"kind": "sinkhorn", "epsilon": 0.05}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Solver {
    /// Exact Wasserstein cost ([`crate::ot::emd()`]: the network simplex as in InsCL, or the
    /// assignment solver, with the same optimum, when both clouds are uniform and equal in size).
    #[default]
    Exact,
    /// Debiased Sinkhorn divergence ([`crate::ot::sinkhorn_divergence`]) with POT's default
    /// iteration limit and tolerance ([`SinkhornConfig::new`]).
    Sinkhorn {
        /// Entropic regularisation ε, in cost units (> 0).
        epsilon: f64,
    },
}

/// Everything that defines the task distance.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct SimilarityConfig {
    /// Ground cost between embeddings (default cosine, as in InsCL).
    pub cost: CostKind,
    /// Weighting of instructions (default [`WeightScheme::Real`]).
    pub weights: WeightScheme,
    /// Transport solver (default [`Solver::Exact`]).
    pub solver: Solver,
    /// Arithmetic of the exact solver's cosine cost matrices (default
    /// [`CostPrecision::Float64`]; [`CostPrecision::Float32`] finds the optimal plan from
    /// float32 products and sums its cost in float64). Omitted from JSON when float64.
    #[serde(default, skip_serializing_if = "CostPrecision::is_float64")]
    pub precision: CostPrecision,
}

/// A task as a weighted cloud of distinct instruction embeddings.
///
/// `points` is `len() × dim()` row-major (row `k` = embedding of instruction `k`) and
/// `counts[k] ≥ 1` is how many examples of the task use instruction `k`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawInstructionCloud")]
pub struct InstructionCloud {
    dim: usize,
    points: Vec<f32>,
    counts: Vec<u32>,
}

/// The serialised form of [`InstructionCloud`], validated by [`InstructionCloud::new`] on
/// deserialisation.
#[derive(Deserialize)]
struct RawInstructionCloud {
    dim: usize,
    points: Vec<f32>,
    counts: Vec<u32>,
}

impl TryFrom<RawInstructionCloud> for InstructionCloud {
    type Error = OtError;

    fn try_from(raw: RawInstructionCloud) -> Result<Self, OtError> {
        Self::new(raw.dim, raw.points, raw.counts)
    }
}

impl InstructionCloud {
    /// Builds a cloud of `counts.len()` instructions with `dim`-dimensional embeddings.
    ///
    /// # Errors
    /// The [`PointCloud::new`] errors for `points` (empty, zero dimension, ragged,
    /// non-finite), [`OtError::CountLength`] if `counts.len()` is not the number of rows and
    /// [`OtError::ZeroCount`] (with its row) for a zero count.
    pub fn new(dim: usize, points: Vec<f32>, counts: Vec<u32>) -> Result<Self, OtError> {
        let rows = PointCloud::new(&points, dim)?.rows();
        if counts.len() != rows {
            return Err(OtError::CountLength {
                counts: counts.len(),
                rows,
            });
        }
        if let Some(row) = counts.iter().position(|&c| c == 0) {
            return Err(OtError::ZeroCount { row });
        }
        Ok(Self {
            dim,
            points,
            counts,
        })
    }

    /// Number of distinct instructions (≥ 1).
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Always false: a cloud has at least one instruction (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Instruction counts, one per row.
    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    /// The embeddings as a borrowed point cloud.
    ///
    /// # Panics
    /// Never: the cloud was validated when it was built.
    pub fn points(&self) -> PointCloud<'_> {
        PointCloud::new(&self.points, self.dim).expect("validated at construction")
    }

    /// Probability weights of the instructions, length `len()`, summing to 1:
    /// `count_k / Σ count` for [`WeightScheme::Real`], `1 / len()` for
    /// [`WeightScheme::Uniform`].
    pub fn weights(&self, scheme: WeightScheme) -> Vec<f64> {
        match scheme {
            WeightScheme::Real => {
                let total: f64 = self.counts.iter().map(|&c| f64::from(c)).sum();
                self.counts.iter().map(|&c| f64::from(c) / total).collect()
            }
            WeightScheme::Uniform => vec![1.0 / self.len() as f64; self.len()],
        }
    }
}

/// Distance between two tasks under `cfg`: the exact Wasserstein cost `⟨P*, M⟩` (InsCL
/// Eq. 1–2) for [`Solver::Exact`] (its plan found from float32 products under
/// [`CostPrecision::Float32`] and the cosine cost), the Sinkhorn divergence for
/// [`Solver::Sinkhorn`]. Units are those of the ground cost (cosine: in `[0, 2]`).
///
/// # Errors
/// [`OtError::DimensionMismatch`] if the tasks have different embedding dimensions,
/// [`OtError::ZeroNorm`] for a zero embedding under the cosine cost,
/// [`OtError::InvalidEpsilon`] for a bad ε, [`OtError::IterationLimit`] if the exact solver
/// hits its pivot limit.
pub fn wasserstein(
    a: &InstructionCloud,
    b: &InstructionCloud,
    cfg: &SimilarityConfig,
) -> Result<f64, OtError> {
    let (wa, wb) = (a.weights(cfg.weights), b.weights(cfg.weights));
    match cfg.solver {
        Solver::Exact
            if cfg.precision == CostPrecision::Float32 && cfg.cost == CostKind::Cosine =>
        {
            let prepare = |t: &InstructionCloud| {
                PreparedCloud::with_precision(&t.points(), cfg.cost, cfg.precision)
            };
            prepared_distance(a, b, &prepare(a), &prepare(b), cfg)
        }
        // `cost_matrix` gives a cloud with itself POT's exact zero diagonal.
        Solver::Exact => Ok(emd(&wa, &wb, &cost_matrix(&a.points(), &b.points(), cfg.cost)?)?.cost),
        Solver::Sinkhorn { epsilon } => sinkhorn_divergence(
            &a.points(),
            &b.points(),
            &wa,
            &wb,
            cfg.cost,
            &SinkhornConfig::new(epsilon),
        ),
    }
}

/// Every task's coordinates prepared for the exact solver's cost matrices under one cost and
/// precision: a [`PreparedCloud`] per task, or the row of its first zero vector under the
/// cosine cost. It depends only on the tasks, the cost and the precision, so a caller that
/// solves several batches of pairs of the same tasks (the studio's distance workers) prepares
/// them once ([`prepared_pair_distances`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedTasks {
    cost: CostKind,
    precision: CostPrecision,
    clouds: Vec<Result<PreparedCloud, usize>>,
}

impl PreparedTasks {
    /// Prepares every task of `tasks` for `cost` with the products of `precision`.
    pub fn new(tasks: &[InstructionCloud], cost: CostKind, precision: CostPrecision) -> Self {
        let clouds = tasks
            .iter()
            .map(|t| PreparedCloud::with_precision(&t.points(), cost, precision))
            .collect();
        Self {
            cost,
            precision,
            clouds,
        }
    }

    /// Whether these are the preparations `cfg` needs (its cost and precision).
    pub fn is_for(&self, cfg: &SimilarityConfig) -> bool {
        self.cost == cfg.cost && self.precision == cfg.precision
    }
}

/// The distances `W(tasks[i], tasks[j])` of the listed pairs, in their order: the unit of work
/// of [`distance_matrix`] and [`distance_row`], public so that callers may spread the pairs
/// of one matrix over workers (the studio's Web Workers) and get the same values. Solved in
/// parallel under the `parallel` feature on native targets. Under the exact solver each
/// task's coordinates are prepared for the cost once ([`PreparedTasks`]), not once per pair:
/// the same values as [`wasserstein`] under [`CostPrecision::Float64`], and the same errors.
/// Under [`CostPrecision::Float32`] (cosine) the plan comes from the float32 cost matrix and
/// its cost from [`prepared_plan_cost`].
///
/// # Errors
/// [`OtError::TaskIndex`] for a pair naming a task past the end, otherwise the first error of
/// [`wasserstein`] over the pairs.
pub fn pair_distances(
    tasks: &[InstructionCloud],
    pairs: &[(usize, usize)],
    cfg: &SimilarityConfig,
) -> Result<Vec<f64>, OtError> {
    let prepared = matches!(cfg.solver, Solver::Exact)
        .then(|| PreparedTasks::new(tasks, cfg.cost, cfg.precision));
    solve_pairs(tasks, prepared.as_ref(), pairs, cfg)
}

/// [`pair_distances`] with the tasks already prepared (unused, and not checked, under the
/// Sinkhorn solver).
///
/// # Errors
/// As [`pair_distances`].
///
/// # Panics
/// Under the exact solver, when `prepared` is not for `cfg`'s cost and precision
/// ([`PreparedTasks::is_for`]) or has another number of tasks.
pub fn prepared_pair_distances(
    tasks: &[InstructionCloud],
    prepared: &PreparedTasks,
    pairs: &[(usize, usize)],
    cfg: &SimilarityConfig,
) -> Result<Vec<f64>, OtError> {
    let exact = matches!(cfg.solver, Solver::Exact);
    if exact {
        assert!(
            prepared.is_for(cfg),
            "tasks prepared for another cost or precision"
        );
        assert_eq!(
            prepared.clouds.len(),
            tasks.len(),
            "tasks prepared for another task list"
        );
    }
    solve_pairs(tasks, exact.then_some(prepared), pairs, cfg)
}

/// [`pair_distances`] on `prepared` tasks (`None`: the Sinkhorn solver, which takes the raw
/// clouds).
fn solve_pairs(
    tasks: &[InstructionCloud],
    prepared: Option<&PreparedTasks>,
    pairs: &[(usize, usize)],
    cfg: &SimilarityConfig,
) -> Result<Vec<f64>, OtError> {
    if let Some(index) = pairs
        .iter()
        .map(|&(i, j)| i.max(j))
        .find(|&k| k >= tasks.len())
    {
        return Err(OtError::TaskIndex {
            index,
            len: tasks.len(),
        });
    }
    let solve = |&(i, j): &(usize, usize)| match prepared {
        Some(prepared) => prepared_distance(
            &tasks[i],
            &tasks[j],
            &prepared.clouds[i],
            &prepared.clouds[j],
            cfg,
        ),
        None => wasserstein(&tasks[i], &tasks[j], cfg),
    };
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        use rayon::prelude::*;
        pairs.par_iter().map(solve).collect()
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    pairs.iter().map(solve).collect()
}

/// The exact distance of tasks `a` and `b` from their prepared coordinates `x` and `y` (or
/// the row of their first zero vector), with [`wasserstein`]'s errors in its order: the
/// dimensions, then a zero vector in the source, then in the target. Under
/// [`CostPrecision::Float32`] the plan's cost is summed in float64 ([`prepared_plan_cost`]).
fn prepared_distance(
    a: &InstructionCloud,
    b: &InstructionCloud,
    x: &Result<PreparedCloud, usize>,
    y: &Result<PreparedCloud, usize>,
    cfg: &SimilarityConfig,
) -> Result<f64, OtError> {
    if a.dim != b.dim {
        return Err(OtError::DimensionMismatch {
            left: a.dim,
            right: b.dim,
        });
    }
    let zero_norm = |cloud| move |&row: &usize| OtError::ZeroNorm { cloud, row };
    let x = x.as_ref().map_err(zero_norm("source"))?;
    let y = y.as_ref().map_err(zero_norm("target"))?;
    let costs = prepared_cost_matrix(x, y)?;
    let solution = emd(&a.weights(cfg.weights), &b.weights(cfg.weights), &costs)?;
    Ok(match x.precision() {
        CostPrecision::Float64 => solution.cost,
        CostPrecision::Float32 => prepared_plan_cost(x, y, &solution.plan),
    })
}

/// The full symmetric `T × T` matrix of task distances, `D[i][j] = D[j][i] =
/// wasserstein(tasks[i], tasks[j])` with a zero diagonal; each unordered pair is solved once.
///
/// # Errors
/// The first error of [`wasserstein`] over the pairs.
pub fn distance_matrix(
    tasks: &[InstructionCloud],
    cfg: &SimilarityConfig,
) -> Result<Vec<Vec<f64>>, OtError> {
    let t = tasks.len();
    let pairs: Vec<(usize, usize)> = (0..t)
        .flat_map(|i| (i + 1..t).map(move |j| (i, j)))
        .collect();
    let values = pair_distances(tasks, &pairs, cfg)?;
    let mut d = vec![vec![0.0; t]; t];
    for (&(i, j), w) in pairs.iter().zip(values) {
        d[i][j] = w;
        d[j][i] = w;
    }
    Ok(d)
}

/// Distances `W(tasks[current], tasks[j])` to every previous task `j < current` (length
/// `current`): what InsCL needs when task `current` arrives.
///
/// # Errors
/// [`OtError::TaskIndex`] if `current >= tasks.len()`, otherwise as [`wasserstein`].
pub fn distance_row(
    tasks: &[InstructionCloud],
    current: usize,
    cfg: &SimilarityConfig,
) -> Result<Vec<f64>, OtError> {
    if current >= tasks.len() {
        return Err(OtError::TaskIndex {
            index: current,
            len: tasks.len(),
        });
    }
    // Solved as (j, current), the orientation of `distance_matrix`'s upper triangle, so that
    // both give bit-identical values (cost sums run in a different order when transposed).
    let pairs: Vec<(usize, usize)> = (0..current).map(|j| (j, current)).collect();
    pair_distances(tasks, &pairs, cfg)
}
