//! The loaded runs and studies, and the app-wide signals that hold them.

use std::sync::Arc;

use inscl::artifact::{EmbeddingsFile, LossPoint, RunManifest, RunResults, StageRecord, StudyFile};
use inscl::metrics::ScoreMatrix;
use inscl::plan::StagePlan;
use leptos::prelude::*;

use crate::load::Loaded;

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

/// A file that could not be loaded, with a message naming it and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File name or path as dropped.
    pub file: String,
    /// What is wrong, for people (already names the file).
    pub message: String,
}

/// App-wide state, provided as context by [`crate::app::App`]. All fields are signals
/// (`Copy`), so the struct is passed around by value.
#[derive(Debug, Clone, Copy)]
pub struct AppState {
    /// Loaded runs in loading order.
    pub runs: RwSignal<Vec<Arc<Run>>>,
    /// Loaded studies (`study.json`) in loading order, one per name.
    pub studies: RwSignal<Vec<Arc<StudyFile>>>,
    /// Ids of the runs selected for comparison.
    pub selected: RwSignal<Vec<usize>>,
    /// The run shown by the per-run views (heatmaps, plan, recompute).
    pub focus: RwSignal<Option<usize>>,
    /// Problems of the files dropped so far (newest last).
    pub errors: RwSignal<Vec<LoadError>>,
}

impl AppState {
    /// Empty state.
    pub fn new() -> Self {
        AppState {
            runs: RwSignal::new(Vec::new()),
            studies: RwSignal::new(Vec::new()),
            selected: RwSignal::new(Vec::new()),
            focus: RwSignal::new(None),
            errors: RwSignal::new(Vec::new()),
        }
    }

    /// The state provided by [`crate::app::App`].
    ///
    /// # Panics
    /// Outside the app's component tree.
    pub fn expect() -> Self {
        expect_context::<AppState>()
    }

    /// Merges newly loaded runs (a run with the name of a loaded run is added to it; an
    /// unnamed one to the focused run), selects new runs, focuses the first new run if none
    /// is focused, adds the studies (one of a loaded study's name replaces it), and records
    /// the errors.
    pub fn add(&self, loaded: Loaded, errors: Vec<LoadError>) {
        let mut added = Vec::new();
        // Errors alone must not touch the runs: views keyed on them (the recompute panel)
        // would be rebuilt and lose their state.
        if !loaded.runs.is_empty() {
            self.merge(loaded.runs, &mut added);
        }
        if !loaded.studies.is_empty() {
            self.studies.update(|studies| {
                for study in loaded.studies {
                    studies.retain(|s| s.name != study.name);
                    studies.push(Arc::new(study));
                }
            });
        }
        self.selected.update(|s| s.extend(&added));
        if self.focus.get_untracked().is_none() {
            self.focus.set(added.first().copied());
        }
        if !errors.is_empty() {
            self.errors.update(|e| e.extend(errors));
        }
    }

    /// Adds or merges `new_runs` into the runs; pushes the ids of new runs to `added`.
    fn merge(&self, new_runs: Vec<Run>, added: &mut Vec<usize>) {
        self.runs.update(|runs| {
            for mut run in new_runs {
                // Unnamed groups (files dropped without run.json or folder) extend the
                // focused run, or else become a run of their own.
                let focus = self.focus.get_untracked();
                if run.name.is_empty() {
                    match runs.iter().find(|r| Some(r.id) == focus) {
                        Some(focused) => run.name = focused.name.clone(),
                        None => run.name = format!("run {}", runs.len() + 1),
                    }
                }
                if let Some(existing) = runs.iter_mut().find(|r| r.name == run.name) {
                    let mut merged = Run::clone(existing);
                    merged.absorb(run);
                    *existing = Arc::new(merged);
                } else {
                    run.id = runs.iter().map(|r| r.id + 1).max().unwrap_or(0);
                    added.push(run.id);
                    runs.push(Arc::new(run));
                }
            }
        });
    }

    /// The runs selected for comparison, in loading order.
    pub fn selected_runs(&self) -> Vec<Arc<Run>> {
        let selected = self.selected.get();
        self.runs
            .get()
            .into_iter()
            .filter(|r| selected.contains(&r.id))
            .collect()
    }

    /// The focused run.
    pub fn focused_run(&self) -> Option<Arc<Run>> {
        let id = self.focus.get()?;
        self.runs.get().into_iter().find(|r| r.id == id)
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}
