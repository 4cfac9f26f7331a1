//! Exact EMD at a size POT's fixed pivot limit cannot reach: two seeded random clouds of `n`
//! points in d = 576, cosine cost, uniform weights; prints the pivots used against the limit
//! ([`inscl::ot::EmdConfig::limit`]) and the time.
//!
//! ```sh
//! cargo run --release -p inscl --example emd_large -- 4000
//! ```

use std::time::Instant;

use inscl::ot::{CostKind, EmdConfig, PointCloud, cost_matrix, emd};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DIM: usize = 576;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the size n, a positive integer"))
        .unwrap_or(4000);
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
    let cost_seconds = started.elapsed().as_secs_f64();
    let w = vec![1.0 / n as f64; n];
    let solved = Instant::now();
    let solution = emd(&w, &w, &m).expect("solves within the scaled pivot limit");
    println!(
        "n = {n}: W = {:.6}, {} pivots (limit {}, POT's fixed limit 100000), cost matrix {:.2} s, EMD {:.2} s",
        solution.cost,
        solution.iterations,
        EmdConfig::default().limit(n, n),
        cost_seconds,
        solved.elapsed().as_secs_f64()
    );
}
