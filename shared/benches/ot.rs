//! Cost matrix + exact EMD and cost matrix + log-domain Sinkhorn (ε = 0.05) at
//! n = m ∈ {100, 500, 1000, 2000}, d = 576, cosine cost, uniform weights. Exact EMD runs
//! twice: as `emd` solves it (`cost_emd`: uniform square problems go to the assignment
//! solver) and forced through the network simplex (`cost_emd_simplex`, POT's algorithm).
//!
//! Inputs come from [`native::point`], a stateless integer hash that `tools/bench/pot_timing.py`
//! reimplements in numpy, so POT is timed on bit-identical clouds.
//!
//! Native only: criterion is not built for wasm32, where this target is an empty program.

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::{BenchmarkId, Criterion, criterion_group};
    use inscl::ot::{
        CostKind, EmdConfig, PointCloud, SinkhornConfig, cost_matrix, emd_with, sinkhorn_log,
    };

    const DIM: usize = 576;
    const SIZES: [usize; 4] = [100, 500, 1000, 2000];
    const EPSILON: f64 = 0.05;

    /// Coordinate `index` of cloud `seed`, uniform in [-1, 1): a 32-bit multiply–xorshift hash
    /// (mirrored in `tools/bench/pot_timing.py`).
    fn point(seed: u32, index: u32) -> f32 {
        let mut h = index
            .wrapping_mul(0x9E37_79B1)
            .wrapping_add(seed.wrapping_mul(0x85EB_CA77))
            .wrapping_add(1);
        h ^= h >> 15;
        h = h.wrapping_mul(0x2C1B_3C6D);
        h ^= h >> 12;
        h = h.wrapping_mul(0x297A_2D39);
        h ^= h >> 15;
        (f64::from(h) / 4_294_967_296.0 * 2.0 - 1.0) as f32
    }

    fn cloud(seed: u32, n: usize) -> Vec<f32> {
        (0..(n * DIM) as u32).map(|k| point(seed, k)).collect()
    }

    fn bench(c: &mut Criterion) {
        let simplex = EmdConfig {
            assignment: false,
            ..EmdConfig::default()
        };
        let solvers = [
            ("cost_emd", Some(EmdConfig::default())),
            ("cost_emd_simplex", Some(simplex)),
            ("cost_sinkhorn", None),
        ];
        for (name, exact) in solvers {
            let mut group = c.benchmark_group(name);
            for n in SIZES {
                let (xs, ys) = (cloud(1, n), cloud(2, n));
                let (x, y) = (
                    PointCloud::new(&xs, DIM).unwrap(),
                    PointCloud::new(&ys, DIM).unwrap(),
                );
                let w = vec![1.0 / n as f64; n];
                group.sample_size(if n >= 1000 { 10 } else { 20 });
                group.measurement_time(Duration::from_secs(if n >= 1000 { 20 } else { 5 }));
                group.bench_with_input(BenchmarkId::from_parameter(n), &n, |bench, _| {
                    bench.iter(|| {
                        let m = cost_matrix(&x, &y, CostKind::Cosine).unwrap();
                        if let Some(cfg) = &exact {
                            black_box(emd_with(&w, &w, &m, cfg).unwrap().cost)
                        } else {
                            black_box(
                                sinkhorn_log(&w, &w, &m, &SinkhornConfig::new(EPSILON))
                                    .unwrap()
                                    .cost,
                            )
                        }
                    });
                });
            }
            group.finish();
        }
    }

    criterion_group!(benches, bench);
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(native::benches);

#[cfg(target_arch = "wasm32")]
fn main() {}
