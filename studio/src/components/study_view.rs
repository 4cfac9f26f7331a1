//! A study (`study.json`, a grid of runs: methods × strategies × seeds × orders): per metric
//! the arms' (method and strategy) means with 95% CIs and their runs ([`super::metric_bars`]),
//! the paired comparisons ([`super::paired_view`]) and the mean score curves
//! ([`super::study_curves`]).

use std::sync::Arc;

use inscl::artifact::StudyFile;
use leptos::prelude::*;

use super::ExportCsv;
use super::metric_bars::MetricBars;
use super::paired_view::{ForestPlot, PairedTable};
use super::study_curves::StudyCurves;
use crate::state::AppState;

/// The per-arm summaries as CSV: one line per arm and metric.
fn summaries_csv(study: &StudyFile) -> String {
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = study
        .summaries
        .iter()
        .flat_map(|s| {
            s.metrics.iter().map(|(metric, d)| {
                vec![
                    s.method.clone(),
                    s.strategy.clone(),
                    metric.clone(),
                    d.n.to_string(),
                    number(Some(d.mean).filter(|m| m.is_finite())),
                    number(d.sd),
                    number(d.ci95.map(|c| c[0])),
                    number(d.ci95.map(|c| c[1])),
                ]
            })
        })
        .collect();
    crate::export::csv(
        &[
            "method",
            "strategy",
            "metric",
            "n",
            "mean",
            "sd",
            "ci95_low",
            "ci95_high",
        ],
        &rows,
    )
}

/// One study: what it ran, its metrics, comparisons and curves.
#[component]
fn Study(study: Arc<StudyFile>) -> impl IntoView {
    let methods = if study.methods.len() > 1 {
        format!(
            "{} methods ({}) × ",
            study.methods.len(),
            study.methods.join(", ")
        )
    } else {
        String::new()
    };
    let grid = format!(
        "{methods}{} strategies × {} seeds × {} orders ({}), {} finished runs{}",
        study.strategies.len(),
        study.seeds.len(),
        study.orders.len(),
        study.orders.join(", "),
        study.cells.len(),
        if study.settings.is_empty() {
            String::new()
        } else {
            format!("; settings {}", study.settings.join(" "))
        }
    );
    let csv_study = study.clone();
    let csv = Callback::new(move |()| summaries_csv(&csv_study));
    let bars = StudyFile::METRICS
        .map(|metric| view! { <MetricBars study=study.clone() metric /> })
        .collect_view();
    let forests = StudyFile::METRICS
        .map(|metric| view! { <ForestPlot study=study.clone() metric /> })
        .collect_view();
    view! {
        <p class="study-grid">{grid}</p>
        <h3>"Metrics per arm (method and strategy)"</h3>
        <ExportCsv filename=format!("{}-summary.csv", study.name) make=csv />
        <div class="row">{bars}</div>
        <h3>"Paired differences (matched seed and order)"</h3>
        <div class="row">{forests}</div>
        <PairedTable study=study.clone() />
        <h3>"Score curves, mean over seeds"</h3>
        <StudyCurves study=study.clone() />
    }
}

/// The studies section: the chosen study (the latest loaded unless another was picked since it
/// loaded: loading a study shows it).
#[component]
pub fn StudyView() -> impl IntoView {
    let state = AppState::from_context();
    // The picked study's name and the latest study's name at the time of the pick.
    let chosen = RwSignal::new(None::<(String, String)>);
    move || {
        let studies = state.studies.get();
        let latest = studies.last()?;
        let study = match chosen.get() {
            Some((picked, latest_then)) if latest_then == latest.name => {
                studies.iter().find(|s| s.name == picked).unwrap_or(latest)
            }
            _ => latest,
        }
        .clone();
        let latest = latest.name.clone();
        let name = study.name.clone();
        let picker = (studies.len() > 1).then(|| {
            let options = studies
                .iter()
                .map(|s| view! { <option value=s.name.clone() selected=s.name == study.name>{s.name.clone()}</option> })
                .collect_view();
            view! {
                <label>"study " <select id="study-select"
                    on:change=move |ev| chosen.set(Some((event_target_value(&ev), latest.clone())))>{options}</select></label>
            }
        });
        Some(view! {
            <section class="study" id="study" data-study=name.clone()>
                <h2>"Study " {name.clone()}</h2>
                {picker}
                <Study study />
            </section>
        })
    }
}
