//! The app's components: chart primitives (heatmap, line chart, stacked bars) and the views
//! built from them (per run, and per study: metric bars, paired comparisons, score curves). Each view reads [`crate::state::AppState`] from context.

pub mod drop_zone;
pub mod heatmap;
pub mod line_chart;
pub mod loss_view;
pub mod metric_bars;
pub mod paired_view;
pub mod plan_view;
pub mod recompute;
pub mod runs_table;
pub mod scores_view;
pub mod similarity_view;
pub mod stacked_bars;
pub mod study_curves;
pub mod study_view;

use leptos::prelude::*;

/// Colour of series / segment `i` (Tableau 10, colour-blind friendly).
pub fn palette(i: usize) -> &'static str {
    const COLORS: [&str; 10] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#bab0ac",
    ];
    COLORS[i % COLORS.len()]
}

/// A number with `decimals` decimals, or an en dash for a missing value.
pub fn fmt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

/// "Export SVG" button downloading the chart inside the element with id `target`.
#[component]
pub fn ExportSvg(
    /// Id of the element that contains the `<svg>`.
    target: String,
) -> impl IntoView {
    let filename = format!("{target}.svg");
    view! {
        <button class="export" on:click=move |_| crate::export::download_svg(&target, &filename)>
            "Export SVG"
        </button>
    }
}

/// "Export CSV" button; `make` builds the CSV text when clicked.
#[component]
pub fn ExportCsv(
    /// Download file name.
    filename: String,
    /// Builds the CSV document.
    make: Callback<(), String>,
) -> impl IntoView {
    view! {
        <button class="export" on:click=move |_| {
            crate::export::download(&filename, "text/csv", &make.run(()));
        }>"Export CSV"</button>
    }
}
