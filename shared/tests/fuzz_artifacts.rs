//! Run artifacts (`inscl::artifact::Artifact::from_json`, what the studio runs on every
//! dropped file) on mutated real artifacts: the example run's `run.json`, stage files,
//! `results.json` and `embeddings.json` (`support/fuzz.rs`). No panic, bounded
//! allocation, errors that name the file. `INSCL_FUZZ_CASES` sets the number of cases.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/fuzz.rs"]
mod fuzz;

#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;

use std::path::Path;

use inscl::artifact::Artifact;

#[test]
fn artifacts() {
    let run = Path::new(env!("CARGO_MANIFEST_DIR")).join("../public/example-run");
    let seeds = [
        "run.json",
        "results.json",
        "embeddings.json",
        "stages/stage-00.json",
        "stages/stage-02.json",
    ]
    .map(|f| std::fs::read(run.join(f)).unwrap())
    .to_vec();
    let dir = std::env::temp_dir().join(format!("inscl-fuzz-artifacts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stage-01.json");
    fuzz::fuzz("run artifacts", seeds, &file, &file, |path| {
        // The studio decodes dropped bytes the same way before parsing.
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        Artifact::from_json(&path.display().to_string(), &text)
            .err()
            .map(|e| e.to_string())
    });
    std::fs::remove_dir_all(dir).unwrap();
}
