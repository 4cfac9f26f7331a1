//! The paired comparisons of a study: for every pair of arms (a, b) that differ in their method
//! or their strategy, and every metric, the mean of the differences a − b over matched (seed,
//! order) cells with its bootstrap 95% CI and the sign-flip p-value, as a table and as forest
//! plots (one per metric).

use std::sync::Arc;

use inscl::artifact::StudyFile;
use inscl::metrics::study::Paired;
use leptos::prelude::*;

use super::line_chart::ticks;
use super::{ExportCsv, ExportSvg, fmt};

const WIDTH: f64 = 360.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 10.0;
const ROW: f64 = 24.0;
const BOTTOM: f64 = 22.0;

/// One comparison of one metric: `a − b` and its statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedRow {
    /// The first arm's label.
    pub a: String,
    /// The label of the arm subtracted.
    pub b: String,
    /// Metric name ([`StudyFile::METRICS`]).
    pub metric: &'static str,
    /// The differences' statistics.
    pub paired: Paired,
}

impl PairedRow {
    /// "a − b".
    pub fn label(&self) -> String {
        format!("{} − {}", self.a, self.b)
    }

    /// The mean difference, `None` without matched cells.
    pub fn mean(&self) -> Option<f64> {
        Some(self.paired.difference.mean).filter(|m| m.is_finite())
    }
}

/// Every comparison of `study` for each metric in `metrics`, metric by metric, pairs in the
/// study's order; a pair without the metric is left out.
pub fn paired_rows(study: &StudyFile, metrics: &[&'static str]) -> Vec<PairedRow> {
    metrics
        .iter()
        .flat_map(|&metric| {
            study.comparisons.iter().filter_map(move |c| {
                Some(PairedRow {
                    a: c.a.clone(),
                    b: c.b.clone(),
                    metric,
                    paired: c.metrics.get(metric)?.clone(),
                })
            })
        })
        .collect()
}

/// The table of every comparison, with a CSV export.
#[component]
pub fn PairedTable(
    /// The study whose comparisons are listed.
    study: Arc<StudyFile>,
) -> impl IntoView {
    let rows = paired_rows(&study, &StudyFile::METRICS);
    let csv_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let ci = r.paired.bootstrap_ci95;
            let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
            vec![
                r.a.clone(),
                r.b.clone(),
                r.metric.to_owned(),
                r.paired.difference.n.to_string(),
                number(r.mean()),
                number(ci.map(|c| c[0])),
                number(ci.map(|c| c[1])),
                number(r.paired.p_value),
            ]
        })
        .collect();
    let csv = Callback::new(move |()| {
        crate::export::csv(
            &[
                "a",
                "b",
                "metric",
                "n",
                "mean_difference",
                "ci95_low",
                "ci95_high",
                "p_value",
            ],
            &csv_rows,
        )
    });
    let body = rows
        .into_iter()
        .map(|r| {
            let ci = r.paired.bootstrap_ci95;
            let ci_text = ci.map_or_else(
                || "–".to_owned(),
                |[low, high]| format!("[{}, {}]", fmt(Some(low), 2), fmt(Some(high), 2)),
            );
            view! {
                <tr class="pair" data-a=r.a.clone() data-b=r.b.clone() data-metric=r.metric>
                    <td>{r.label()}</td>
                    <td>{StudyFile::metric_label(r.metric)}</td>
                    <td class="n">{r.paired.difference.n}</td>
                    <td class="mean" data-value=r.mean().map(|v| v.to_string())>{fmt(r.mean(), 2)}</td>
                    <td class="ci" data-low=ci.map(|c| c[0].to_string()) data-high=ci.map(|c| c[1].to_string())>
                        {ci_text}
                    </td>
                    <td class="p" data-value=r.paired.p_value.map(|p| p.to_string())>{fmt(r.paired.p_value, 3)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div>
            <table id="study-paired">
                <thead><tr>
                    <th>"a − b"</th><th>"metric"</th><th>"n"</th><th>"mean difference"</th>
                    <th>"bootstrap 95% CI"</th><th>"sign-flip p"</th>
                </tr></thead>
                <tbody>{body}</tbody>
            </table>
            <ExportCsv filename=format!("{}-paired.csv", study.name) make=csv />
        </div>
    }
}

/// The comparisons of one metric as a forest plot (element id `study-forest-METRIC`): per
/// pair the mean difference and its bootstrap 95% CI around a line at 0, the p-value on the
/// right.
#[component]
pub fn ForestPlot(
    /// The study whose comparisons are drawn.
    study: Arc<StudyFile>,
    /// The metric's name ([`StudyFile::METRICS`]).
    metric: &'static str,
) -> impl IntoView {
    let rows = paired_rows(&study, &[metric]);
    let ends = rows.iter().flat_map(|r| {
        r.mean()
            .into_iter()
            .chain(r.paired.bootstrap_ci95.into_iter().flatten())
    });
    let (lo, hi) = ends.fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, hi + 1.0)
    };
    let plot_w = WIDTH - LEFT - RIGHT;
    let height = TOP + ROW * rows.len() as f64 + BOTTOM;
    let sx = move |v: f64| LEFT + (v - lo) / (hi - lo) * plot_w;
    let x_ticks = ticks(lo, hi, 2)
        .into_iter()
        .map(|v| {
            view! {
                <text x=sx(v) y=height - 6.0 font-size="10" text-anchor="middle">{fmt(Some(v), 1)}</text>
            }
        })
        .collect_view();
    let lines = rows
        .into_iter()
        .enumerate()
        .map(|(k, r)| {
            let y = TOP + ROW * k as f64 + ROW / 2.0;
            view! {
                <g class="pair" data-a=r.a.clone() data-b=r.b.clone() data-metric=metric>
                    <text x=LEFT - 6.0 y=y + 4.0 font-size="11" text-anchor="end">{r.label()}</text>
                    {r.paired.bootstrap_ci95.map(|[low, high]| view! {
                        <line class="ci" x1=sx(low) x2=sx(high) y1=y y2=y stroke="#222" stroke-width="1.5"
                            data-low=low.to_string() data-high=high.to_string() />
                    })}
                    {r.mean().map(|m| view! {
                        <rect class="mean" x=sx(m) - 4.0 y=y - 4.0 width="8" height="8" fill="#4e79a7"
                            data-value=m.to_string()>
                            <title>{format!("{}: {} (n = {})", r.label(), fmt(Some(m), 2), r.paired.difference.n)}</title>
                        </rect>
                    })}
                    <text x=WIDTH - RIGHT + 6.0 y=y + 4.0 font-size="10">{format!("p = {}", fmt(r.paired.p_value, 3))}</text>
                </g>
            }
        })
        .collect_view();
    let id = format!("study-forest-{metric}");
    let export_target = id.clone();
    view! {
        <figure class="chart forest-plot" id=id data-metric=metric>
            <figcaption>{format!("{}: a − b, bootstrap 95% CI", StudyFile::metric_label(metric))}" "<ExportSvg target=export_target /></figcaption>
            <svg width=WIDTH height=height viewBox=format!("0 0 {WIDTH} {height}")
                xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">
                <line x1=sx(0.0) x2=sx(0.0) y1=TOP y2=height - BOTTOM stroke="#999" stroke-dasharray="3 3" />
                {x_ticks}
                {lines}
            </svg>
        </figure>
    }
}
