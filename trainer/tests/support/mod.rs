//! Helpers shared by the `trainer run` end-to-end tests (`run_runner.rs`, `run_llama.rs`).

use std::path::{Path, PathBuf};

use inscl::artifact::Artifact;

/// Every artifact file of a run, as text, with wall-clock fields zeroed (kept present or absent).
pub fn artifacts(folder: &Path) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = vec![folder.join("results.json"), folder.join("embeddings.json")];
    let mut stages: Vec<PathBuf> = std::fs::read_dir(folder.join("stages"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    stages.sort();
    files.extend(stages);
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let text = match Artifact::from_json(&path.display().to_string(), &text).unwrap() {
                Artifact::Stage(mut record) => {
                    record.wall_seconds = 0.0;
                    record.train_seconds = record.train_seconds.map(|_| 0.0);
                    record.eval_seconds = record.eval_seconds.map(|_| 0.0);
                    serde_json::to_string(&record).unwrap()
                }
                other => serde_json::to_string(&other).unwrap(),
            };
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
            )
        })
        .collect()
}
