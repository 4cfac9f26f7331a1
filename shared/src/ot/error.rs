//! Typed errors of the optimal-transport layer.

use thiserror::Error;

/// Everything that can go wrong when building cost matrices or solving a transport problem.
///
/// Every variant names the offending value and where it sits, so that a failure deep in a
/// pairwise distance computation can be traced back to its input.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum OtError {
    /// A point cloud (or an instruction cloud) has no points.
    #[error("point cloud is empty: at least one point is required")]
    EmptyCloud,
    /// A point cloud was declared with dimension 0.
    #[error("point dimension must be at least 1, got 0")]
    ZeroDimension,
    /// The flat coordinate buffer does not split into whole rows.
    #[error("coordinate buffer of length {len} is not a multiple of the dimension {dim}")]
    RaggedData {
        /// Length of the flat buffer.
        len: usize,
        /// Declared dimension.
        dim: usize,
    },
    /// Two clouds, or a cloud and its declared dimension, disagree on the dimension.
    #[error("dimension mismatch: {left} vs {right}")]
    DimensionMismatch {
        /// Dimension of the first operand.
        left: usize,
        /// Dimension of the second operand.
        right: usize,
    },
    /// A coordinate is NaN or infinite.
    #[error("coordinate at row {row}, column {col} is not finite ({value})")]
    NonFiniteCoordinate {
        /// Row (point index).
        row: usize,
        /// Column (coordinate index).
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// The cosine cost is undefined for a zero vector.
    #[error("cosine cost is undefined for the zero-norm vector at row {row} of the {cloud} cloud")]
    ZeroNorm {
        /// Which cloud: `"source"` (x) or `"target"` (y).
        cloud: &'static str,
        /// Row of the zero vector.
        row: usize,
    },
    /// A weight vector does not have one entry per row/column of the cost matrix.
    #[error("{side} weights have length {len}, but the cost matrix has {expected} {side} points")]
    WeightLength {
        /// `"source"` (rows) or `"target"` (columns).
        side: &'static str,
        /// Length of the weight vector.
        len: usize,
        /// Expected length.
        expected: usize,
    },
    /// A weight is negative.
    #[error("{side} weight {index} is negative ({value})")]
    NegativeWeight {
        /// `"source"` or `"target"`.
        side: &'static str,
        /// Index of the weight.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// A weight is NaN or infinite.
    #[error("{side} weight {index} is not finite ({value})")]
    NonFiniteWeight {
        /// `"source"` or `"target"`.
        side: &'static str,
        /// Index of the weight.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// All weights of one side are zero.
    #[error("{side} weights sum to zero: no mass to transport")]
    ZeroMass {
        /// `"source"` or `"target"`.
        side: &'static str,
    },
    /// Source and target masses differ by more than the relative tolerance `1e-7`.
    #[error(
        "source mass {source_mass} and target mass {target_mass} differ by {difference} \
         (more than 1e-7 relative)"
    )]
    MassMismatch {
        /// Σ a.
        source_mass: f64,
        /// Σ b.
        target_mass: f64,
        /// Σ a − Σ b.
        difference: f64,
    },
    /// A cost-matrix entry is NaN or infinite.
    #[error("cost entry ({row}, {col}) is not finite ({value})")]
    NonFiniteCost {
        /// Row of the entry.
        row: usize,
        /// Column of the entry.
        col: usize,
        /// The offending value.
        value: f64,
    },
    /// The entropic regularisation is not a positive finite number.
    #[error("entropic regularisation epsilon must be positive and finite, got {0}")]
    InvalidEpsilon(f64),
    /// An iterative solver hit its iteration limit before reaching optimality.
    #[error("{solver} stopped at its iteration limit of {max_iter} before reaching optimality")]
    IterationLimit {
        /// `"network simplex"` or `"sinkhorn"`.
        solver: &'static str,
        /// The limit that was reached.
        max_iter: usize,
    },
    /// A linear assignment was asked of a cost matrix that is not square.
    #[error("linear assignment needs a square cost matrix, got {rows} rows and {cols} columns")]
    NotSquare {
        /// Rows of the cost matrix.
        rows: usize,
        /// Columns of the cost matrix.
        cols: usize,
    },
    /// An instruction cloud was built with a count vector of the wrong length.
    #[error("{counts} instruction counts given for {rows} embedding rows")]
    CountLength {
        /// Number of counts.
        counts: usize,
        /// Number of embedding rows.
        rows: usize,
    },
    /// An instruction count is zero.
    #[error(
        "instruction count at row {row} is zero; every distinct instruction occurs at least once"
    )]
    ZeroCount {
        /// Row of the zero count.
        row: usize,
    },
    /// A task index is outside the task list.
    #[error("task index {index} is out of range for {len} tasks")]
    TaskIndex {
        /// The requested index.
        index: usize,
        /// Number of tasks.
        len: usize,
    },
}
