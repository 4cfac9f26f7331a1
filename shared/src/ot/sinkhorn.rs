//! Entropic optimal transport: log-domain Sinkhorn and the Sinkhorn divergence.
//!
//! [`sinkhorn_log`] mirrors POT 0.9.7 `ot.bregman.sinkhorn_log` (reached through
//! `ot.sinkhorn(a, b, M, reg, method="sinkhorn_log")`) step for step, so that its cost equals
//! `ot.sinkhorn2(..., method="sinkhorn_log")`. [`sinkhorn_divergence`] mirrors
//! `ot.bregman.empirical_sinkhorn_divergence`.

use serde::{Deserialize, Serialize};

use super::{CostKind, CostMatrix, OtError, PointCloud, check_weights, cost_matrix};

/// Options of [`sinkhorn_log`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SinkhornConfig {
    /// Entropic regularisation ε (POT's `reg`), in cost units; must be positive and finite.
    pub epsilon: f64,
    /// Maximum number of Sinkhorn sweeps (POT's `numItermax`).
    pub max_iter: usize,
    /// Stop when the target-marginal violation ‖Pᵀ1 − b‖₂ drops below this (POT's `stopThr`).
    pub tol: f64,
}

impl SinkhornConfig {
    /// POT's defaults for `ot.sinkhorn`: `max_iter = 1000`, `tol = 1e-9`.
    pub fn new(epsilon: f64) -> Self {
        Self {
            epsilon,
            max_iter: 1000,
            tol: 1e-9,
        }
    }
}

/// Result of [`sinkhorn_log`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkhornSolution {
    /// Transport cost `⟨P, M⟩` of the entropic plan, without the entropy term (what POT's
    /// `ot.sinkhorn2` returns).
    pub cost: f64,
    /// The plan `P_ij = exp(−M_ij/ε + u_i + v_j)`, dense row-major `rows × cols`.
    pub plan: Vec<f64>,
    /// Number of sweeps performed (each sweep updates `v`, then `u`).
    pub iterations: usize,
    /// Whether the marginal error fell below `tol` before `max_iter`.
    pub converged: bool,
    /// Last measured ‖Pᵀ1 − b‖₂ (row marginals are exact after each sweep).
    pub marginal_error: f64,
}

/// Block length of the parallel passes: columns (or rows) handled by one task. Every
/// column and row is reduced in the same sequential order whatever the thread count, so
/// results do not depend on the `parallel` feature.
const BLOCK: usize = 256;

/// Calls `f(first_index, block)` on consecutive `BLOCK`-long blocks of `out`, in parallel
/// under the `parallel` feature on native targets.
fn for_each_block(out: &mut [f64], f: impl Fn(usize, &mut [f64]) + Sync + Send) {
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, block)| f(b * BLOCK, block));
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    out.chunks_mut(BLOCK)
        .enumerate()
        .for_each(|(b, block)| f(b * BLOCK, block));
}

/// `log Σ_k exp(x_k)` from `max = max_k x_k` and `sum_shifted = Σ_k exp(x_k − max)`, as
/// `scipy.special.logsumexp` computes it; `−∞` when every term is `−∞` (zero-weight points),
/// whatever `sum_shifted` is then.
fn logsumexp(max: f64, sum_shifted: f64) -> f64 {
    if max == f64::NEG_INFINITY {
        max
    } else {
        sum_shifted.ln() + max
    }
}

