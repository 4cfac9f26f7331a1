//! The layout of a run folder `runs/NAME/`:
//!
//! | path | content |
//! |---|---|
//! | `run.json` | [`inscl::artifact::RunManifest`], written once at the start |
//! | `stages/stage-00.json` | zero-shot evaluation of every task (stage 0, empty task name) |
//! | `stages/stage-NN.json` | [`inscl::artifact::StageRecord`] of stage NN; its presence marks the stage finished |
//! | `results.json` | R matrix and summary over the finished stages |
//! | `embeddings.json` | instruction embeddings and tags that the last finished stage's plan compared (tasks seen so far) |
//! | `tags.json` | the `llm` tagger's tags, replies and fallbacks ([`crate::tags::llm::LlmTagFile`]) |
//! | `checkpoints/stage-NN/` | the learner's state after stage NN (the last K kept) |
//! | `cache/embed-HASH.json` | instruction vectors by content hash (model, weights, stage, layer, texts) |
//! | `cache/kernels/` | on a GPU: cubecl's autotune results and compiled kernels ([`llama::device::use_kernel_cache`]) |

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::learner::ContinualLearner;

/// Paths of one run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    root: PathBuf,
}

impl RunFolder {
    /// The folder at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        RunFolder { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `run.json`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("run.json")
    }

    /// `results.json`.
    pub fn results(&self) -> PathBuf {
        self.root.join("results.json")
    }

    /// `embeddings.json`.
    pub fn embeddings(&self) -> PathBuf {
        self.root.join("embeddings.json")
    }

    /// `tags.json` (the `llm` tagger's cache).
    pub fn tags(&self) -> PathBuf {
        self.root.join("tags.json")
    }

    /// `stages/stage-NN.json` (stage 0 = zero-shot).
    pub fn stage(&self, stage: usize) -> PathBuf {
        self.root
            .join("stages")
            .join(format!("stage-{stage:02}.json"))
    }

    /// `checkpoints/stage-NN/`.
    pub fn checkpoint(&self, stage: usize) -> PathBuf {
        self.root
            .join("checkpoints")
            .join(format!("stage-{stage:02}"))
    }

    /// `cache/embed-KEY.json`.
    pub fn embedding_cache(&self, key: &str) -> PathBuf {
        self.root.join("cache").join(format!("embed-{key}.json"))
    }

    /// `cache/kernels/`.
    pub fn kernel_cache(&self) -> PathBuf {
        self.root.join("cache").join("kernels")
    }

    /// Creates the sub-folders and removes what a killed or failed write left behind: the
    /// temporary files and folders (`.NAME.tmp`) of the atomic writes, e.g. a half-written
    /// `checkpoints/.stage-NN.tmp/`, which are never read.
    ///
    /// # Errors
    /// I/O failures.
    pub fn prepare(&self) -> std::io::Result<()> {
        for sub in ["stages", "checkpoints", "cache"] {
            std::fs::create_dir_all(self.root.join(sub))?;
        }
        for dir in ["", "stages", "checkpoints", "cache"] {
            for entry in std::fs::read_dir(self.root.join(dir))? {
                let entry = entry?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    remove(&entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// Number of leading finished stages (1, 2, ... with a stage file; stage 0 not counted).
    pub fn finished_stages(&self) -> usize {
        (1..).take_while(|&s| self.stage(s).is_file()).count()
    }

    /// Saves the learner's state after `stage`: written into a temporary folder
    /// `checkpoints/.stage-NN.tmp/` that is renamed into place, so a checkpoint folder is
    /// always complete. A failed save (a full disk) removes the temporary folder.
    ///
    /// # Errors
    /// The learner's or I/O failures, naming the path.
    pub fn save_checkpoint(
        &self,
        learner: &dyn ContinualLearner,
        stage: usize,
    ) -> anyhow::Result<()> {
        let tmp = self
            .root
            .join("checkpoints")
            .join(format!(".stage-{stage:02}.tmp"));
        let saved = self.write_checkpoint(learner, stage, &tmp);
        if saved.is_err() && tmp.exists() {
            // The save's error is the one to report; a failed clean-up is left to `prepare`.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        saved
    }

    fn write_checkpoint(
        &self,
        learner: &dyn ContinualLearner,
        stage: usize,
        tmp: &Path,
    ) -> anyhow::Result<()> {
        let target = self.checkpoint(stage);
        let at = |path: &Path| path.display().to_string();
        if tmp.exists() {
            remove(tmp).with_context(|| at(tmp))?;
        }
        std::fs::create_dir_all(tmp).with_context(|| at(tmp))?;
        super::faults::point("checkpoint-write");
        learner.save_checkpoint(tmp)?;
        super::faults::point("checkpoint-rename");
        if target.exists() {
            std::fs::remove_dir_all(&target).with_context(|| at(&target))?;
        }
        std::fs::rename(tmp, &target).with_context(|| at(&target))?;
        Ok(())
    }

    /// Removes the checkpoints before `stage` except the last `keep` (counting `stage`'s).
    /// Called only after `stage`'s stage file is written, so resume always finds the
    /// checkpoint of the last finished stage.
    ///
    /// # Errors
    /// I/O failures.
    pub fn prune_checkpoints(&self, stage: usize, keep: usize) -> std::io::Result<()> {
        for old in (1..stage).rev().skip(keep.saturating_sub(1)) {
            let dir = self.checkpoint(old);
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
        }
        Ok(())
    }
}

/// Removes a file or a folder with its content.
fn remove(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
