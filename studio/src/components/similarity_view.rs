//! Task similarity: the focused run's Wasserstein matrix and the distance row of each stage.

use leptos::prelude::*;

use super::heatmap::Heatmap;
use super::stacked_bars::Bar;
use super::{ExportCsv, fmt};
use crate::state::AppState;

/// The similarity section.
#[component]
pub fn SimilarityView() -> impl IntoView {
    let state = AppState::from_context();
    move || {
        let run = state.focused_run()?;
        if run.stages.is_empty() {
            return None;
        }
        let tasks = run.task_names();
        let w = run.recorded_distances();
        let rows: Vec<Bar> = run
            .stages
            .iter()
            .filter(|s| !s.plan.previous.is_empty())
            .map(|s| Bar {
                label: format!("stage {} ({})", s.stage, s.task),
                segments: s
                    .plan
                    .previous
                    .iter()
                    .map(|p| (p.task.clone(), p.distance))
                    .collect(),
            })
            .collect();
        let table_rows = rows
            .iter()
            .map(|bar| {
                let cells = bar
                    .segments
                    .iter()
                    .map(|(t, d)| view! { <td title=t.clone()>{fmt(Some(*d), 4)}</td> })
                    .collect_view();
                view! { <tr><th>{bar.label.clone()}</th>{cells}</tr> }
            })
            .collect_view();
        let csv_w = w.clone();
        let csv_tasks = tasks.clone();
        let csv = Callback::new(move |()| {
            let mut header = vec!["task"];
            header.extend(csv_tasks.iter().map(String::as_str));
            let rows: Vec<Vec<String>> = csv_w
                .iter()
                .zip(&csv_tasks)
                .map(|(row, t)| {
                    std::iter::once(t.clone())
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
            <section class="similarity">
                <h2>"Task similarity"</h2>
                <Heatmap id="wasserstein-heatmap".to_owned()
                    title=format!("Wasserstein distances W of {} (recorded by the stages)", run.name)
                    rows=tasks.clone() cols=tasks values=w decimals=3 />
                <ExportCsv filename=format!("{}-wasserstein.csv", run.name) make=csv />
                <h3>"Distance row per stage (to each previous task, in order)"</h3>
                <table class="distance-rows"><tbody>{table_rows}</tbody></table>
            </section>
        })
    }
}
