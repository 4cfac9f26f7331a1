//! Overlaid line series, optionally with a band around each, as an SVG chart with axes and a
//! legend.

use leptos::prelude::*;

use super::{ExportSvg, palette};

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

/// One named line: `(x, y)` points in drawing order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// `(low, high)` at each point, shaded around the line (e.g. mean ± sd); empty for none.
    pub band: Vec<(f64, f64)>,
}

impl Series {
    /// The band as a closed outline: the highs left to right, then the lows back.
    fn band_outline(&self) -> Vec<(f64, f64)> {
        let xs = self.points.iter().map(|p| p.0);
        let highs = xs.clone().zip(&self.band).map(|(x, b)| (x, b.1));
        let lows = xs.zip(&self.band).map(|(x, b)| (x, b.0)).rev();
        highs.chain(lows.collect::<Vec<_>>()).collect()
    }
}

/// Tick values over `[lo, hi]`: every integer when the axis spans at most 12 integers
/// (stages, tasks), else `count + 1` evenly spaced values.
pub(super) fn ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if lo.fract() == 0.0 && hi.fract() == 0.0 && hi - lo <= 12.0 {
        return (lo as i64..=hi as i64).map(|v| v as f64).collect();
    }
    (0..=count)
        .map(|k| lo + (hi - lo) * k as f64 / count as f64)
        .collect()
}

/// Line chart of `series` sharing one x and one y axis; points are marked (with their value
/// on hover, and in `data-x` / `data-y`, `data-low` / `data-high` with a band) when a series
/// has at most 60 of them.
#[component]
pub fn LineChart(
    /// Element id (also the SVG export's file name).
    id: String,
    /// Caption.
    title: String,
    /// The x axis title.
    x_label: String,
    /// The y axis title.
    y_label: String,
    /// The lines.
    series: Vec<Series>,
) -> impl IntoView {
    let all = series
        .iter()
        .flat_map(|s| s.points.iter().copied().chain(s.band_outline()));
    let (x0, x1, y0, y1) = all.fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), (x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    let empty = !x0.is_finite();
    let (x0, x1) = if empty {
        (0.0, 1.0)
    } else {
        (x0, if x1 > x0 { x1 } else { x0 + 1.0 })
    };
    let (y0, y1) = if empty {
        (0.0, 1.0)
    } else {
        (y0, if y1 > y0 { y1 } else { y0 + 1.0 })
    };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = move |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
    let sy = move |y: f64| TOP + plot_h - (y - y0) / (y1 - y0) * plot_h;
    let lines = series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let color = palette(k);
            let svg_points = |points: &[(f64, f64)]| {
                points
                    .iter()
                    .map(|&(x, y)| format!("{:.2},{:.2}", sx(x), sy(y)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let band = (!s.band.is_empty()).then(|| {
                view! {
                    <polygon class="band" points=svg_points(&s.band_outline()) fill=color
                        fill-opacity="0.18" stroke="none" />
                }
            });
            let marks = (s.points.len() <= 60).then(|| {
                s.points
                    .iter()
                    .enumerate()
                    .map(|(i, &(x, y))| {
                        let (low, high) = s.band.get(i).copied().unzip();
                        view! {
                            <circle cx=sx(x) cy=sy(y) r="3" fill=color data-x=x.to_string()
                                data-y=y.to_string() data-low=low.map(|v| v.to_string())
                                data-high=high.map(|v| v.to_string())>
                                <title>{format!("{}: ({x}, {y:.3})", s.name)}</title>
                            </circle>
                        }
                    })
                    .collect_view()
            });
            view! {
                <g class="series" data-name=s.name.clone()>
                    {band}
                    <polyline points=svg_points(&s.points) fill="none" stroke=color stroke-width="2" />
                    {marks}
                </g>
            }
        })
        .collect_view();
    let legend = series
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let y = TOP + 14.0 * k as f64 + 8.0;
            view! {
                <g>
                    <rect x=WIDTH - RIGHT + 10.0 y=y - 8.0 width="10" height="10" fill=palette(k) />
                    <text x=WIDTH - RIGHT + 24.0 y=y + 1.0 font-size="11">{s.name.clone()}</text>
                </g>
            }
        })
        .collect_view();
    let x_ticks = ticks(x0, x1, 5)
        .into_iter()
        .map(|x| {
            view! {
                <text x=sx(x) y=HEIGHT - BOTTOM + 14.0 font-size="10" text-anchor="middle">
                    {format!("{x:.0}")}
                </text>
            }
        })
        .collect_view();
    let y_ticks = ticks(y0, y1, 4)
        .into_iter()
        .map(|y| {
            view! {
                <g>
                    <line x1=LEFT x2=LEFT + plot_w y1=sy(y) y2=sy(y) stroke="#eee" />
                    <text x=LEFT - 4.0 y=sy(y) + 3.0 font-size="10" text-anchor="end">
                        {format!("{y:.2}")}
                    </text>
                </g>
            }
        })
        .collect_view();
    let export_target = id.clone();
    view! {
        <figure class="chart line-chart" id=id>
            <figcaption>{title}" "<ExportSvg target=export_target /></figcaption>
            <svg width=WIDTH height=HEIGHT viewBox=format!("0 0 {WIDTH} {HEIGHT}")
                xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">
                {y_ticks}
                <line x1=LEFT x2=LEFT y1=TOP y2=TOP + plot_h stroke="#333" />
                <line x1=LEFT x2=LEFT + plot_w y1=TOP + plot_h y2=TOP + plot_h stroke="#333" />
                {x_ticks}
                <text x=LEFT + plot_w / 2.0 y=HEIGHT - 6.0 font-size="11" text-anchor="middle">{x_label}</text>
                <text x="12" y=TOP + plot_h / 2.0 font-size="11" text-anchor="middle"
                    transform=format!("rotate(-90 12 {})", TOP + plot_h / 2.0)>{y_label}</text>
                {lines}
                {legend}
            </svg>
        </figure>
    }
}
