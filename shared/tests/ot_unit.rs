//! Hand-checkable cases and every error path of the OT layer.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::ot::{
    CostKind, CostMatrix, EmdAlgorithm, EmdConfig, OtError, PointCloud, SinkhornConfig,
    TransportEntry, cost_matrix, emd, emd_with, linear_assignment, sinkhorn_divergence,
    sinkhorn_log,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random_points(seed: u64, n: usize, d: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n * d)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect()
}

fn cloud(data: &[f32], dim: usize) -> PointCloud<'_> {
    PointCloud::new(data, dim).unwrap()
}

fn uniform(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}

fn marginals(plan: &[TransportEntry], n: usize, m: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut rows, mut cols) = (vec![0.0; n], vec![0.0; m]);
    for p in plan {
        rows[p.row] += p.mass;
        cols[p.col] += p.mass;
    }
    (rows, cols)
}

fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (k, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "entry {k}: {x} vs {y}");
    }
}

#[test]
fn point_cloud_accessors() {
    let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let c = cloud(&data, 3);
    assert_eq!((c.rows(), c.dim()), (2, 3));
    assert_eq!(c.row(1), &[4.0, 5.0, 6.0]);
}

#[test]
fn point_cloud_errors() {
    assert_eq!(PointCloud::new(&[1.0], 0), Err(OtError::ZeroDimension));
    assert_eq!(PointCloud::new(&[], 2), Err(OtError::EmptyCloud));
    assert_eq!(
        PointCloud::new(&[1.0; 5], 2),
        Err(OtError::RaggedData { len: 5, dim: 2 })
    );
    let err = PointCloud::new(&[0.0, 1.0, 2.0, f32::NAN], 2).unwrap_err();
    assert!(
        matches!(err, OtError::NonFiniteCoordinate { row: 1, col: 1, .. }),
        "{err:?}"
    );
    let err = PointCloud::new(&[f32::INFINITY, 1.0], 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "coordinate at row 0, column 0 is not finite (inf)"
    );
}

#[test]
fn cost_kind_names_round_trip() {
    for kind in CostKind::ALL {
        assert_eq!(kind.to_string().parse::<CostKind>().unwrap(), kind);
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{kind}\""));
        assert_eq!(serde_json::from_str::<CostKind>(&json).unwrap(), kind);
    }
    assert_eq!(CostKind::default(), CostKind::Cosine);
    let err = "l2".parse::<CostKind>().unwrap_err().to_string();
    assert!(err.contains("\"l2\"") && err.contains("cosine") && err.contains("sqeuclidean"));
}

#[test]
fn cost_matrix_hand_values() {
    let x = [0.0, 0.0, 1.0, 0.0];
    let y = [3.0, 4.0];
    let (x, y) = (cloud(&x, 2), cloud(&y, 2));
    let sq = cost_matrix(&x, &y, CostKind::SqEuclidean).unwrap();
    assert_eq!((sq.rows(), sq.cols()), (2, 1));
    assert_eq!(sq.as_slice(), &[25.0, 20.0]);
    let eu = cost_matrix(&x, &y, CostKind::Euclidean).unwrap();
    assert_eq!(eu.get(0, 0), 5.0);
    assert!((eu.get(1, 0) - 20f64.sqrt()).abs() < 1e-15);

    let u = [1.0, 0.0, 0.0, 2.0, -3.0, 0.0];
    let v = [2.0, 0.0];
    let cos = cost_matrix(&cloud(&u, 2), &cloud(&v, 2), CostKind::Cosine).unwrap();
    assert_eq!(cos.as_slice(), &[0.0, 1.0, 2.0]);
}

#[test]
fn self_cost_has_zero_diagonal() {
    let data = random_points(7, 30, 5);
    let x = cloud(&data, 5);
    for kind in CostKind::ALL {
        let m = cost_matrix(&x, &x, kind).unwrap();
        for i in 0..30 {
            assert!(
                m.get(i, i).abs() < 1e-12,
                "{kind} diagonal {i}: {}",
                m.get(i, i)
            );
        }
        assert!(m.as_slice().iter().all(|&c| c >= -1e-12));
    }
}

