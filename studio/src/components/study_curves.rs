//! A study's per-task score curves: for one order and task, the task's score after each stage
//! averaged over the seeds, one line per arm (method and replay strategy) with a band of ± one
//! sd.

use std::sync::Arc;

use inscl::artifact::{ScoreCurves, StudyFile};
use leptos::prelude::*;

use super::line_chart::{LineChart, Series};

/// Task `task`'s mean score after each stage from the one that learns it, `(stage, mean)`
/// with the band `(mean − sd, mean + sd)`, named by the arm's label; empty when the order has
/// no such task.
pub fn task_curve(curves: &ScoreCurves, task: &str) -> Series {
    let name = curves.arm().label();
    let Some(j) = curves.tasks.iter().position(|t| t == task) else {
        return Series {
            name,
            ..Series::default()
        };
    };
    let (points, band) = curves
        .mean
        .iter()
        .zip(&curves.sd)
        .enumerate()
        .skip(j)
        .filter_map(|(i, (mean, sd))| {
            let (m, s) = (*mean.get(j)?, *sd.get(j)?);
            Some((((i + 1) as f64, m), (m - s, m + s)))
        })
        .unzip();
    Series { name, points, band }
}

/// The curves section: order and task pickers and the chart (element id `study-curves`).
#[component]
pub fn StudyCurves(
    /// The study whose averaged score matrices are drawn.
    study: Arc<StudyFile>,
) -> impl IntoView {
    let order = RwSignal::new(study.orders.first().cloned().unwrap_or_default());
    let task = RwSignal::new(None::<String>);
    let order_options = study
        .orders
        .iter()
        .map(|o| view! { <option value=o.clone()>{o.clone()}</option> })
        .collect_view();
    let chart = move || {
        let order = order.get();
        let curves: Vec<&ScoreCurves> = study.curves.iter().filter(|c| c.order == order).collect();
        let tasks = curves.first().map(|c| c.tasks.clone()).unwrap_or_default();
        let picked = task
            .get()
            .filter(|t| tasks.contains(t))
            .or_else(|| tasks.first().cloned())?;
        let series: Vec<Series> = curves.iter().map(|c| task_curve(c, &picked)).collect();
        let runs = curves
            .iter()
            .map(|c| format!("{} {}", c.arm().label(), c.n))
            .collect::<Vec<_>>()
            .join(", ");
        let task_options = tasks
            .iter()
            .enumerate()
            .map(|(k, t)| {
                view! { <option value=t.clone() selected=*t == picked>{format!("{}. {t}", k + 1)}</option> }
            })
            .collect_view();
        Some(view! {
            <label>" task "
                <select id="study-task" on:change=move |ev| task.set(Some(event_target_value(&ev)))>
                    {task_options}
                </select>
            </label>
            <LineChart id="study-curves".to_owned()
                title=format!("{picked} across stages ({order} order): mean ± sd over seeds")
                x_label="stage".to_owned() y_label="ROUGE-L".to_owned() series=series />
            <p class="note">{format!("runs averaged: {runs}")}</p>
        })
    };
    view! {
        <div class="study-curves">
            <label>"order "
                <select id="study-order" on:change=move |ev| order.set(event_target_value(&ev))>
                    {order_options}
                </select>
            </label>
            {chart}
        </div>
    }
}