/// Entropic optimal transport in the log domain (POT `sinkhorn_log`).
///
/// With `K = −M/ε`, dual log-scalings start at `u = 0`, `v = 0` and each sweep sets
/// `v_j = log b_j − logsumexp_i(K_ij + u_i)`, then `u_i = log a_i − logsumexp_j(K_ij + v_j)`.
/// Every 10th sweep (sweep indices 0, 10, 20, …) the error `‖Σ_i P_ij − b‖₂` is measured and
/// the loop stops when it is below `cfg.tol`. Non-convergence is reported through
/// [`SinkhornSolution::converged`], as POT only warns.
///
/// Shapes: `a` has `cost.rows()` entries, `b` has `cost.cols()`; masses must match.
///
/// # Errors
/// [`OtError::InvalidEpsilon`] if ε ≤ 0 or not finite, and the weight errors of
/// [`super::emd_with`] (length, negative, non-finite, zero mass, mass mismatch).
pub fn sinkhorn_log(
    a: &[f64],
    b: &[f64],
    cost: &CostMatrix,
    cfg: &SinkhornConfig,
) -> Result<SinkhornSolution, OtError> {
    if !(cfg.epsilon > 0.0 && cfg.epsilon.is_finite()) {
        return Err(OtError::InvalidEpsilon(cfg.epsilon));
    }
    check_weights(a, b, cost.rows(), cost.cols())?;
    let (n, m) = (cost.rows(), cost.cols());
    let kernel: Vec<f64> = cost.as_slice().iter().map(|&c| -c / cfg.epsilon).collect();
    let log_a: Vec<f64> = a.iter().map(|w| w.ln()).collect();
    let log_b: Vec<f64> = b.iter().map(|w| w.ln()).collect();
    let mut u = vec![0.0; n];
    let mut v = vec![0.0; m];
    let mut col_sum = vec![0.0; m];
    let rows = |first: usize, count: usize| kernel[first * m..(first + count) * m].chunks_exact(m);

    let (mut iterations, mut converged, mut err) = (0, false, f64::INFINITY);
    for sweep in 0..cfg.max_iter {
        iterations = sweep + 1;
        // v_j = log b_j − logsumexp_i(K_ij + u_i), by blocks of columns walked row by row.
        for_each_block(&mut v, |j0, v_block| {
            let w = v_block.len();
            let mut col_max = [f64::NEG_INFINITY; BLOCK];
            for (row, &ui) in rows(0, n).zip(&u) {
                for (mx, &k) in col_max.iter_mut().zip(&row[j0..j0 + w]) {
                    *mx = mx.max(k + ui);
                }
            }
            let mut sum = [0.0; BLOCK];
            for (row, &ui) in rows(0, n).zip(&u) {
                for ((s, &k), &mx) in sum.iter_mut().zip(&row[j0..j0 + w]).zip(&col_max) {
                    *s += (k + ui - mx).exp();
                }
            }
            for (jj, vj) in v_block.iter_mut().enumerate() {
                *vj = log_b[j0 + jj] - logsumexp(col_max[jj], sum[jj]);
            }
        });
        // u_i = log a_i − logsumexp_j(K_ij + v_j), row by row.
        for_each_block(&mut u, |i0, u_block| {
            let block_rows = rows(i0, u_block.len());
            for ((ui, row), &la) in u_block.iter_mut().zip(block_rows).zip(&log_a[i0..]) {
                let mx = row
                    .iter()
                    .zip(&v)
                    .fold(f64::NEG_INFINITY, |acc, (&k, &vj)| acc.max(k + vj));
                let sum = row
                    .iter()
                    .zip(&v)
                    .map(|(&k, &vj)| (k + vj - mx).exp())
                    .sum();
                *ui = la - logsumexp(mx, sum);
            }
        });
        if sweep % 10 == 0 {
            // Column marginals of the current plan, compared with b.
            for_each_block(&mut col_sum, |j0, s_block| {
                s_block.fill(0.0);
                let vs = &v[j0..j0 + s_block.len()];
                for (row, &ui) in rows(0, n).zip(&u) {
                    for ((s, &k), &vj) in s_block.iter_mut().zip(&row[j0..]).zip(vs) {
                        *s += (k + ui + vj).exp();
                    }
                }
            });
            err = col_sum
                .iter()
                .zip(b)
                .map(|(s, bj)| (s - bj).powi(2))
                .sum::<f64>()
                .sqrt();
            if err < cfg.tol {
                converged = true;
                break;
            }
        }
    }

    let mut plan = vec![0.0; n * m];
    for_each_block(&mut plan, |first, block| {
        // Blocks of a dense n × m buffer may straddle rows: index each entry.
        for (k, p) in block.iter_mut().enumerate() {
            let (i, j) = ((first + k) / m, (first + k) % m);
            *p = (kernel[first + k] + u[i] + v[j]).exp();
        }
    });
    let total = plan.iter().zip(cost.as_slice()).map(|(p, c)| p * c).sum();
    Ok(SinkhornSolution {
        cost: total,
        plan,
        iterations,
        converged,
        marginal_error: err,
    })
}

/// Debiased Sinkhorn divergence between weighted clouds `(x, a)` and `(y, b)`:
///
/// `S_ε = max(0, OT_ε(a, b) − ½ (OT_ε(a, a) + OT_ε(b, b)))`,
///
/// where `OT_ε(·,·)` is the transport cost `⟨P_ε, M⟩` of the log-domain Sinkhorn plan
/// ([`sinkhorn_log`]) on the `kind` cost matrix of the two clouds. This is exactly how POT
/// 0.9.7 `ot.bregman.empirical_sinkhorn_divergence` computes it (Genevay, Peyré & Cuturi,
/// AISTATS 2018): three `empirical_sinkhorn2` calls, *without* the entropic terms, clamped at
/// zero.
///
/// Shapes: `a` has `x.rows()` entries, `b` has `y.rows()`.
///
/// # Errors
/// The errors of [`cost_matrix`] and [`sinkhorn_log`]. A Sinkhorn run that does not converge
/// is not an error (POT only warns).
pub fn sinkhorn_divergence(
    x: &PointCloud,
    y: &PointCloud,
    a: &[f64],
    b: &[f64],
    kind: CostKind,
    cfg: &SinkhornConfig,
) -> Result<f64, OtError> {
    let cross = sinkhorn_log(a, b, &cost_matrix(x, y, kind)?, cfg)?.cost;
    let self_x = sinkhorn_log(a, a, &cost_matrix(x, x, kind)?, cfg)?.cost;
    let self_y = sinkhorn_log(b, b, &cost_matrix(y, y, kind)?, cfg)?.cost;
    Ok((cross - 0.5 * (self_x + self_y)).max(0.0))
}
