//! The focused run's recorded replay plan: quotas per stage as stacked bars, and per previous
//! task the InsInfo of its instructions with the replayed ones highlighted.

use inscl::plan::StagePlan;
use leptos::prelude::*;

use super::stacked_bars::{Bar, StackedBars};
use super::{ExportCsv, ExportSvg, fmt};
use crate::state::AppState;

/// One bar per stage with replay: the quota of each previous task.
pub fn quota_bars<'a>(plans: impl IntoIterator<Item = &'a StagePlan>) -> Vec<Bar> {
    plans
        .into_iter()
        .filter(|p| !p.previous.is_empty())
        .map(|p| Bar {
            label: p.stage.to_string(),
            segments: p
                .previous
                .iter()
                .map(|r| (r.task.clone(), r.quota as f64))
                .collect(),
        })
        .collect()
}

/// The plan section.
#[component]
pub fn PlanView() -> impl IntoView {
    let state = AppState::from_context();
    let stage = RwSignal::new(usize::MAX);
    let task = RwSignal::new(0_usize);
    let picked = RwSignal::new(None::<String>);
    move || {
        let run = state.focused_run()?;
        let plans: Vec<&StagePlan> = run
            .recorded_plan()
            .into_iter()
            .filter(|p| !p.previous.is_empty())
            .collect();
        let last = plans.last()?;
        let plan = plans
            .iter()
            .find(|p| p.stage == stage.get())
            .unwrap_or(last);
        let j = task.get().min(plan.previous.len() - 1);
        let replay = &plan.previous[j];
        let max = replay
            .instructions
            .iter()
            .map(|q| q.insinfo)
            .fold(0.0_f64, f64::max)
            .max(1e-12);
        let bar_w = (600.0 / replay.instructions.len().max(1) as f64).clamp(2.0, 24.0);
        let bars = replay
            .instructions
            .iter()
            .enumerate()
            .map(|(k, q)| {
                let h = q.insinfo / max * 120.0;
                let chosen = q.replay > 0;
                let id = q.id.clone();
                view! {
                    <rect class="instruction" class:chosen=chosen x=k as f64 * bar_w y=130.0 - h
                        width=(bar_w - 1.0).max(1.0) height=h
                        fill=if chosen { "#e15759" } else { "#bab0ac" } data-id=q.id.clone()
                        on:click=move |_| picked.set(Some(id.clone()))>
                        <title>{format!("{}: InsInfo {:.4}, replayed {}", q.id, q.insinfo, q.replay)}</title>
                    </rect>
                }
            })
            .collect_view();
        let detail = picked.get().and_then(|id| {
            let q = replay.instructions.iter().find(|q| q.id == id)?;
            let source = run
                .embeddings
                .as_ref()
                .and_then(|e| e.tasks.iter().find(|t| t.name == replay.task))
                .and_then(|t| t.instructions.iter().find(|i| i.id == id));
            Some(view! {
                <div class="instruction-detail">
                    <b>{id.clone()}</b>
                    {format!(" — InsInfo {:.4}, replayed {} (instances {:?})", q.insinfo, q.replay, q.instances)}
                    <p>{source.map_or_else(|| "(load embeddings.json for the text)".to_owned(), |s| s.text.clone())}</p>
                    <p>"tags: " {source.map(|s| s.tags.join(", ")).unwrap_or_default()}</p>
                </div>
            })
        });
        let stage_options = plans
            .iter()
            .map(|p| view! { <option value=p.stage.to_string() selected=p.stage == plan.stage>{format!("stage {} ({})", p.stage, p.task)}</option> })
            .collect_view();
        let task_options = plan
            .previous
            .iter()
            .enumerate()
            .map(|(k, r)| view! { <option value=k.to_string() selected=k == j>{format!("{} (quota {}, W {})", r.task, r.quota, fmt(Some(r.distance), 3))}</option> })
            .collect_view();
        let csv_plans: Vec<StagePlan> = plans.iter().map(|p| (*p).clone()).collect();
        let csv = Callback::new(move |()| {
            let rows: Vec<Vec<String>> = csv_plans
                .iter()
                .flat_map(|p| {
                    p.previous.iter().map(move |r| {
                        vec![
                            p.stage.to_string(),
                            p.task.clone(),
                            r.task.clone(),
                            r.distance.to_string(),
                            r.quota.to_string(),
                        ]
                    })
                })
                .collect();
            crate::export::csv(
                &["stage", "task", "previous task", "distance", "quota"],
                &rows,
            )
        });
        let width = bar_w * replay.instructions.len() as f64;
        Some(view! {
            <section class="plan">
                <h2>"Replay plan (recorded)"</h2>
                <StackedBars id="plan-bars".to_owned()
                    title=format!("Instances replayed from each previous task, per stage — {}", run.name)
                    bars=quota_bars(plans.iter().copied()) />
                <ExportCsv filename=format!("{}-plan.csv", run.name) make=csv />
                <h3>"InsInfo of a previous task's instructions (red: replayed; click for text and tags)"</h3>
                <select on:change=move |ev| stage.set(event_target_value(&ev).parse().unwrap_or(usize::MAX))>{stage_options}</select>
                <select on:change=move |ev| task.set(event_target_value(&ev).parse().unwrap_or(0))>{task_options}</select>
                <figure class="chart" id="insinfo-bars">
                    <figcaption>{format!("{} at stage {}", replay.task, plan.stage)}" "
                        <ExportSvg target="insinfo-bars".to_owned() /></figcaption>
                    <svg width=width.max(10.0) height="132" xmlns="http://www.w3.org/2000/svg">{bars}</svg>
                </figure>
                {detail}
            </section>
        })
    }
}
