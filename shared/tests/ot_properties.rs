#![cfg(not(target_arch = "wasm32"))]
//! Property tests of the OT layer (native only: proptest).

use inscl::ot::{
    CostKind, CostMatrix, EmdAlgorithm, EmdConfig, PointCloud, SinkhornConfig, cost_matrix, emd,
    emd_with, linear_assignment, sinkhorn_log,
};
use proptest::prelude::*;

/// A cloud of `1..=max_n` points in `dim` dimensions with coordinates in [-1, 1].
fn points(max_n: usize, dim: usize) -> impl Strategy<Value = Vec<f32>> {
    (1..=max_n).prop_flat_map(move |n| prop::collection::vec(-1.0f32..1.0, n * dim))
}

/// Normalised weights for `n` points; about a quarter may be zero, never all of them.
fn weights(n: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(prop_oneof![1 => Just(0.0), 3 => 0.05f64..1.0], n).prop_map(|mut w| {
        if w.iter().all(|&v| v == 0.0) {
            w[0] = 1.0;
        }
        let total: f64 = w.iter().sum();
        w.iter().map(|v| v / total).collect()
    })
}

fn kind() -> impl Strategy<Value = CostKind> {
    prop::sample::select(CostKind::ALL.to_vec())
}

/// Two clouds of dimension 1..=6 with weights, and a cost kind.
fn problem() -> impl Strategy<Value = (usize, Vec<f32>, Vec<f32>, Vec<f64>, Vec<f64>, CostKind)> {
    (1usize..=6)
        .prop_flat_map(|d| (Just(d), points(14, d), points(14, d), kind()))
        .prop_flat_map(|(d, x, y, k)| {
            let (n, m) = (x.len() / d, y.len() / d);
            (Just(d), Just(x), Just(y), weights(n), weights(m), Just(k))
        })
        // Cosine needs non-zero vectors; random floats are never exactly zero in practice,
        // but keep the strategy total.
        .prop_filter("non-zero vectors", |(d, x, y, ..)| {
            x.chunks(*d)
                .chain(y.chunks(*d))
                .all(|r| r.iter().any(|&v| v != 0.0))
        })
}