#[test]
fn cost_matrix_errors() {
    let (a, b) = ([1.0, 2.0], [1.0, 2.0, 3.0]);
    assert_eq!(
        cost_matrix(&cloud(&a, 2), &cloud(&b, 3), CostKind::Cosine),
        Err(OtError::DimensionMismatch { left: 2, right: 3 })
    );
    let zero = [1.0, 1.0, 0.0, 0.0];
    let ok = [1.0, 0.0];
    let err = cost_matrix(&cloud(&ok, 2), &cloud(&zero, 2), CostKind::Cosine).unwrap_err();
    assert_eq!(
        err,
        OtError::ZeroNorm {
            cloud: "target",
            row: 1
        }
    );
    assert!(err.to_string().contains("row 1 of the target cloud"));
    let err = cost_matrix(&cloud(&zero, 2), &cloud(&ok, 2), CostKind::Cosine).unwrap_err();
    assert_eq!(
        err,
        OtError::ZeroNorm {
            cloud: "source",
            row: 1
        }
    );
    // Zero vectors are fine for Euclidean costs.
    assert!(cost_matrix(&cloud(&zero, 2), &cloud(&ok, 2), CostKind::Euclidean).is_ok());
}

#[test]
fn cost_matrix_from_vec_errors() {
    assert_eq!(CostMatrix::from_vec(0, 2, vec![]), Err(OtError::EmptyCloud));
    assert_eq!(
        CostMatrix::from_vec(2, 2, vec![0.0; 3]),
        Err(OtError::RaggedData { len: 3, dim: 2 })
    );
    let err = CostMatrix::from_vec(2, 2, vec![0.0, 1.0, f64::NAN, 0.0]).unwrap_err();
    assert!(
        matches!(err, OtError::NonFiniteCost { row: 1, col: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn emd_shift_in_one_dimension() {
    // Moving {0, 1} onto {1, 2} by one unit each beats the crossing plan (cost 4 + 0).
    let (x, y) = ([0.0, 1.0], [1.0, 2.0]);
    let m = cost_matrix(&cloud(&x, 1), &cloud(&y, 1), CostKind::SqEuclidean).unwrap();
    let sol = emd(&uniform(2), &uniform(2), &m).unwrap();
    assert!((sol.cost - 1.0).abs() < 1e-15);
    assert_eq!(
        sol.plan,
        vec![
            TransportEntry {
                row: 0,
                col: 0,
                mass: 0.5
            },
            TransportEntry {
                row: 1,
                col: 1,
                mass: 0.5
            }
        ]
    );
}

#[test]
fn emd_non_uniform_rectangular() {
    // 1-D monotone coupling: 0.3 of x=0 to y=1 (cost 1), 0.4 of x=0 to y=11 (cost 11),
    // 0.3 of x=10 to y=11 (cost 1): W = 0.3 + 4.4 + 0.3 = 5.
    let (x, y) = ([0.0, 10.0], [1.0, 11.0]);
    let m = cost_matrix(&cloud(&x, 1), &cloud(&y, 1), CostKind::Euclidean).unwrap();
    let sol = emd(&[0.7, 0.3], &[0.3, 0.7], &m).unwrap();
    assert!((sol.cost - 5.0).abs() < 1e-12, "{}", sol.cost);
    let expected = [(0, 0, 0.3), (0, 1, 0.4), (1, 1, 0.3)];
    assert_eq!(sol.plan.len(), 3);
    for (p, &(row, col, mass)) in sol.plan.iter().zip(&expected) {
        assert_eq!((p.row, p.col), (row, col));
        assert!((p.mass - mass).abs() < 1e-15);
    }

    // One source split over two targets: W = 0.5·1 + 0.5·3.
    let (x, y) = ([0.0], [1.0, 3.0]);
    let m = cost_matrix(&cloud(&x, 1), &cloud(&y, 1), CostKind::Euclidean).unwrap();
    assert_eq!(emd(&[1.0], &uniform(2), &m).unwrap().cost, 2.0);
}

#[test]
fn emd_skips_zero_weights_and_rescales_mass() {
    let xs = random_points(11, 6, 4);
    let ys = random_points(12, 5, 4);
    let m = cost_matrix(&cloud(&xs, 4), &cloud(&ys, 4), CostKind::Cosine).unwrap();
    let a = [0.2, 0.0, 0.3, 0.1, 0.0, 0.4];
    let b = [0.0, 0.5, 0.25, 0.25, 0.0];
    let sol = emd(&a, &b, &m).unwrap();
    let (rows, cols) = marginals(&sol.plan, 6, 5);
    assert_close(&rows, &a, 1e-12);
    assert_close(&cols, &b, 1e-12);
    assert!(
        sol.plan
            .iter()
            .all(|p| p.mass > 0.0 && a[p.row] > 0.0 && b[p.col] > 0.0)
    );
    // Unnormalised but equal masses give the scaled cost.
    let scaled = emd(&a.map(|w| 3.0 * w), &b.map(|w| 3.0 * w), &m).unwrap();
    assert!((scaled.cost - 3.0 * sol.cost).abs() < 1e-12);
}

#[test]
fn emd_plan_marginals_and_self_distance() {
    let xs = random_points(1, 40, 16);
    let ys = random_points(2, 23, 16);
    let (x, y) = (cloud(&xs, 16), cloud(&ys, 16));
    let a: Vec<f64> = (1..=40).map(|k| f64::from(k) / 820.0).collect();
    let b = uniform(23);
    let sol = emd(&a, &b, &cost_matrix(&x, &y, CostKind::Cosine).unwrap()).unwrap();
    let (rows, cols) = marginals(&sol.plan, 40, 23);
    assert_close(&rows, &a, 1e-9);
    assert_close(&cols, &b, 1e-9);
    assert!(
        sol.plan.len() < 40 + 23,
        "a basic solution has at most n + m - 1 entries"
    );
    assert!(sol.iterations > 0);

    for kind in CostKind::ALL {
        let own = emd(&a, &a, &cost_matrix(&x, &x, kind).unwrap()).unwrap();
        assert!(own.cost.abs() < 1e-12, "{kind}: W(x, x) = {}", own.cost);
    }
}

#[test]
fn emd_weight_errors() {
    let m = CostMatrix::from_vec(2, 3, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let b = uniform(3);
    assert_eq!(
        emd(&[1.0], &b, &m).unwrap_err(),
        OtError::WeightLength {
            side: "source",
            len: 1,
            expected: 2
        }
    );
    assert_eq!(
        emd(&[0.5, 0.5], &[1.0], &m).unwrap_err(),
        OtError::WeightLength {
            side: "target",
            len: 1,
            expected: 3
        }
    );
    assert_eq!(
        emd(&[1.5, -0.5], &b, &m).unwrap_err(),
        OtError::NegativeWeight {
            side: "source",
            index: 1,
            value: -0.5
        }
    );
    let err = emd(&[0.5, 0.5], &[0.5, f64::NAN, 0.5], &m).unwrap_err();
    assert!(
        matches!(
            err,
            OtError::NonFiniteWeight {
                side: "target",
                index: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        emd(&[0.0, 0.0], &b, &m).unwrap_err(),
        OtError::ZeroMass { side: "source" }
    );
    let err = emd(&[0.5, 0.6], &b, &m).unwrap_err();
    let OtError::MassMismatch {
        source_mass,
        target_mass,
        difference,
    } = err
    else {
        panic!("{err:?}")
    };
    assert!((source_mass - 1.1).abs() < 1e-15 && (target_mass - 1.0).abs() < 1e-15);
    assert!((difference - 0.1).abs() < 1e-12);
    let msg = err.to_string();
    assert!(msg.contains("1.1") && msg.contains("differ by"), "{msg}");
    // Within the 1e-7 relative tolerance the masses count as equal.
    assert!(emd(&[0.5, 0.5 + 1e-9], &b, &m).is_ok());
}

#[test]
fn assignment_path_is_taken_only_for_uniform_square_problems() {
    let xs = random_points(7, 12, 3);
    let ys = random_points(8, 12, 3);
    let m = cost_matrix(&cloud(&xs, 3), &cloud(&ys, 3), CostKind::Euclidean).unwrap();
    let uniform_square = emd(&uniform(12), &uniform(12), &m).unwrap();
    assert_eq!(uniform_square.algorithm, EmdAlgorithm::Assignment);
    assert_eq!(uniform_square.plan.len(), 12);
    // Uniform with another total mass still is an assignment (b is rescaled to a's mass).
    let heavier = vec![0.5; 12];
    let scaled = emd(&heavier, &heavier, &m).unwrap();
    assert_eq!(scaled.algorithm, EmdAlgorithm::Assignment);
    assert!((scaled.cost - 6.0 * uniform_square.cost).abs() < 1e-12);
    let mut skewed = uniform(12);
    skewed[0] += 0.01;
    skewed[1] -= 0.01;
    let general = emd(&skewed, &uniform(12), &m).unwrap();
    assert_eq!(general.algorithm, EmdAlgorithm::NetworkSimplex);
    let off = EmdConfig {
        assignment: false,
        ..EmdConfig::default()
    };
    let simplex = emd_with(&uniform(12), &uniform(12), &m, &off).unwrap();
    assert_eq!(simplex.algorithm, EmdAlgorithm::NetworkSimplex);
    assert!((simplex.cost - uniform_square.cost).abs() < 1e-12);
    // A config saved before the option existed reads as `assignment = true`.
    let old: EmdConfig = serde_json::from_str(r#"{"max_iter": 100000}"#).unwrap();
    assert!(old.assignment);
}

#[test]
fn linear_assignment_needs_a_square_matrix() {
    let m = CostMatrix::from_vec(2, 3, vec![0.0; 6]).unwrap();
    let err = linear_assignment(&m).unwrap_err();
    assert_eq!(err, OtError::NotSquare { rows: 2, cols: 3 });
    assert!(err.to_string().contains("2 rows and 3 columns"), "{err}");
}

#[test]
fn emd_iteration_limit_is_an_error() {
    let xs = random_points(3, 20, 3);
    let ys = random_points(4, 20, 3);
    let m = cost_matrix(&cloud(&xs, 3), &cloud(&ys, 3), CostKind::SqEuclidean).unwrap();
    // Uniform square problems go to the assignment solver unless told otherwise.
    let simplex = EmdConfig {
        assignment: false,
        ..EmdConfig::default()
    };
    let needed = emd_with(&uniform(20), &uniform(20), &m, &simplex)
        .unwrap()
        .iterations;
    let err = emd_with(
        &uniform(20),
        &uniform(20),
        &m,
        &EmdConfig {
            max_iter: needed - 1,
            pivots_per_node: 0,
            ..simplex
        },
    );
    assert_eq!(
        err,
        Err(OtError::IterationLimit {
            solver: "network simplex",
            max_iter: needed - 1
        })
    );
    assert!(
        emd_with(
            &uniform(20),
            &uniform(20),
            &m,
            &EmdConfig {
                max_iter: needed,
                pivots_per_node: 0,
                ..simplex
            }
        )
        .is_ok()
    );
    // The limit grows with the problem: ⌈needed / 40⌉ pivots for each of the 40 nodes are
    // enough although `max_iter` alone is not; one pivot per node fewer is not.
    let scaled = EmdConfig {
        max_iter: needed - 1,
        pivots_per_node: needed.div_ceil(40),
        ..simplex
    };
    assert!(scaled.limit(20, 20) >= needed);
    assert!(emd_with(&uniform(20), &uniform(20), &m, &scaled).is_ok());
    let short = EmdConfig {
        max_iter: 1,
        pivots_per_node: (needed - 1) / 40,
        ..simplex
    };
    assert!(short.limit(20, 20) < needed);
    assert_eq!(
        emd_with(&uniform(20), &uniform(20), &m, &short),
        Err(OtError::IterationLimit {
            solver: "network simplex",
            max_iter: short.limit(20, 20)
        })
    );
}

#[test]
fn sinkhorn_plan_and_convergence() {
    let xs = random_points(5, 15, 4);
    let ys = random_points(6, 10, 4);
    let m = cost_matrix(&cloud(&xs, 4), &cloud(&ys, 4), CostKind::SqEuclidean).unwrap();
    let (a, b) = (uniform(15), uniform(10));
    let sol = sinkhorn_log(&a, &b, &m, &SinkhornConfig::new(1.0)).unwrap();
    assert!(sol.converged && sol.marginal_error < 1e-9);
    assert_eq!(sol.iterations % 10, 1, "stops right after a checked sweep");
    assert_eq!(sol.plan.len(), 150);
    let rows: Vec<f64> = sol.plan.chunks(10).map(|r| r.iter().sum()).collect();
    assert_close(&rows, &a, 1e-12);
    let cols: Vec<f64> = (0..10)
        .map(|j| (0..15).map(|i| sol.plan[i * 10 + j]).sum())
        .collect();
    assert_close(&cols, &b, 1e-9);
    let direct: f64 = sol.plan.iter().zip(m.as_slice()).map(|(p, c)| p * c).sum();
    assert_eq!(sol.cost, direct);
    let exact = emd(&a, &b, &m).unwrap().cost;
    assert!(sol.cost >= exact && sol.cost < exact + 1.0);

    let one = SinkhornConfig {
        epsilon: 1.0,
        max_iter: 1,
        tol: 1e-9,
    };
    let capped = sinkhorn_log(&a, &b, &m, &one).unwrap();
    assert!(!capped.converged && capped.iterations == 1 && capped.marginal_error > 1e-9);
}

#[test]
fn sinkhorn_errors() {
    let m = CostMatrix::from_vec(1, 2, vec![0.0, 1.0]).unwrap();
    for eps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = sinkhorn_log(&[1.0], &[0.5, 0.5], &m, &SinkhornConfig::new(eps)).unwrap_err();
        assert!(matches!(err, OtError::InvalidEpsilon(e) if e.to_bits() == eps.to_bits()));
    }
    assert_eq!(
        sinkhorn_log(&[1.0], &[0.5], &m, &SinkhornConfig::new(0.1)).unwrap_err(),
        OtError::WeightLength {
            side: "target",
            len: 1,
            expected: 2
        }
    );
    let x = [1.0, 0.0];
    let y = [0.0, 0.0];
    let err = sinkhorn_divergence(
        &cloud(&x, 2),
        &cloud(&y, 2),
        &[1.0],
        &[1.0],
        CostKind::Cosine,
        &SinkhornConfig::new(0.1),
    );
    assert_eq!(
        err,
        Err(OtError::ZeroNorm {
            cloud: "target",
            row: 0
        })
    );
}

#[test]
fn sinkhorn_divergence_of_a_cloud_with_itself_is_zero() {
    let xs = random_points(9, 12, 6);
    let ys = random_points(10, 9, 6);
    let (x, y) = (cloud(&xs, 6), cloud(&ys, 6));
    let cfg = SinkhornConfig::new(0.1);
    let a = uniform(12);
    assert_eq!(
        sinkhorn_divergence(&x, &x, &a, &a, CostKind::Cosine, &cfg).unwrap(),
        0.0
    );
    let d = sinkhorn_divergence(&x, &y, &a, &uniform(9), CostKind::Cosine, &cfg).unwrap();
    assert!(d > 0.0);
}

/// Near-ties between plans: a cluster of points 1e-3 apart around one direction, so the cosine
/// costs (about 1e-6) differ between plans by less than float32 products resolve. Where the
/// float32 search picks another plan than the float64 solve, that plan's float64 cost must
/// lie above the optimum by at most twice the largest cost error (`CostPrecision::Float32`).
#[test]
fn float32_search_on_near_ties_stays_within_twice_the_cost_error() {
    use inscl::ot::{CostPrecision, PreparedCloud, prepared_cost_matrix, prepared_plan_cost};
    let (n, d) = (8, 64);
    let mut flips = 0;
    for seed in 0..40 {
        let centre = random_points(1000 + seed, 1, d);
        let cluster = |s: u64| -> Vec<f32> {
            let noise = random_points(s, n, d);
            noise
                .chunks_exact(d)
                .flat_map(|row| row.iter().zip(&centre).map(|(e, c)| c + 1e-3 * e))
                .collect()
        };
        let (xs, ys) = (cluster(2 * seed), cluster(2 * seed + 1));
        let prepare = |p: &[f32], precision| {
            PreparedCloud::with_precision(&cloud(p, d), CostKind::Cosine, precision).unwrap()
        };
        let (x64, y64) = (
            prepare(&xs, CostPrecision::Float64),
            prepare(&ys, CostPrecision::Float64),
        );
        let (x32, y32) = (
            prepare(&xs, CostPrecision::Float32),
            prepare(&ys, CostPrecision::Float32),
        );
        let (c64, c32) = (
            prepared_cost_matrix(&x64, &y64).unwrap(),
            prepared_cost_matrix(&x32, &y32).unwrap(),
        );
        let largest_error = c64
            .as_slice()
            .iter()
            .zip(c32.as_slice())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let w = uniform(n);
        let (exact, search) = (emd(&w, &w, &c64).unwrap(), emd(&w, &w, &c32).unwrap());
        let found = prepared_plan_cost(&x32, &y32, &search.plan);
        let excess = found - exact.cost;
        assert!(
            excess >= -1e-15 && excess <= 2.0 * largest_error,
            "seed {seed}: float64 cost of the float32 plan {found} vs optimum {} (largest error {largest_error:e})",
            exact.cost
        );
        if search.plan != exact.plan {
            flips += 1;
        }
    }
    assert!(
        flips > 0,
        "no near-tie made the float32 search pick another plan"
    );
}
