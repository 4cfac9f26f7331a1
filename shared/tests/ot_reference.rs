//! The OT layer against POT 0.9.7 (fixture from `tools/reference/ot_reference.py`).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::BTreeMap;

use inscl::ot::{
    CostKind, CostMatrix, CostPrecision, EmdAlgorithm, EmdConfig, PointCloud, PreparedCloud,
    SinkhornConfig, cost_matrix, emd, emd_with, linear_assignment, prepared_cost_matrix,
    prepared_plan_cost, sinkhorn_divergence, sinkhorn_log,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    sinkhorn_max_iter: usize,
    sinkhorn_tol: f64,
    cost_matrices: CostCase,
    cases: Vec<Case>,
    assignments: Vec<AssignmentCase>,
}

#[derive(Deserialize)]
struct AssignmentCase {
    name: String,
    dim: usize,
    metric: CostKind,
    x: Vec<f32>,
    y: Vec<f32>,
    /// `scipy.optimize.linear_sum_assignment` on `ot.dist`.
    col_of_row: Vec<usize>,
    cost: f64,
    /// `ot.emd2` with uniform weights.
    emd2: f64,
}

#[derive(Deserialize)]
struct CostCase {
    dim: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    costs: BTreeMap<CostKind, Vec<f64>>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    dim: usize,
    metric: CostKind,
    x: Vec<f32>,
    y: Vec<f32>,
    a: Vec<f64>,
    b: Vec<f64>,
    emd2: f64,
    sinkhorn: Vec<SinkhornValue>,
    divergence: DivergenceValue,
}

#[derive(Deserialize)]
struct SinkhornValue {
    epsilon: f64,
    cost: f64,
}

#[derive(Deserialize)]
struct DivergenceValue {
    epsilon: f64,
    value: f64,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("../fixtures/ot_reference.json")).expect("valid fixture")
}

/// The cost matrix of a fixture case's two clouds (`dim`-dimensional, row-major).
fn pot_costs(x: &[f32], y: &[f32], dim: usize, metric: CostKind) -> CostMatrix {
    let x = PointCloud::new(x, dim).unwrap();
    let y = PointCloud::new(y, dim).unwrap();
    cost_matrix(&x, &y, metric).unwrap()
}

fn assert_rel(actual: f64, expected: f64, rtol: f64, what: &str) {
    let err = (actual - expected).abs() / expected.abs().max(1e-12);
    assert!(
        err <= rtol,
        "{what}: got {actual}, POT {expected}, relative error {err:e} > {rtol:e}"
    );
}

impl Fixture {
    fn sinkhorn_config(&self, epsilon: f64) -> SinkhornConfig {
        SinkhornConfig {
            epsilon,
            max_iter: self.sinkhorn_max_iter,
            tol: self.sinkhorn_tol,
        }
    }
}

#[test]
fn cost_matrices_match_pot_dist() {
    let f = fixture();
    let c = &f.cost_matrices;
    let x = PointCloud::new(&c.x, c.dim).unwrap();
    let y = PointCloud::new(&c.y, c.dim).unwrap();
    assert_eq!(c.costs.len(), 3, "fixture covers every cost kind");
    for (&kind, expected) in &c.costs {
        let m = cost_matrix(&x, &y, kind).unwrap();
        assert_eq!((m.rows(), m.cols()), (x.rows(), y.rows()));
        for (k, (&got, &want)) in m.as_slice().iter().zip(expected).enumerate() {
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1e-3),
                "{kind} entry {k}: got {got}, POT {want}"
            );
        }
    }
}

#[test]
fn emd_matches_pot_emd2() {
    for case in fixture().cases {
        let m = pot_costs(&case.x, &case.y, case.dim, case.metric);
        let sol = emd(&case.a, &case.b, &m).unwrap();
        assert_rel(sol.cost, case.emd2, 1e-6, &case.name);
        for (side, weights, index) in [("row", &case.a, 0), ("col", &case.b, 1)] {
            let mut marginal = vec![0.0; weights.len()];
            for p in &sol.plan {
                marginal[if index == 0 { p.row } else { p.col }] += p.mass;
            }
            for (k, (got, want)) in marginal.iter().zip(weights.iter()).enumerate() {
                assert!(
                    (got - want).abs() <= 1e-9,
                    "{}: {side} {k} marginal {got} vs {want}",
                    case.name
                );
            }
        }
    }
}

#[test]
fn sinkhorn_log_matches_pot_sinkhorn2() {
    let f = fixture();
    for case in &f.cases {
        let m = pot_costs(&case.x, &case.y, case.dim, case.metric);
        for s in &case.sinkhorn {
            let sol = sinkhorn_log(&case.a, &case.b, &m, &f.sinkhorn_config(s.epsilon)).unwrap();
            assert_rel(
                sol.cost,
                s.cost,
                1e-4,
                &format!("{} eps={}", case.name, s.epsilon),
            );
            // The entropic cost can only exceed the exact optimum when the plan is feasible.
            if sol.converged {
                assert!(
                    sol.cost >= case.emd2 - 1e-6,
                    "{}: sinkhorn below emd",
                    case.name
                );
            }
        }
    }
}

