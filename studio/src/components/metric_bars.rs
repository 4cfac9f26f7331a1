//! One metric of a study as an SVG chart: per arm (method and replay strategy) a bar at the
//! mean, an error bar over the 95% confidence interval and one dot per run, with n under the
//! bar.

use inscl::artifact::StudyFile;
use leptos::prelude::*;

use super::line_chart::ticks;
use super::{ExportSvg, fmt, palette};

const HEIGHT: f64 = 250.0;
const LEFT: f64 = 52.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;
const BAR: f64 = 36.0;
const GAP: f64 = 22.0;

/// One arm's bar: the summary of the metric and the values of its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct SpreadBar {
    /// The arm's label ([`inscl::artifact::StudyArm::label`]: `inscl`, `inscl+ewc`).
    pub arm: String,
    /// Runs with the metric (the summary's n).
    pub n: usize,
    /// Mean over the runs; `None` when no run has the metric.
    pub mean: Option<f64>,
    /// 95% confidence interval of the mean, `[low, high]`.
    pub ci95: Option<[f64; 2]>,
    /// `(run folder, value)` of every cell of the arm that has the metric.
    pub runs: Vec<(String, f64)>,
}

/// The bars of `metric`, one per arm in the study's order ([`StudyFile::arms`]).
pub fn spread_bars(study: &StudyFile, metric: &str) -> Vec<SpreadBar> {
    study
        .arms()
        .into_iter()
        .map(|arm| {
            let described = study
                .summaries
                .iter()
                .find(|s| s.arm() == arm)
                .and_then(|s| s.metrics.get(metric));
            let runs = study
                .cells
                .iter()
                .filter(|c| c.arm() == arm)
                .filter_map(|c| Some((c.run.clone(), *c.metrics.get(metric)?)))
                .collect();
            SpreadBar {
                arm: arm.label(),
                n: described.map_or(0, |d| d.n),
                mean: described.map(|d| d.mean).filter(|m| m.is_finite()),
                ci95: described.and_then(|d| d.ci95),
                runs,
            }
        })
        .collect()
}

/// The value range drawn: every mean, interval end and run value, and 0 (bars start there).
fn value_range(bars: &[SpreadBar]) -> (f64, f64) {
    let values = bars.iter().flat_map(|b| {
        b.mean
            .into_iter()
            .chain(b.ci95.into_iter().flatten())
            .chain(b.runs.iter().map(|r| r.1))
    });
    let (lo, hi) = values.fold((0.0_f64, 0.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
}

/// The chart of one metric of `study` (element id `study-bars-METRIC`).
#[component]
pub fn MetricBars(
    /// The study.
    study: std::sync::Arc<StudyFile>,
    /// Metric name ([`StudyFile::METRICS`]).
    metric: &'static str,
) -> impl IntoView {
    let bars = spread_bars(&study, metric);
    let (lo, hi) = value_range(&bars);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let width = LEFT + GAP + (BAR + GAP) * bars.len() as f64;
    let sy = move |v: f64| TOP + plot_h - (v - lo) / (hi - lo) * plot_h;
    let y_ticks = ticks(lo, hi, 4)
        .into_iter()
        .map(|y| {
            view! {
                <g>
                    <line x1=LEFT x2=width y1=sy(y) y2=sy(y) stroke="#eee" />
                    <text x=LEFT - 4.0 y=sy(y) + 3.0 font-size="10" text-anchor="end">{fmt(Some(y), 1)}</text>
                </g>
            }
        })
        .collect_view();
    let columns = bars
        .into_iter()
        .enumerate()
        .map(|(k, bar)| {
            let x = LEFT + GAP + (BAR + GAP) * k as f64;
            let mid = x + BAR / 2.0;
            let arm = bar.arm.clone();
            view! {
                <g class="arm" data-arm=arm.clone() data-metric=metric data-n=bar.n>
                    <MeanBar bar=bar.clone() x=x zero=sy(0.0) sy=sy color=palette(k) />
                    <RunDots runs=bar.runs mid=mid sy=sy />
                    <text x=mid y=HEIGHT - BOTTOM + 14.0 font-size="10" text-anchor="middle">{arm.clone()}</text>
                    <text class="n" x=mid y=HEIGHT - BOTTOM + 27.0 font-size="10" text-anchor="middle"
                        fill="#555">{format!("n = {}", bar.n)}</text>
                </g>
            }
        })
        .collect_view();
    let id = format!("study-bars-{metric}");
    let export_target = id.clone();
    view! {
        <figure class="chart metric-bars" id=id data-metric=metric>
            <figcaption>{format!("{}: mean, 95% CI, runs", StudyFile::metric_label(metric))}" "<ExportSvg target=export_target /></figcaption>
            <svg width=width height=HEIGHT viewBox=format!("0 0 {width} {HEIGHT}")
                xmlns="http://www.w3.org/2000/svg" font-family="sans-serif">
                {y_ticks}
                <line x1=LEFT x2=LEFT y1=TOP y2=TOP + plot_h stroke="#333" />
                <line x1=LEFT x2=width y1=sy(0.0) y2=sy(0.0) stroke="#333" />
                {columns}
            </svg>
        </figure>
    }
}

/// The bar from 0 to the mean and the error bar over the interval (nothing without a mean).
#[component]
fn MeanBar(
    bar: SpreadBar,
    /// Left edge of the bar.
    x: f64,
    /// Height of the value 0.
    zero: f64,
    /// Value → height.
    sy: impl Fn(f64) -> f64 + 'static,
    color: &'static str,
) -> Option<impl IntoView> {
    let mid = x + BAR / 2.0;
    let mean = bar.mean?;
    let error_bar = bar.ci95.map(|[low, high]| {
        let cap = |v: f64| view! { <line x1=mid - 6.0 x2=mid + 6.0 y1=sy(v) y2=sy(v) stroke="#222" /> };
        view! {
            <g class="ci" data-low=low.to_string() data-high=high.to_string()>
                <line x1=mid x2=mid y1=sy(low) y2=sy(high) stroke="#222" stroke-width="1.5" />
                {cap(low)}
                {cap(high)}
                <title>{format!("{}: 95% CI [{}, {}]", bar.arm, fmt(Some(low), 2), fmt(Some(high), 2))}</title>
            </g>
        }
    });
    let top = sy(mean).min(zero);
    Some(view! {
        <rect class="mean" x=x y=top width=BAR height=(sy(mean) - zero).abs() fill=color
            fill-opacity="0.55" data-value=mean.to_string()>
            <title>{format!("{}: mean {} (n = {})", bar.arm, fmt(Some(mean), 2), bar.n)}</title>
        </rect>
        {error_bar}
    })
}

/// One dot per run, spread across the bar so that equal values stay apart.
#[component]
fn RunDots(
    runs: Vec<(String, f64)>,
    /// Centre of the bar.
    mid: f64,
    /// Value → height.
    sy: impl Fn(f64) -> f64 + 'static,
) -> impl IntoView {
    let count = runs.len();
    runs.into_iter()
        .enumerate()
        .map(|(i, (run, value))| {
            let offset = if count > 1 {
                (i as f64 / (count - 1) as f64 - 0.5) * BAR * 0.6
            } else {
                0.0
            };
            view! {
                <circle class="run" cx=mid + offset cy=sy(value) r="3" fill="#222" fill-opacity="0.7"
                    data-run=run.clone() data-value=value.to_string()>
                    <title>{format!("{run}: {}", fmt(Some(value), 2))}</title>
                </circle>
            }
        })
        .collect_view()
}
