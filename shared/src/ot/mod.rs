//! # Optimal transport
//!
//! The numerical layer under InsCL's task similarity (§3.1): a task is a discrete
//! distribution over its instruction embeddings, and two tasks are compared by the optimal
//! transport (Wasserstein) cost between their distributions.
//!
//! - [`cost`]: borrowed `f32` point clouds ([`PointCloud`]) and float64 ground-cost matrices
//!   ([`cost_matrix`], same formulas as POT's `ot.dist`), or cosine ones from float32
//!   products ([`CostPrecision`]).
//! - [`emd`](mod@emd): exact OT by the network simplex ([`emd()`], like POT's `ot.emd2`),
//!   returning the cost `⟨P, M⟩` and the sparse optimal plan.
//! - [`assignment`]: the linear assignment problem by Jonker–Volgenant
//!   ([`linear_assignment`]), which [`emd()`] uses for uniform clouds of equal size.
//! - [`sinkhorn`]: entropic OT in the log domain ([`sinkhorn_log`], like POT's
//!   `ot.sinkhorn2(method="sinkhorn_log")`) and the debiased [`sinkhorn_divergence`].
//! - [`error`]: the typed [`OtError`].
//!
//! Weights (histograms) are `f64` slices, one entry per point, non-negative with equal total
//! mass on both sides (checked to 1e-7 relative). Everything is deterministic and runs on
//! wasm32; under the `parallel` feature on native targets the cost matrix and the Sinkhorn
//! passes are split into row/column blocks that run in parallel, with the same reduction
//! order as the sequential build.

pub mod assignment;
pub mod cost;
pub mod emd;
pub mod error;
pub mod sinkhorn;

pub use assignment::{Assignment, linear_assignment};
pub use cost::{
    CostKind, CostMatrix, CostPrecision, ParseCostKindError, ParseCostPrecisionError, PointCloud,
    PreparedCloud, cost_matrix, prepared_cost_matrix, prepared_plan_cost,
};
pub use emd::{EmdAlgorithm, EmdConfig, EmdSolution, TransportEntry, emd, emd_with};
pub use error::OtError;
pub use sinkhorn::{SinkhornConfig, SinkhornSolution, sinkhorn_divergence, sinkhorn_log};

/// Relative tolerance on `|Σa − Σb|`, matching POT's `assert_almost_equal(decimal=6)` spirit
/// but relative to the mass.
const MASS_RTOL: f64 = 1e-7;

/// Validates one weight vector against its expected length; returns its sum.
fn check_side(w: &[f64], side: &'static str, expected: usize) -> Result<f64, OtError> {
    if w.len() != expected {
        return Err(OtError::WeightLength {
            side,
            len: w.len(),
            expected,
        });
    }
    for (index, &value) in w.iter().enumerate() {
        if !value.is_finite() {
            return Err(OtError::NonFiniteWeight { side, index, value });
        }
        if value < 0.0 {
            return Err(OtError::NegativeWeight { side, index, value });
        }
    }
    let mass: f64 = w.iter().sum();
    if mass == 0.0 {
        return Err(OtError::ZeroMass { side });
    }
    Ok(mass)
}

/// Validates source weights `a` (length `rows`) and target weights `b` (length `cols`) and
/// returns their masses `(Σa, Σb)`.
///
/// # Errors
/// [`OtError::WeightLength`], [`OtError::NonFiniteWeight`], [`OtError::NegativeWeight`],
/// [`OtError::ZeroMass`], and [`OtError::MassMismatch`] when the masses differ by more than
/// 1e-7 relative to the larger one.
pub(crate) fn check_weights(
    a: &[f64],
    b: &[f64],
    rows: usize,
    cols: usize,
) -> Result<(f64, f64), OtError> {
    let source_mass = check_side(a, "source", rows)?;
    let target_mass = check_side(b, "target", cols)?;
    let difference = source_mass - target_mass;
    if difference.abs() > MASS_RTOL * source_mass.max(target_mass) {
        return Err(OtError::MassMismatch {
            source_mass,
            target_mass,
            difference,
        });
    }
    Ok((source_mass, target_mass))
}
