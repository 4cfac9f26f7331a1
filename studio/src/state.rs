//! The app-wide signals that hold the loaded runs ([`crate::run::Run`]) and studies.

use std::sync::Arc;

use inscl::artifact::StudyFile;
use leptos::prelude::*;

use crate::load::{LoadError, Loaded};
use crate::run::Run;

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
    pub fn from_context() -> Self {
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
