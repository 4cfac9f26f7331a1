//! Task similarity (InsCL §3.1) on top of the OT layer.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use inscl::ot::{
    CostKind, CostPrecision, OtError, SinkhornConfig, cost_matrix, emd, sinkhorn_divergence,
};
use inscl::similarity::{
    InstructionCloud, PreparedTasks, SimilarityConfig, Solver, WeightScheme, distance_matrix,
    distance_row, pair_distances, prepared_pair_distances, wasserstein,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn task(seed: u64, n: usize, dim: usize) -> InstructionCloud {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let points = (0..n * dim)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let counts = (0..n).map(|_| 1 + rng.random::<u32>() % 5).collect();
    InstructionCloud::new(dim, points, counts).unwrap()
}

#[test]
fn weights_follow_the_scheme() {
    let t = InstructionCloud::new(2, vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], vec![1, 3, 4]).unwrap();
    assert_eq!((t.len(), t.dim(), t.is_empty()), (3, 2, false));
    assert_eq!(t.weights(WeightScheme::Real), vec![0.125, 0.375, 0.5]);
    assert_eq!(t.weights(WeightScheme::Uniform), vec![1.0 / 3.0; 3]);
    assert_eq!(t.points().row(2), &[1.0, 1.0]);
}

#[test]
fn instruction_cloud_errors() {
    assert_eq!(
        InstructionCloud::new(2, vec![1.0; 4], vec![1]),
        Err(OtError::CountLength { counts: 1, rows: 2 })
    );
    assert_eq!(
        InstructionCloud::new(2, vec![1.0; 4], vec![1, 0]),
        Err(OtError::ZeroCount { row: 1 })
    );
    assert_eq!(
        InstructionCloud::new(2, vec![], vec![]),
        Err(OtError::EmptyCloud)
    );
    assert_eq!(
        InstructionCloud::new(2, vec![1.0; 3], vec![1]),
        Err(OtError::RaggedData { len: 3, dim: 2 })
    );
}

