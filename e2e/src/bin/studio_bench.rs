//! Benchmark (not a test): how long the studio takes to recompute a 16-task InsCL plan in
//! headless Chromium, and the same computation natively for comparison.
//!
//! Generates seeded random embeddings (16 tasks × 200 instructions, d = 576, clustered per
//! task), drops them on the release build, clicks "Recompute" several times and reads the
//! time the page shows (`performance.now()` from the click's handler to the plan) and how many
//! Web Workers solved the transport problems; the first click waits until the workers hold the
//! tasks. `STUDIO_WORKERS=N` makes the page see N logical
//! cores (it starts one worker per core); `STUDIO_DIST` picks the build.
//!
//! ```sh
//! trunk build --release && cargo run --release -p e2e --bin studio-bench [-- REPEATS]
//! ```

use std::time::{Duration, Instant};

use e2e::{browser, chromedriver, dist_dir, output_dir, serve};
use fantoccini::Locator;
use inscl::artifact::{
    ArtifactBody, EmbeddingsFile, InstructionEmbedding, SCHEMA_VERSION, TaskEmbeddings,
};
use inscl::plan::{PlanConfig, plan_sequence};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TASKS: usize = 16;
const INSTRUCTIONS: usize = 200;
const DIM: usize = 576;

/// Seeded clustered embeddings: task centre + per-instruction noise; counts 1..=20; 1–3 tags
/// from a 60-word vocabulary.
fn embeddings(seed: u64) -> EmbeddingsFile {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut normal = move || rng.random::<f32>() * 2.0 - 1.0;
    let mut rng2 = ChaCha8Rng::seed_from_u64(seed + 1);
    let tasks = (0..TASKS)
        .map(|t| {
            let centre: Vec<f32> = (0..DIM).map(|_| normal()).collect();
            let instructions = (0..INSTRUCTIONS)
                .map(|q| InstructionEmbedding {
                    id: format!("t{t}-q{q}"),
                    text: format!("instruction {q} of task {t}"),
                    count: rng2.random_range(1..=20u32),
                    tags: (0..rng2.random_range(1..=3u32))
                        .map(|_| format!("tag {}", rng2.random_range(0..60u32)))
                        .collect(),
                    embedding: centre.iter().map(|c| c + 0.8 * normal()).collect(),
                })
                .collect();
            TaskEmbeddings {
                name: format!("task{t:02}"),
                instructions,
            }
        })
        .collect();
    EmbeddingsFile {
        schema_version: SCHEMA_VERSION,
        model: None,
        layer: None,
        source: None,
        pooling: None,
        stage: None,
        tasks,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let file = embeddings(0);
    let path = output_dir().join("bench-embeddings.json");
    std::fs::write(&path, file.to_json()).expect("write the embeddings");

    let native: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            plan_sequence(&file.tasks, &PlanConfig::default()).expect("plan");
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();

    let url = serve(dist_dir());
    let driver = chromedriver();
    let client = browser(&driver).await;
    client.goto(&url).await.unwrap();
    let wait = |css: String| {
        let client = client.clone();
        async move {
            client
                .wait()
                .at_most(Duration::from_secs(300))
                .for_element(Locator::Css(&css))
                .await
                .unwrap_or_else(|e| panic!("{css}: {e}"))
        }
    };
    // The page starts one distance worker per logical core; STUDIO_WORKERS=N pretends it has
    // N, to measure how the recompute scales with the workers.
    if let Some(workers) = std::env::var("STUDIO_WORKERS")
        .ok()
        .and_then(|w| w.parse::<u32>().ok())
    {
        client
            .execute(
                "const n = arguments[0]; \
                 Object.defineProperty(navigator, 'hardwareConcurrency', {get: () => n});",
                vec![serde_json::json!(workers)],
            )
            .await
            .unwrap();
    }
    wait("#file-input".into())
        .await
        .send_keys(&path.display().to_string())
        .await
        .unwrap();
    let button = wait("#rc-run".into()).await;
    // Clicks on a settled page: the distance workers hold the tasks (or could not start).
    wait("#rc-workers:not([data-state='starting'])".into()).await;
    // Odd clicks flip the instruction weights (real ↔ uniform), which invalidates the cached
    // task distances: those recomputes solve every transport problem. Even clicks change
    // nothing, so they replan from the cached distances.
    let (mut solved_ms, mut reused_ms) = (Vec::new(), Vec::new());
    let mut workers = std::collections::BTreeSet::new();
    for k in 1..=2 * repeats {
        if k % 2 == 1 {
            let weights = if k % 4 == 1 { "uniform" } else { "real" };
            client
                .execute(
                    "const s = document.getElementById('rc-weights'); s.value = arguments[0]; \
                     s.dispatchEvent(new Event('change'));",
                    vec![serde_json::json!(weights)],
                )
                .await
                .unwrap();
        }
        button.click().await.unwrap();
        let shown = wait(format!("#rc-time[data-run='{k}']")).await;
        let ms: f64 = shown
            .attr("data-ms")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        match shown.attr("data-distances").await.unwrap().as_deref() {
            Some("solved") => {
                solved_ms.push(ms);
                workers.insert(
                    shown
                        .attr("data-workers")
                        .await
                        .unwrap()
                        .unwrap_or_default(),
                );
            }
            _ => reused_ms.push(ms),
        }
    }
    client.close().await.unwrap();
    println!(
        "recompute of a {TASKS}-task InsCL plan ({INSTRUCTIONS} instructions/task, d = {DIM}, exact OT, cosine):"
    );
    println!(
        "  browser (wasm, headless Chromium), distances solved on {} Web Workers (0: on the page): \
         median {:.1} ms, runs {solved_ms:.1?} (weights uniform, real, uniform, ...)",
        workers.into_iter().collect::<Vec<_>>().join(", "),
        median(solved_ms.clone())
    );
    println!(
        "  browser (wasm, headless Chromium), distances reused: median {:.1} ms, runs {reused_ms:.1?}",
        median(reused_ms.clone())
    );
    println!(
        "  native (this machine, release):    median {:.1} ms, runs {native:.1?}",
        median(native.clone())
    );
}