#[test]
fn sinkhorn_divergence_matches_pot() {
    let f = fixture();
    for case in &f.cases {
        let x = PointCloud::new(&case.x, case.dim).unwrap();
        let y = PointCloud::new(&case.y, case.dim).unwrap();
        let cfg = f.sinkhorn_config(case.divergence.epsilon);
        let got = sinkhorn_divergence(&x, &y, &case.a, &case.b, case.metric, &cfg).unwrap();
        assert_rel(got, case.divergence.value, 1e-4, &case.name);
    }
}

#[test]
fn linear_assignment_matches_scipy() {
    for case in fixture().assignments {
        let m = pot_costs(&case.x, &case.y, case.dim, case.metric);
        let solved = linear_assignment(&m).unwrap();
        assert_eq!(solved.col_of_row, case.col_of_row, "{}", case.name);
        assert_rel(solved.cost, case.cost, 1e-12, &case.name);
    }
}

#[test]
fn emd_of_uniform_square_clouds_is_the_assignment_and_matches_pot() {
    for case in fixture().assignments {
        let m = pot_costs(&case.x, &case.y, case.dim, case.metric);
        let n = case.col_of_row.len();
        let w = vec![1.0 / n as f64; n];
        let fast = emd(&w, &w, &m).unwrap();
        assert_eq!(fast.algorithm, EmdAlgorithm::Assignment, "{}", case.name);
        assert_rel(fast.cost, case.emd2, 1e-12, &case.name);
        let cols: Vec<usize> = fast.plan.iter().map(|p| p.col).collect();
        assert_eq!(
            cols, case.col_of_row,
            "{}: one entry per row, scipy's",
            case.name
        );
        assert!(fast.plan.iter().all(|p| p.mass == w[0]));
        // The network simplex (POT's algorithm) reaches the same optimum.
        let simplex = EmdConfig {
            assignment: false,
            ..EmdConfig::default()
        };
        let slow = emd_with(&w, &w, &m, &simplex).unwrap();
        assert_eq!(slow.algorithm, EmdAlgorithm::NetworkSimplex);
        assert_rel(slow.cost, case.emd2, 1e-12, &case.name);
    }
}

/// The plan of `emd` on the cost matrix of `CostPrecision::Float32` products and that plan's
/// float64 cost ([`prepared_plan_cost`]), for a fixture case's two clouds.
fn float32_search(
    x: &[f32],
    y: &[f32],
    dim: usize,
    metric: CostKind,
    a: &[f64],
    b: &[f64],
) -> (inscl::ot::EmdSolution, f64) {
    let prepare = |p| {
        let cloud = PointCloud::new(p, dim).unwrap();
        PreparedCloud::with_precision(&cloud, metric, CostPrecision::Float32).unwrap()
    };
    let (x, y) = (prepare(x), prepare(y));
    let expected = match metric {
        CostKind::Cosine => CostPrecision::Float32,
        _ => CostPrecision::Float64,
    };
    assert_eq!(x.precision(), expected, "float32 products for cosine only");
    let solution = emd(a, b, &prepared_cost_matrix(&x, &y).unwrap()).unwrap();
    let cost = prepared_plan_cost(&x, &y, &solution.plan);
    (solution, cost)
}

/// Float32 products find POT's optimum: the float64 cost of the plan they find is `ot.emd2`
/// to 1e-12, the float32 search's own cost is within 1e-6 of it, and
/// on the assignment cases the plan is scipy's permutation.
#[test]
fn float32_products_find_the_plan_of_pot_and_scipy() {
    let f = fixture();
    for case in &f.cases {
        let (solution, cost) =
            float32_search(&case.x, &case.y, case.dim, case.metric, &case.a, &case.b);
        assert_rel(cost, case.emd2, 1e-12, &case.name);
        assert!(
            (solution.cost - case.emd2).abs() <= 1e-6,
            "{}: float32 search cost {}",
            case.name,
            solution.cost
        );
    }
    for case in &f.assignments {
        let n = case.col_of_row.len();
        let w = vec![1.0 / n as f64; n];
        let (solution, cost) = float32_search(&case.x, &case.y, case.dim, case.metric, &w, &w);
        let cols: Vec<usize> = solution.plan.iter().map(|p| p.col).collect();
        assert_eq!(cols, case.col_of_row, "{}: scipy's permutation", case.name);
        assert_rel(cost, case.emd2, 1e-12, &case.name);
    }
}
