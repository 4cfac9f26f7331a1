//! A matrix as an SVG heatmap with the value in each cell and on hover.

use leptos::prelude::*;

use super::{ExportSvg, fmt};

/// Cell edge in SVG units.
const CELL: f64 = 40.0;
/// Room for the row labels on the left and the column labels on top.
const MARGIN_LEFT: f64 = 120.0;
const MARGIN_TOP: f64 = 90.0;

/// Colour of `t ∈ [0, 1]` on a white → dark-blue ramp.
pub fn ramp(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "rgb({},{},{})",
        lerp(247.0, 8.0),
        lerp(251.0, 48.0),
        lerp(255.0, 107.0)
    )
}

/// Heatmap of `values[row][col]` (`None` cells are left blank). Each cell shows its value
/// with `decimals` decimals and carries it in `data-value`; hovering shows
/// "row / column: value" under the chart.
#[component]
pub fn Heatmap(
    /// Element id of the chart (also the SVG export's file name).
    id: String,
    /// Caption.
    title: String,
    /// Row labels, one per row of `values`.
    rows: Vec<String>,
    /// Column labels.
    cols: Vec<String>,
    /// The matrix.
    values: Vec<Vec<Option<f64>>>,
    /// Decimals shown in cells.
    #[prop(default = 1)]
    decimals: usize,
) -> impl IntoView {
    let hover = RwSignal::new(None::<String>);
    let present = values.iter().flatten().flatten().copied();
    let (lo, hi) = present.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = if hi > lo { hi - lo } else { 1.0 };
    // Room on the right for the last column label, drawn rotated up and to the right.
    let width = MARGIN_LEFT + CELL * cols.len() as f64 + 70.0;
    let height = MARGIN_TOP + CELL * rows.len() as f64 + 10.0;
    let cells = values
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, v)| (i, j, *v)))
        .filter_map(|(i, j, v)| v.map(|v| (i, j, v)))
        .map(|(i, j, v)| {
            let t = (v - lo) / span;
            let x = MARGIN_LEFT + CELL * j as f64;
            let y = MARGIN_TOP + CELL * i as f64;
            let label = format!("{} / {}: {}", rows[i], cols[j], fmt(Some(v), 4));
            let text = fmt(Some(v), decimals);
            let text_color = if t > 0.55 { "white" } else { "black" };
            let hover_label = label.clone();
            view! {
                <g class="cell" data-row=i data-col=j data-value=v.to_string()
                    on:mouseenter=move |_| hover.set(Some(hover_label.clone()))
                    on:mouseleave=move |_| hover.set(None)>
                    <rect x=x y=y width=CELL height=CELL fill=ramp(t) stroke="white" />
                    <text x=x + CELL / 2.0 y=y + CELL / 2.0 + 4.0 text-anchor="middle"
                        font-size="11" fill=text_color>{text}</text>
                    <title>{label}</title>
                </g>
            }
        })
        .collect_view();
    let col_labels = cols
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let x = MARGIN_LEFT + CELL * j as f64 + CELL / 2.0;
            view! {
                <text x=x y=MARGIN_TOP - 6.0 font-size="11"
                    transform=format!("rotate(-45 {x} {})", MARGIN_TOP - 6.0)>{short(c)}</text>
            }
        })
        .collect_view();
    let row_labels = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            view! {
                <text x=MARGIN_LEFT - 6.0 y=MARGIN_TOP + CELL * i as f64 + CELL / 2.0 + 4.0
                    text-anchor="end" font-size="11">{short(r)}</text>
            }
        })
        .collect_view();
    let export_target = id.clone();
    view! {
        <figure class="chart heatmap" id=id>
            <figcaption>{title}" "<ExportSvg target=export_target /></figcaption>
            <svg width=width height=height viewBox=format!("0 0 {width} {height}")
                xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">
                {col_labels}
                {row_labels}
                {cells}
            </svg>
            <div class="hover">{move || hover.get().unwrap_or_else(|| "hover a cell".to_owned())}</div>
        </figure>
    }
}

/// A label cut to 16 characters so that long task names do not overflow the margins.
fn short(label: &str) -> String {
    if label.chars().count() > 16 {
        label.chars().take(15).chain(['…']).collect()
    } else {
        label.to_owned()
    }
}
