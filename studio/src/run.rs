//! One loaded run: the artifacts dropped for it, and what the views read from them.

use std::sync::Arc;

use inscl::artifact::{EmbeddingsFile, LossPoint, RunManifest, RunResults, StageRecord};
use inscl::metrics::ScoreMatrix;
use inscl::plan::StagePlan;

/// One run: the artifacts loaded for it so far. Every part is optional because files may be
/// dropped one at a time, and imported logs carry only scores or a loss curve.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    /// Stable id within this page (the order of loading), used as key and in element ids.
    pub id: usize,
    /// Display name: the manifest's `name`, else the folder or file it came from.
    pub name: String,
    /// `run.json`.
    pub manifest: Option<RunManifest>,
    /// `stages/stage-NN.json`, sorted by stage number, one per stage.
    pub stages: Vec<StageRecord>,
    /// `results.json` (or scores imported from InsCL's `output_state.jsonl`).
    pub results: Option<RunResults>,
    /// `embeddings.json`, shared because recomputation reads it often and it can be large.
    pub embeddings: Option<Arc<EmbeddingsFile>>,
    /// A loss curve imported from HF `trainer_state.json` (not split into stages).
    pub imported_loss: Vec<LossPoint>,
}

impl Run {
    /// The score matrix R, if results were loaded.
    pub fn scores(&self) -> Option<&ScoreMatrix> {
        self.results.as_ref().map(|r| &r.scores)
    }

    /// Task names in sequence order, from the first artifact that has them.
    pub fn task_names(&self) -> Vec<String> {
        if let Some(m) = &self.manifest {
            return m.tasks.iter().map(|t| t.name.clone()).collect();
        }
        if let Some(r) = &self.results {
            return r.tasks.clone();
        }
        if let Some(e) = &self.embeddings {
            return e.tasks.iter().map(|t| t.name.clone()).collect();
        }
        self.stages.iter().map(|s| s.task.clone()).collect()
    }

    /// The recorded replay plan, one entry per loaded stage record.
    pub fn recorded_plan(&self) -> Vec<&StagePlan> {
        self.stages.iter().map(|s| &s.plan).collect()
    }

    /// The Wasserstein matrix as recorded by the stage plans: W[t][j] for j < t comes from
    /// stage t + 1's `previous[j].distance`, mirrored above the diagonal; `None` where no
    /// stage record gives it.
    pub fn recorded_distances(&self) -> Vec<Vec<Option<f64>>> {
        let n = self.task_names().len();
        let mut w = vec![vec![None; n]; n];
        for (i, row) in w.iter_mut().enumerate() {
            row[i] = Some(0.0);
        }
        for plan in self.recorded_plan() {
            let t = plan.stage - 1;
            for (j, prev) in plan.previous.iter().enumerate() {
                if t < n && j < n {
                    w[t][j] = Some(prev.distance);
                    w[j][t] = Some(prev.distance);
                }
            }
        }
        w
    }

    /// Loss curves per stage `(stage, points)`: the stage records' curves, or the imported
    /// curve as stage 1.
    pub fn loss_curves(&self) -> Vec<(usize, &[LossPoint])> {
        let mut curves: Vec<(usize, &[LossPoint])> = self
            .stages
            .iter()
            .map(|s| (s.stage, s.loss.as_slice()))
            .collect();
        if !self.imported_loss.is_empty() {
            curves.push((1, &self.imported_loss));
        }
        curves
    }

    /// Adds the artifacts of `other` to this run; `other`'s parts replace the ones present
    /// (a stage record replaces the record of the same stage).
    pub fn absorb(&mut self, other: Run) {
        if other.manifest.is_some() {
            self.name = other.name;
            self.manifest = other.manifest;
        }
        for stage in other.stages {
            self.stages.retain(|s| s.stage != stage.stage);
            self.stages.push(stage);
        }
        self.stages.sort_by_key(|s| s.stage);
        if other.results.is_some() {
            self.results = other.results;
        }
        if other.embeddings.is_some() {
            self.embeddings = other.embeddings;
        }
        if !other.imported_loss.is_empty() {
            self.imported_loss = other.imported_loss;
        }
    }
}
