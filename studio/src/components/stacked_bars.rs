//! Stacked bars as an SVG chart: one bar per group, one coloured segment per part.

use leptos::prelude::*;

use super::{ExportSvg, palette};

const HEIGHT: f64 = 280.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;
const BAR: f64 = 28.0;
const GAP: f64 = 12.0;

/// One bar: its label and `(part, value)` segments stacked bottom-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Label under the bar.
    pub label: String,
    /// Segments; a part's colour is fixed by its first appearance over all bars.
    pub segments: Vec<(String, f64)>,
}

/// Stacked bar chart; hovering a segment shows its part and value.
#[component]
pub fn StackedBars(
    /// Element id (also the SVG export's file name).
    id: String,
    /// Caption.
    title: String,
    /// The bars.
    bars: Vec<Bar>,
) -> impl IntoView {
    let mut parts: Vec<String> = Vec::new();
    for (part, _) in bars.iter().flat_map(|b| &b.segments) {
        if !parts.contains(part) {
            parts.push(part.clone());
        }
    }
    let top = bars
        .iter()
        .map(|b| b.segments.iter().map(|s| s.1).sum::<f64>())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let width = LEFT + (BAR + GAP) * bars.len() as f64 + 170.0;
    let scale = move |v: f64| v / top * plot_h;
    let columns = bars
        .iter()
        .enumerate()
        .map(|(k, bar)| {
            let x = LEFT + GAP + (BAR + GAP) * k as f64;
            let mut base = TOP + plot_h;
            let segments = bar
                .segments
                .iter()
                .map(|(part, value)| {
                    let h = scale(*value);
                    base -= h;
                    let color = palette(parts.iter().position(|p| p == part).unwrap_or(0));
                    view! {
                        <rect class="segment" x=x y=base width=BAR height=h fill=color
                            data-part=part.clone() data-value=value.to_string()>
                            <title>{format!("{}: {part} = {value}", bar.label)}</title>
                        </rect>
                    }
                })
                .collect_view();
            view! {
                <g class="bar">
                    {segments}
                    <text x=x + BAR / 2.0 y=HEIGHT - BOTTOM + 14.0 font-size="10"
                        text-anchor="middle">{bar.label.clone()}</text>
                </g>
            }
        })
        .collect_view();
    let legend = parts
        .iter()
        .enumerate()
        .map(|(k, part)| {
            let x = width - 160.0;
            let y = TOP + 14.0 * k as f64 + 8.0;
            view! {
                <g>
                    <rect x=x y=y - 8.0 width="10" height="10" fill=palette(k) />
                    <text x=x + 14.0 y=y + 1.0 font-size="11">{part.clone()}</text>
                </g>
            }
        })
        .collect_view();
    let export_target = id.clone();
    view! {
        <figure class="chart stacked-bars" id=id>
            <figcaption>{title}" "<ExportSvg target=export_target /></figcaption>
            <svg width=width height=HEIGHT viewBox=format!("0 0 {width} {HEIGHT}")
                xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">
                <line x1=LEFT x2=LEFT y1=TOP y2=TOP + plot_h stroke="#333" />
                <text x=LEFT - 4.0 y=TOP + 4.0 font-size="10" text-anchor="end">{format!("{top:.0}")}</text>
                <text x=LEFT - 4.0 y=TOP + plot_h font-size="10" text-anchor="end">"0"</text>
                {columns}
                {legend}
            </svg>
        </figure>
    }
}
