//! Training-loss curves of the selected runs, stages concatenated, with EMA smoothing.

use gloo_storage::{LocalStorage, Storage};
use leptos::prelude::*;

use super::line_chart::{LineChart, Series};
use crate::run::Run;
use crate::state::AppState;

/// Exponential moving average `s_k = β s_{k−1} + (1 − β) x_k`, `s_0 = x_0` (TensorBoard's
/// smoothing without debiasing); `β = 0` returns the input.
pub fn ema(values: &[f64], beta: f64) -> Vec<f64> {
    let mut state = None;
    values
        .iter()
        .map(|&x| {
            let s = state.map_or(x, |s: f64| beta * s + (1.0 - beta) * x);
            state = Some(s);
            s
        })
        .collect()
}

/// A run's loss over a global step axis: each stage's steps follow the previous stage's.
pub fn global_loss(run: &Run) -> Vec<(f64, f64)> {
    let mut offset = 0;
    let mut points = Vec::new();
    for (_, curve) in run.loss_curves() {
        points.extend(curve.iter().map(|p| ((offset + p.step) as f64, p.loss)));
        offset += curve.iter().map(|p| p.step).max().unwrap_or(0);
    }
    points
}

/// Local-storage key remembering the smoothing between visits.
const EMA_KEY: &str = "studio.loss.ema";

/// The loss section.
#[component]
pub fn LossView() -> impl IntoView {
    let state = AppState::from_context();
    let beta = RwSignal::new(LocalStorage::get::<f64>(EMA_KEY).unwrap_or(0.6));
    let chart = move || {
        let b = beta.get();
        let series: Vec<Series> = state
            .selected_runs()
            .iter()
            .map(|r| {
                let raw = global_loss(r);
                let smooth = ema(&raw.iter().map(|p| p.1).collect::<Vec<_>>(), b);
                Series {
                    name: r.name.clone(),
                    points: raw.iter().zip(smooth).map(|(p, s)| (p.0, s)).collect(),
                    ..Series::default()
                }
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        (!series.is_empty()).then(|| view! {
            <LineChart id="loss-chart".to_owned() title="Training loss (stages concatenated)".to_owned()
                x_label="step".to_owned() y_label="loss (nats/token)".to_owned() series=series />
        })
    };
    view! {
        <section class="loss">
            <h2>"Training loss"</h2>
            <label>"EMA smoothing β "
                <input id="ema" type="range" min="0" max="0.99" step="0.01" prop:value=move || beta.get().to_string()
                    on:input=move |ev| {
                        let value = event_target_value(&ev).parse().unwrap_or(0.0);
                        beta.set(value);
                        // Storage can be unavailable (private mode); the slider still works.
                        let _ = LocalStorage::set(EMA_KEY, value);
                    } />
                {move || format!(" {:.2}", beta.get())}
            </label>
            {chart}
        </section>
    }
}
