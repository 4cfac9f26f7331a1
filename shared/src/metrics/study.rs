//! Statistics of a study: the same metric measured over several runs (seeds × task orders).
//!
//! - [`describe`]: n, mean, sample standard deviation and the two-sided 95% Student-t
//!   confidence interval of the mean, `mean ± t(0.975, n − 1) · sd / √n`.
//! - [`compare_paired`]: the differences `a_i − b_i` of two strategies over matched cells
//!   (same seed and order), with a percentile bootstrap 95% CI of their mean
//!   ([`bootstrap_mean_ci`]) and the exact sign-flip permutation p-value of their mean
//!   ([`sign_flip_p_value`]).
//!
//! Checked against scipy (`scipy.stats.t`, `scipy.stats.permutation_test`,
//! `scipy.stats.bootstrap`) by `tools/reference/study_reference.py` and
//! `shared/tests/study_reference.rs`. Distributions and quantiles come from `statrs`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::{Data, OrderStatistics};

/// Level of every interval here.
pub const CONFIDENCE: f64 = 0.95;

/// Bootstrap resamples of [`compare_paired`] (percentile CI; the Monte-Carlo error of its
/// 2.5% / 97.5% quantiles is a few hundredths of the sd of the mean at this size).
pub const BOOTSTRAP_RESAMPLES: usize = 10_000;

/// The most cells [`sign_flip_p_value`] enumerates exactly (2^n sign patterns).
pub const MAX_EXACT_CELLS: usize = 24;

/// Summary of one metric over runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Described {
    /// Runs that have the metric.
    pub n: usize,
    /// Mean (NaN when `n = 0`).
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `None` when `n < 2`.
    pub sd: Option<f64>,
    /// Two-sided 95% Student-t interval of the mean, `[low, high]`; `None` when `n < 2`.
    pub ci95: Option<[f64; 2]>,
}

/// [`Described`] of `values`.
///
/// # Panics
/// Never for a finite sample: Student's t with n − 1 ≥ 1 degrees of freedom is always defined.
pub fn describe(values: &[f64]) -> Described {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return Described {
            n,
            mean,
            sd: None,
            ci95: None,
        };
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let sd = variance.sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .expect("n - 1 ≥ 1 degrees of freedom")
        .inverse_cdf(0.5 + CONFIDENCE / 2.0);
    let half = t * sd / (n as f64).sqrt();
    Described {
        n,
        mean,
        sd: Some(sd),
        ci95: Some([mean - half, mean + half]),
    }
}

/// Paired differences `a − b` over matched cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// Mean, sd and t-interval of the differences.
    pub difference: Described,
    /// Percentile bootstrap 95% CI of the mean difference ([`bootstrap_mean_ci`]); `None`
    /// when `n < 2`.
    pub bootstrap_ci95: Option<[f64; 2]>,
    /// Exact two-sided sign-flip permutation p-value ([`sign_flip_p_value`]); `None` when
    /// `n = 0` or `n > MAX_EXACT_CELLS`.
    pub p_value: Option<f64>,
}

/// Compares `a` and `b`, matched by position (`a[i]` and `b[i]` come from the same seed and
/// order). `seed` seeds the bootstrap.
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn compare_paired(a: &[f64], b: &[f64], seed: u64) -> Paired {
    assert_eq!(a.len(), b.len(), "paired samples must match cell for cell");
    let differences: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let n = differences.len();
    Paired {
        difference: describe(&differences),
        bootstrap_ci95: (n >= 2)
            .then(|| bootstrap_mean_ci(&differences, BOOTSTRAP_RESAMPLES, seed)),
        p_value: (1..=MAX_EXACT_CELLS)
            .contains(&n)
            .then(|| sign_flip_p_value(&differences)),
    }
}

/// Percentile bootstrap interval of the mean of `values`: `resamples` resamples with
/// replacement (a ChaCha8 stream seeded by `seed`, so the interval is reproducible), their
/// means' 2.5% and 97.5% quantiles (statrs' `quantile`), as `scipy.stats.bootstrap(...,
/// method="percentile")`.
///
/// # Panics
/// If `values` is empty.
pub fn bootstrap_mean_ci(values: &[f64], resamples: usize, seed: u64) -> [f64; 2] {
    assert!(!values.is_empty(), "cannot bootstrap an empty sample");
    let n = values.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples.max(1))
        .map(|_| {
            (0..n)
                .map(|_| values[rng.random_range(0..n as u32) as usize])
                .sum::<f64>()
                / n as f64
        })
        .collect();
    let mut data = Data::new(means);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    [data.quantile(tail), data.quantile(1.0 - tail)]
}

/// Exact two-sided sign-flip (paired permutation) p-value of the mean of `differences`: under
/// the null hypothesis each difference is as likely to have the other sign, so every one of
/// the 2^n sign patterns is equally likely. As `scipy.stats.permutation_test(...,
/// permutation_type="samples", n_resamples=inf, alternative="two-sided")`:
/// `min(1, 2 · min(P(T ≤ t), P(T ≥ t)))`, comparisons with scipy's relative tolerance
/// `100 ε |t|`.
///
/// # Panics
/// If `differences` is empty or longer than [`MAX_EXACT_CELLS`].
pub fn sign_flip_p_value(differences: &[f64]) -> f64 {
    let n = differences.len();
    assert!(
        (1..=MAX_EXACT_CELLS).contains(&n),
        "exact sign flips need 1..={MAX_EXACT_CELLS} cells, got {n}"
    );
    let mean = |signs: u32| -> f64 {
        differences
            .iter()
            .enumerate()
            .map(|(i, d)| if signs >> i & 1 == 1 { -d } else { *d })
            .sum::<f64>()
            / n as f64
    };
    let observed = mean(0);
    let gamma = (100.0 * f64::EPSILON * observed).abs();
    let (mut less, mut greater) = (0u64, 0u64);
    let patterns = 1u32 << n;
    for signs in 0..patterns {
        let t = mean(signs);
        less += u64::from(t <= observed + gamma);
        greater += u64::from(t >= observed - gamma);
    }
    let total = f64::from(patterns);
    (2.0 * (less as f64 / total).min(greater as f64 / total)).min(1.0)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn small_samples_have_no_spread() {
        let one = describe(&[3.0]);
        assert_eq!((one.n, one.mean, one.sd, one.ci95), (1, 3.0, None, None));
        let paired = compare_paired(&[1.0], &[0.5], 0);
        assert_eq!(paired.bootstrap_ci95, None);
        // One cell: the flipped sign is as extreme, p = 1.
        assert_eq!(paired.p_value, Some(1.0));
    }

    #[test]
    fn sign_flips_of_all_positive_differences() {
        // All 5 positive: only the observed pattern and none other reach its mean on the
        // upper side: P(T ≥ t) = 1/32, p = 2/32.
        let p = sign_flip_p_value(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((p - 2.0 / 32.0).abs() < 1e-15);
        // Zero mean: every pattern is within the tolerance on one side, p = 1.
        assert_eq!(sign_flip_p_value(&[1.0, -1.0]), 1.0);
    }

    #[test]
    fn bootstrap_is_seeded() {
        let d = [0.5, -1.0, 2.0, 3.5, 0.0, 1.5];
        assert_eq!(
            bootstrap_mean_ci(&d, 2000, 7),
            bootstrap_mean_ci(&d, 2000, 7)
        );
        assert_ne!(
            bootstrap_mean_ci(&d, 2000, 7),
            bootstrap_mean_ci(&d, 2000, 8)
        );
    }
}