/// Whether `col_of_row` holds every column `0..len` exactly once.
fn is_permutation(col_of_row: &[usize]) -> bool {
    let mut cols = col_of_row.to_vec();
    cols.sort_unstable();
    cols.into_iter().eq(0..col_of_row.len())
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for k in 0..=p.len() {
            let mut q = p.clone();
            q.insert(k, n - 1);
            out.push(q);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn plan_marginals_match_weights((d, x, y, a, b, k) in problem()) {
        let (x, y) = (PointCloud::new(&x, d).unwrap(), PointCloud::new(&y, d).unwrap());
        let m = cost_matrix(&x, &y, k).unwrap();
        let sol = emd(&a, &b, &m).unwrap();
        let (mut rows, mut cols) = (vec![0.0; a.len()], vec![0.0; b.len()]);
        for p in &sol.plan {
            prop_assert!(p.mass > 0.0);
            rows[p.row] += p.mass;
            cols[p.col] += p.mass;
        }
        for (got, want) in rows.iter().zip(&a).chain(cols.iter().zip(&b)) {
            prop_assert!((got - want).abs() <= 1e-9, "{} vs {}", got, want);
        }
        let direct: f64 = sol.plan.iter().map(|p| p.mass * m.get(p.row, p.col)).sum();
        prop_assert!((sol.cost - direct).abs() <= 1e-12 * direct.abs().max(1.0));
    }

    #[test]
    fn self_distance_is_zero((d, x, _y, a, _b, k) in problem()) {
        let x = PointCloud::new(&x, d).unwrap();
        let w = emd(&a, &a, &cost_matrix(&x, &x, k).unwrap()).unwrap().cost;
        prop_assert!(w.abs() < 1e-12, "W(x, x) = {}", w);
    }

    #[test]
    fn distance_is_symmetric((d, x, y, a, b, k) in problem()) {
        let (x, y) = (PointCloud::new(&x, d).unwrap(), PointCloud::new(&y, d).unwrap());
        let xy = emd(&a, &b, &cost_matrix(&x, &y, k).unwrap()).unwrap().cost;
        let yx = emd(&b, &a, &cost_matrix(&y, &x, k).unwrap()).unwrap().cost;
        prop_assert!((xy - yx).abs() <= 1e-10 * xy.abs().max(1e-3), "{} vs {}", xy, yx);
    }

    #[test]
    fn exact_is_below_converged_sinkhorn(
        (d, x, y, a, b, k) in problem(),
        epsilon in 0.05f64..2.0,
    ) {
        let (x, y) = (PointCloud::new(&x, d).unwrap(), PointCloud::new(&y, d).unwrap());
        let m = cost_matrix(&x, &y, k).unwrap();
        let exact = emd(&a, &b, &m).unwrap().cost;
        let sk = sinkhorn_log(&a, &b, &m, &SinkhornConfig::new(epsilon)).unwrap();
        prop_assume!(sk.converged);
        // The entropic plan P is feasible only up to its column marginals b' = Pᵀ1 (rows are
        // exact): moving the ‖b − b'‖₁ ≤ √m ‖b − b'‖₂ of misplaced mass onto b changes its
        // cost by at most max|M| per unit, and the result is feasible, so it is ≥ exact. With
        // costs of only 0 and 2 (cosine in one dimension) this slack is all of the gap.
        let max_cost = m.as_slice().iter().fold(0.0f64, |acc, &c| acc.max(c.abs()));
        let slack = max_cost * (b.len() as f64).sqrt() * sk.marginal_error + 1e-12;
        prop_assert!(
            exact <= sk.cost + slack,
            "exact {} > sinkhorn {} + slack {}", exact, sk.cost, slack
        );
    }

    /// With n = m uniform weights an optimal plan is a permutation (Birkhoff–von Neumann),
    /// so brute force over permutations gives the exact value.
    #[test]
    fn matches_brute_force_assignment(
        (d, n) in (1usize..=4, 1usize..=6),
        seed_points in prop::collection::vec(-1.0f32..1.0, 2 * 6 * 4),
        k in kind(),
    ) {
        let x = PointCloud::new(&seed_points[..n * d], d).unwrap();
        let y = PointCloud::new(&seed_points[24..24 + n * d], d).unwrap();
        let m = cost_matrix(&x, &y, k);
        prop_assume!(m.is_ok(), "zero vector under the cosine cost");
        let m = m.unwrap();
        let w = vec![1.0 / n as f64; n];
        let best = permutations(n)
            .iter()
            .map(|p| p.iter().enumerate().map(|(i, &j)| m.get(i, j)).sum::<f64>() / n as f64)
            .fold(f64::INFINITY, f64::min);
        let fast = emd(&w, &w, &m).unwrap();
        prop_assert_eq!(fast.algorithm, EmdAlgorithm::Assignment);
        let simplex = EmdConfig { assignment: false, ..EmdConfig::default() };
        let slow = emd_with(&w, &w, &m, &simplex).unwrap();
        for got in [fast.cost, slow.cost] {
            prop_assert!((got - best).abs() <= 1e-12 * best.abs().max(1.0), "{} vs {}", got, best);
        }
    }

    /// Small integer costs make many optimal assignments and degenerate reductions (equal
    /// column minima, equal first and second cheapest columns): the solver must still return
    /// a permutation of minimum cost.
    #[test]
    fn assignment_with_ties_matches_brute_force(
        n in 1usize..=7,
        entries in prop::collection::vec(0u8..4, 49),
    ) {
        let data: Vec<f64> = entries[..n * n].iter().map(|&v| f64::from(v)).collect();
        let m = CostMatrix::from_vec(n, n, data).unwrap();
        let best = permutations(n)
            .iter()
            .map(|p| p.iter().enumerate().map(|(i, &j)| m.get(i, j)).sum::<f64>())
            .fold(f64::INFINITY, f64::min);
        let solved = linear_assignment(&m).unwrap();
        prop_assert!(is_permutation(&solved.col_of_row), "{:?}", solved.col_of_row);
        let total: f64 = solved.col_of_row.iter().enumerate().map(|(i, &j)| m.get(i, j)).sum();
        prop_assert_eq!(total, best);
        prop_assert_eq!(solved.cost, best);
    }

    /// Beyond brute force: tie-heavy integer costs at sizes that fill several blocks of the
    /// solver's block-tested row scans (and leave a partial last block), against the
    /// network simplex under uniform weights, an independent algorithm.
    #[test]
    fn assignment_with_ties_matches_network_simplex(
        (n, entries) in (9usize..=40)
            .prop_flat_map(|n| (Just(n), prop::collection::vec(0u8..4, n * n))),
    ) {
        let data: Vec<f64> = entries.iter().map(|&v| f64::from(v)).collect();
        let m = CostMatrix::from_vec(n, n, data).unwrap();
        let solved = linear_assignment(&m).unwrap();
        prop_assert!(is_permutation(&solved.col_of_row), "{:?}", solved.col_of_row);
        let w = vec![1.0 / n as f64; n];
        let simplex = EmdConfig { assignment: false, ..EmdConfig::default() };
        let reference = emd_with(&w, &w, &m, &simplex).unwrap().cost * n as f64;
        prop_assert!((solved.cost - reference).abs() <= 1e-9, "{} vs {}", solved.cost, reference);
    }
}
