//! The page: drop zone, load errors, the study view, runs table and the views.

use leptos::prelude::*;

use crate::components::drop_zone::DropZone;
use crate::components::loss_view::LossView;
use crate::components::plan_view::PlanView;
use crate::components::recompute::RecomputePanel;
use crate::components::runs_table::RunsTable;
use crate::components::scores_view::ScoresView;
use crate::components::similarity_view::SimilarityView;
use crate::components::study_view::StudyView;
use crate::state::AppState;

/// Problems of dropped files, each naming the file; dismissable.
#[component]
fn Errors() -> impl IntoView {
    let state = AppState::from_context();
    move || {
        let errors = state.errors.get();
        (!errors.is_empty()).then(|| {
            view! {
                <section id="errors" class="errors">
                    <button on:click=move |_| state.errors.set(Vec::new())>"Dismiss"</button>
                    <ul>{errors.into_iter().map(|e| view! { <li class="error" data-file=e.file>{e.message}</li> }).collect_view()}</ul>
                </section>
            }
        })
    }
}

/// The studio.
#[component]
pub fn App() -> impl IntoView {
    let state = AppState::new();
    provide_context(state);
    let has_runs = move || !state.runs.get().is_empty();
    let nothing_loaded = move || state.runs.get().is_empty() && state.studies.get().is_empty();
    view! {
        <header>
            <h1>"InsCL studio"</h1>
            <p>"Compare continual-instruction-tuning runs and recompute their replay plans in the browser."</p>
        </header>
        <DropZone />
        <Errors />
        <StudyView />
        <Show when=has_runs
            fallback=move || nothing_loaded().then(|| view! { <p class="empty">"No runs loaded yet."</p> })>
            <RunsTable />
            <ScoresView />
            <SimilarityView />
            <PlanView />
            <RecomputePanel />
            <LossView />
        </Show>
    }
}
