//! Exact EMD at sizes POT's fixed pivot limit cannot reach: two seeded random clouds of `n`
//! points in d = 576, cosine cost, uniform weights. Solves the problem twice, side by side:
//! with the network simplex (pivots used against [`inscl::ot::EmdConfig::limit`]) and as a
//! linear assignment ([`inscl::ot::linear_assignment`]), and prints both times and costs.
//!
//! ```sh
//! cargo run --release -p inscl --example emd_large -- 4000
//! ```

use std::time::Instant;

use inscl::ot::{CostKind, EmdConfig, PointCloud, cost_matrix, emd_with};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 576;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(4000, |a| a.parse().expect("the size n, a positive integer"));
    let cloud = |seed: u64| -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * DIM)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect()
    };
    let (xs, ys) = (cloud(1), cloud(2));
    let started = Instant::now();
    let m = cost_matrix(
        &PointCloud::new(&xs, DIM).expect("n × d points"),
        &PointCloud::new(&ys, DIM).expect("n × d points"),
        CostKind::Cosine,
    )
    .expect("finite points");
    let cost_ms = started.elapsed().as_secs_f64() * 1e3;
    println!("n = {n}: cost matrix {cost_ms:.1} ms");
    let w = vec![1.0 / n as f64; n];
    for assignment in [false, true] {
        let cfg = EmdConfig {
            assignment,
            ..EmdConfig::default()
        };
        let solved = Instant::now();
        let solution = emd_with(&w, &w, &m, &cfg).expect("solves within the scaled pivot limit");
        let work = if assignment {
            format!("{} augmenting paths", solution.iterations)
        } else {
            format!(
                "{} pivots (limit {}, POT's fixed limit 100000)",
                solution.iterations,
                cfg.limit(n, n)
            )
        };
        println!(
            "  {:?}: W = {:.15}, {work}, {:.1} ms",
            solution.algorithm,
            solution.cost,
            solved.elapsed().as_secs_f64() * 1e3
        );
    }
}
