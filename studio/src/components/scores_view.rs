//! Scores: the focused run's matrix R as a heatmap, and final scores and forgetting curves
//! overlaid across the selected runs.

use leptos::prelude::*;

use super::ExportCsv;
use super::heatmap::Heatmap;
use super::line_chart::{LineChart, Series};
use crate::run::Run;
use crate::state::AppState;

/// R as heatmap values: row i = after stage i, `None` above the diagonal.
pub fn score_cells(run: &Run) -> Vec<Vec<Option<f64>>> {
    let Some(scores) = run.scores() else {
        return Vec::new();
    };
    let t = scores.stages();
    (0..t)
        .map(|i| (0..t).map(|j| scores.get(i, j)).collect())
        .collect()
}

/// Final score of every task, `(task number, R[L][j])`.
fn final_scores(run: &Run) -> Vec<(f64, f64)> {
    run.scores()
        .map(|s| {
            let last = s.stages() - 1;
            (0..=last)
                .filter_map(|j| Some(((j + 1) as f64, s.get(last, j)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Score of task `j` after each stage from the one that learns it, `(stage, R[i][j])`.
fn forgetting_curve(run: &Run, j: usize) -> Vec<(f64, f64)> {
    run.scores()
        .map(|s| {
            (j..s.stages())
                .filter_map(|i| Some(((i + 1) as f64, s.get(i, j)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The scores section.
#[component]
pub fn ScoresView() -> impl IntoView {
    let state = AppState::from_context();
    let task = RwSignal::new(0_usize);
    let heatmap = move || {
        let run = state.focused_run()?;
        run.scores()?;
        let tasks = run
            .results
            .as_ref()
            .map(|r| r.tasks.clone())
            .unwrap_or_default();
        let rows = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| format!("after {} ({t})", i + 1))
            .collect();
        let csv_run = run.clone();
        let csv = Callback::new(move |()| {
            let tasks = csv_run.task_names();
            let mut header = vec!["stage"];
            header.extend(tasks.iter().map(String::as_str));
            let rows: Vec<Vec<String>> = score_cells(&csv_run)
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    std::iter::once((i + 1).to_string())
                        .chain(
                            row.iter()
                                .map(|v| v.map(|v| v.to_string()).unwrap_or_default()),
                        )
                        .collect()
                })
                .collect();
            crate::export::csv(&header, &rows)
        });
        Some(view! {
            <div>
                <Heatmap id="score-heatmap".to_owned()
                    title=format!("R[i][j] of {}: ROUGE-L of task j after stage i", run.name)
                    rows=rows cols=tasks values=score_cells(&run) />
                <ExportCsv filename=format!("{}-scores.csv", run.name) make=csv />
            </div>
        })
    };
    let overlays = move || {
        let runs: Vec<_> = state
            .selected_runs()
            .into_iter()
            .filter(|r| r.scores().is_some())
            .collect();
        if runs.is_empty() {
            return None;
        }
        let tasks = runs[0].task_names();
        let j = task.get().min(tasks.len().saturating_sub(1));
        let finals = runs
            .iter()
            .map(|r| Series {
                name: r.name.clone(),
                points: final_scores(r),
                ..Series::default()
            })
            .collect();
        let curves = runs
            .iter()
            .map(|r| Series {
                name: r.name.clone(),
                points: forgetting_curve(r, j),
                ..Series::default()
            })
            .collect();
        let options = tasks
            .iter()
            .enumerate()
            .map(|(k, t)| view! { <option value=k.to_string() selected=k == j>{format!("{}. {t}", k + 1)}</option> })
            .collect_view();
        Some(view! {
            <div class="row">
                <LineChart id="final-scores".to_owned() title="Final score per task".to_owned()
                    x_label="task".to_owned() y_label="ROUGE-L".to_owned() series=finals />
                <div>
                    <label>"task " <select on:change=move |ev| {
                        task.set(event_target_value(&ev).parse().unwrap_or(0));
                    }>{options}</select></label>
                    <LineChart id="forgetting-curve".to_owned()
                        title="Score of the task across stages".to_owned()
                        x_label="stage".to_owned() y_label="ROUGE-L".to_owned() series=curves />
                </div>
            </div>
        })
    };
    view! {
        <section class="scores">
            <h2>"Scores"</h2>
            {heatmap}
            {overlays}
        </section>
    }
}