#[test]
fn instruction_cloud_serde_validates() {
    let t = InstructionCloud::new(2, vec![1.0, 0.0, 0.5, 0.5], vec![2, 1]).unwrap();
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(
        json,
        r#"{"dim":2,"points":[1.0,0.0,0.5,0.5],"counts":[2,1]}"#
    );
    assert_eq!(serde_json::from_str::<InstructionCloud>(&json).unwrap(), t);
    let err =
        serde_json::from_str::<InstructionCloud>(r#"{"dim":2,"points":[1.0,0.0],"counts":[0]}"#)
            .unwrap_err();
    assert!(err.to_string().contains("count at row 0 is zero"), "{err}");
}

#[test]
fn config_serde_and_names() {
    let cfg = SimilarityConfig::default();
    assert_eq!(
        serde_json::to_string(&cfg).unwrap(),
        r#"{"cost":"cosine","weights":"real","solver":{"kind":"exact"}}"#
    );
    let sk: SimilarityConfig = serde_json::from_str(
        r#"{"cost":"sqeuclidean","weights":"uniform","solver":{"kind":"sinkhorn","epsilon":0.05}}"#,
    )
    .unwrap();
    assert_eq!(sk.cost, CostKind::SqEuclidean);
    assert_eq!(sk.weights, WeightScheme::Uniform);
    assert_eq!(sk.solver, Solver::Sinkhorn { epsilon: 0.05 });
    for w in [WeightScheme::Real, WeightScheme::Uniform] {
        assert_eq!(w.to_string().parse::<WeightScheme>().unwrap(), w);
    }
    let err = "frequency".parse::<WeightScheme>().unwrap_err().to_string();
    assert!(err.contains("\"frequency\"") && err.contains("real") && err.contains("uniform"));
    let single: SimilarityConfig = serde_json::from_str(
        r#"{"cost":"cosine","weights":"real","solver":{"kind":"exact"},"precision":"float32"}"#,
    )
    .unwrap();
    assert_eq!(single.precision, CostPrecision::Float32);
    assert!(
        serde_json::to_string(&single)
            .unwrap()
            .ends_with(r#""precision":"float32"}"#)
    );
    for p in CostPrecision::ALL {
        assert_eq!(p.to_string().parse::<CostPrecision>().unwrap(), p);
    }
    let err = "f16".parse::<CostPrecision>().unwrap_err().to_string();
    assert!(err.contains("\"f16\"") && err.contains("float64") && err.contains("float32"));
}

#[test]
fn real_weights_equal_duplicated_instructions() {
    // Counts are multiplicities: a task with instruction 0 used twice is the same
    // distribution as listing it twice with uniform weights.
    let other = task(3, 7, 5);
    let other = InstructionCloud::new(5, other.points().as_slice().to_vec(), vec![1; 7]).unwrap();
    let base = task(4, 3, 5);
    let p = base.points();
    let dup_points: Vec<f32> = [0, 0, 1, 2]
        .iter()
        .flat_map(|&r| p.row(r).to_vec())
        .collect();
    let counted = InstructionCloud::new(5, p.as_slice().to_vec(), vec![2, 1, 1]).unwrap();
    let duplicated = InstructionCloud::new(5, dup_points, vec![1; 4]).unwrap();
    let real = SimilarityConfig::default();
    let uniform = SimilarityConfig {
        weights: WeightScheme::Uniform,
        ..real
    };
    let w_counted = wasserstein(&counted, &other, &real).unwrap();
    let w_dup = wasserstein(&duplicated, &other, &uniform).unwrap();
    assert!((w_counted - w_dup).abs() < 1e-12, "{w_counted} vs {w_dup}");
    assert!(w_counted > 0.0);
}

#[test]
fn solvers_dispatch_to_the_ot_layer() {
    let (a, b) = (task(1, 9, 4), task(2, 6, 4));
    let exact = SimilarityConfig {
        cost: CostKind::Euclidean,
        ..SimilarityConfig::default()
    };
    let m = cost_matrix(&a.points(), &b.points(), CostKind::Euclidean).unwrap();
    let (wa, wb) = (a.weights(WeightScheme::Real), b.weights(WeightScheme::Real));
    assert_eq!(
        wasserstein(&a, &b, &exact).unwrap(),
        emd(&wa, &wb, &m).unwrap().cost
    );

    let sk = SimilarityConfig {
        solver: Solver::Sinkhorn { epsilon: 0.5 },
        ..exact
    };
    let expected = sinkhorn_divergence(
        &a.points(),
        &b.points(),
        &wa,
        &wb,
        CostKind::Euclidean,
        &SinkhornConfig::new(0.5),
    )
    .unwrap();
    assert_eq!(wasserstein(&a, &b, &sk).unwrap(), expected);
    let bad = SimilarityConfig {
        solver: Solver::Sinkhorn { epsilon: 0.0 },
        ..exact
    };
    assert_eq!(wasserstein(&a, &b, &bad), Err(OtError::InvalidEpsilon(0.0)));
}

#[test]
fn distance_matrix_is_symmetric_with_zero_diagonal() {
    let tasks: Vec<_> = (0..5)
        .map(|k| task(10 + k, 4 + k as usize * 3, 8))
        .collect();
    let cfg = SimilarityConfig::default();
    let d = distance_matrix(&tasks, &cfg).unwrap();
    assert_eq!(d.len(), 5);
    for i in 0..5 {
        assert_eq!(d[i][i], 0.0);
        for j in 0..5 {
            assert_eq!(d[i][j], d[j][i]);
            if i < j {
                assert_eq!(d[i][j], wasserstein(&tasks[i], &tasks[j], &cfg).unwrap());
                assert!(d[i][j] > 0.0);
            }
        }
    }
    for (current, full_row) in d.iter().enumerate() {
        let row = distance_row(&tasks, current, &cfg).unwrap();
        assert_eq!(row.len(), current);
        for (j, w) in row.iter().enumerate() {
            assert!((w - full_row[j]).abs() < 1e-12, "row {current}, task {j}");
        }
    }
    assert_eq!(
        distance_row(&tasks, 5, &cfg),
        Err(OtError::TaskIndex { index: 5, len: 5 })
    );
    assert!(distance_matrix(&[], &cfg).unwrap().is_empty());
}

/// `distance_matrix` prepares each task's coordinates once for all of its pairs: the values
/// must be `wasserstein`'s, bit for bit, under every cost and weighting, and a zero embedding
/// must be reported as `wasserstein` reports it.
#[test]
fn distance_matrix_gives_the_values_and_errors_of_wasserstein() {
    let tasks: Vec<_> = (0..4).map(|k| task(20 + k, 5 + k as usize, 6)).collect();
    for cost in [CostKind::Cosine, CostKind::SqEuclidean, CostKind::Euclidean] {
        for weights in [WeightScheme::Real, WeightScheme::Uniform] {
            let cfg = SimilarityConfig {
                cost,
                weights,
                solver: Solver::Exact,
                precision: CostPrecision::Float64,
            };
            let d = distance_matrix(&tasks, &cfg).unwrap();
            for i in 0..4 {
                for j in i + 1..4 {
                    let w = wasserstein(&tasks[i], &tasks[j], &cfg).unwrap();
                    assert_eq!(
                        d[i][j].to_bits(),
                        w.to_bits(),
                        "{cost} {weights:?} ({i}, {j})"
                    );
                }
            }
        }
    }
    let zero = InstructionCloud::new(2, vec![1.0, 0.0, 0.0, 0.0], vec![1, 1]).unwrap();
    let other = InstructionCloud::new(2, vec![0.5, 0.5], vec![1]).unwrap();
    let cfg = SimilarityConfig::default();
    for (pair, cloud) in [([&other, &zero], "target"), ([&zero, &other], "source")] {
        let tasks = pair.map(Clone::clone);
        let expected = Err(OtError::ZeroNorm { cloud, row: 1 });
        assert_eq!(wasserstein(&tasks[0], &tasks[1], &cfg), expected);
        assert_eq!(
            distance_matrix(&tasks, &cfg).map(|_| ()),
            expected.map(|_: f64| ())
        );
    }
}

/// Tasks as clusters around their own centre (as instruction embeddings of one task are), so
/// the cross costs of two tasks are close together and the plans have near-ties.
fn clustered_tasks(seed: u64, tasks: usize, n: usize, dim: usize) -> Vec<InstructionCloud> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut unit = move || rng.random::<f32>() * 2.0 - 1.0;
    (0..tasks)
        .map(|_| {
            let centre: Vec<f32> = (0..dim).map(|_| unit()).collect();
            let points = (0..n)
                .flat_map(|_| centre.iter().map(|c| c + 0.8 * unit()).collect::<Vec<_>>())
                .collect();
            let counts = (0..n).map(|k| 1 + (k as u32 * 7) % 20).collect();
            InstructionCloud::new(dim, points, counts).unwrap()
        })
        .collect()
}

/// `CostPrecision::Float32` gives the float64 distances: under the cosine cost the plans found
/// from float32 products have the float64 optimum's cost to 1e-12 (the same plans), under the
/// Euclidean costs (which keep float64 products) the same bits.
#[test]
fn float32_precision_gives_the_float64_distances() {
    let tasks = clustered_tasks(5, 6, 40, 96);
    for cost in CostKind::ALL {
        for weights in [WeightScheme::Real, WeightScheme::Uniform] {
            let double = SimilarityConfig {
                cost,
                weights,
                ..SimilarityConfig::default()
            };
            let single = SimilarityConfig {
                precision: CostPrecision::Float32,
                ..double
            };
            let (d64, d32) = (
                distance_matrix(&tasks, &double).unwrap(),
                distance_matrix(&tasks, &single).unwrap(),
            );
            for (i, (r64, r32)) in d64.iter().zip(&d32).enumerate() {
                for (j, (w64, w32)) in r64.iter().zip(r32).enumerate() {
                    if cost == CostKind::Cosine {
                        assert!(
                            (w64 - w32).abs() <= 1e-12,
                            "{cost} {weights} ({i}, {j}): {w64} vs {w32}"
                        );
                    } else {
                        assert_eq!(w64.to_bits(), w32.to_bits(), "{cost} {weights} ({i}, {j})");
                    }
                }
            }
            let row = distance_row(&tasks, 5, &single).unwrap();
            assert_eq!(row, d32[5][..5], "{cost} {weights}: distance_row");
        }
    }
}

/// Pairs solved in batches (as the studio's workers do), with the tasks prepared once or per
/// call, give `wasserstein`'s values (and so `distance_matrix`'s) bit for bit, under both
/// solvers and precisions.
#[test]
fn pair_batches_give_the_distance_matrix() {
    let tasks = clustered_tasks(9, 5, 12, 16);
    let pairs = [(3, 4), (0, 2), (1, 3), (0, 4)];
    for solver in [Solver::Exact, Solver::Sinkhorn { epsilon: 0.1 }] {
        for precision in CostPrecision::ALL {
            let cfg = SimilarityConfig {
                solver,
                precision,
                ..SimilarityConfig::default()
            };
            let expected: Vec<f64> = pairs
                .iter()
                .map(|&(i, j)| wasserstein(&tasks[i], &tasks[j], &cfg).unwrap())
                .collect();
            let d = distance_matrix(&tasks, &cfg).unwrap();
            assert!(
                pairs
                    .iter()
                    .zip(&expected)
                    .all(|(&(i, j), w)| d[i][j] == *w)
            );
            assert_eq!(
                pair_distances(&tasks, &pairs, &cfg).unwrap(),
                expected,
                "{cfg:?}"
            );
            let prepared = PreparedTasks::new(&tasks, cfg.cost, precision);
            assert!(prepared.is_for(&cfg));
            assert_eq!(
                prepared_pair_distances(&tasks, &prepared, &pairs, &cfg).unwrap(),
                expected,
                "{cfg:?}, prepared once"
            );
        }
    }
    let cfg = SimilarityConfig::default();
    assert_eq!(
        pair_distances(&tasks, &[(0, 1), (2, 5)], &cfg),
        Err(OtError::TaskIndex { index: 5, len: 5 })
    );
    let euclidean = PreparedTasks::new(&tasks, CostKind::Euclidean, CostPrecision::Float64);
    assert!(!euclidean.is_for(&cfg));
}

#[test]
fn mismatched_dimensions_are_reported() {
    let tasks = [task(1, 3, 4), task(2, 3, 5)];
    assert_eq!(
        distance_matrix(&tasks, &SimilarityConfig::default()),
        Err(OtError::DimensionMismatch { left: 4, right: 5 })
    );
}
