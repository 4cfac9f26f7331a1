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
    CostKind, OtError, PointCloud, PreparedCloud, SinkhornConfig, cost_matrix, emd,
    prepared_cost_matrix, sinkhorn_divergence,
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
/// Eq. 1–2) for [`Solver::Exact`], the Sinkhorn divergence for [`Solver::Sinkhorn`].
/// Units are those of the ground cost (cosine: in `[0, 2]`).
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

/// Solves every listed pair `(i, j)`, in parallel under the `parallel` feature on native
/// targets; results come back in input order. Under the exact solver each task's coordinates
/// are prepared for the cost once ([`PreparedCloud`]), not once per pair: the same values as
/// [`wasserstein`], and the same errors.
fn solve_pairs(
    tasks: &[InstructionCloud],
    pairs: &[(usize, usize)],
    cfg: &SimilarityConfig,
) -> Result<Vec<f64>, OtError> {
    let prepared: Option<Vec<Result<PreparedCloud, usize>>> = matches!(cfg.solver, Solver::Exact)
        .then(|| {
            tasks
                .iter()
                .map(|t| PreparedCloud::new(&t.points(), cfg.cost))
                .collect()
        });
    let solve = |&(i, j): &(usize, usize)| {
        let Some(prepared) = &prepared else {
            return wasserstein(&tasks[i], &tasks[j], cfg);
        };
        let (a, b) = (&tasks[i], &tasks[j]);
        if a.dim != b.dim {
            return Err(OtError::DimensionMismatch {
                left: a.dim,
                right: b.dim,
            });
        }
        let zero_norm = |cloud| move |&row: &usize| OtError::ZeroNorm { cloud, row };
        let costs = prepared_cost_matrix(
            prepared[i].as_ref().map_err(zero_norm("source"))?,
            prepared[j].as_ref().map_err(zero_norm("target"))?,
        )?;
        Ok(emd(&a.weights(cfg.weights), &b.weights(cfg.weights), &costs)?.cost)
    };
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        use rayon::prelude::*;
        pairs.par_iter().map(solve).collect()
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    pairs.iter().map(solve).collect()
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
    let values = solve_pairs(tasks, &pairs, cfg)?;
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
    solve_pairs(tasks, &pairs, cfg)
}
