//! `study.json` from the finished cells, and its table.

use std::collections::BTreeMap;
use std::path::Path;

use inscl::artifact::{
    self, ArmSummary, PairedComparison, RunResults, SCHEMA_VERSION, ScoreCurves, StudyArm,
    StudyCell, StudyFile,
};
use inscl::metrics::ContinualSummary;
use inscl::metrics::study::{Described, compare_paired, describe};
use sha2::{Digest, Sha256};

use crate::config::RunStrategy;
use crate::run::RunFolder;

use super::{Cell, CellState, StudyConfig, StudyError, cell_folder, cell_state};

/// `study.json` from the finished cells in `folder` (deterministic: the same run folders give
/// the same file). Unfinished cells are left out.
///
/// # Errors
/// A cell's artifact that cannot be read, naming the file.
pub fn summarize(study: &StudyConfig, folder: &Path) -> Result<StudyFile, StudyError> {
    let finished = finished_cells(study, folder)?;
    let study_cells = study_cells(&finished);
    let mut file = StudyFile {
        schema_version: SCHEMA_VERSION,
        name: study.name.clone(),
        strategies: study
            .strategies
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        methods: study
            .method_axis()?
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
        seeds: study.seeds.clone(),
        orders: study.orders.clone(),
        task_orders: study
            .task_orders
            .iter()
            .filter(|(order, _)| study.orders.contains(order))
            .map(|(order, tasks)| (order.clone(), tasks.clone()))
            .collect(),
        settings: study.set.clone(),
        cells: study_cells,
        summaries: Vec::new(),
        comparisons: Vec::new(),
        curves: Vec::new(),
    };
    let arms = file.arms();
    let summaries = arm_summaries(&file, &arms);
    let comparisons = paired_comparisons(&file, &arms);
    let curves = arm_curves(study, &arms, &finished);
    file.summaries = summaries;
    file.comparisons = comparisons;
    file.curves = curves;
    Ok(file)
}

/// The finished cells of `study` in `folder`, with their results, in cell order.
fn finished_cells(
    study: &StudyConfig,
    folder: &Path,
) -> Result<Vec<(Cell, RunResults)>, StudyError> {
    let cells = study.cells()?;
    let mut finished: Vec<(Cell, RunResults)> = Vec::new();
    for cell in cells {
        let config = study.cell_config(&cell)?;
        let run_folder = cell_folder(folder, &cell);
        if cell_state(&cell, &config, &run_folder)? == CellState::Finished {
            let results: RunResults = artifact::read(&RunFolder::new(&run_folder).results())?;
            finished.push((cell, results));
        }
    }
    Ok(finished)
}

/// The study's cells (every finished cell but the `single` runs, which only give RG's upper
/// bounds) with their metrics.
fn study_cells(finished: &[(Cell, RunResults)]) -> Vec<StudyCell> {
    // Relative Gain's upper bounds: the diagonal of each order's `single` run.
    let upper: BTreeMap<&str, Vec<f64>> = finished
        .iter()
        .filter(|(cell, _)| cell.strategy == RunStrategy::Single)
        .filter_map(|(cell, results)| {
            results
                .upper_bounds
                .clone()
                .map(|bounds| (cell.order.as_str(), bounds))
        })
        .collect();
    finished
        .iter()
        .filter(|(cell, _)| cell.strategy != RunStrategy::Single)
        .map(|(cell, results)| StudyCell {
            strategy: cell.strategy.to_string(),
            method: cell.method.to_string(),
            order: cell.order.clone(),
            seed: cell.seed,
            run: format!("runs/{}", cell.name()),
            metrics: cell_metrics(results, upper.get(cell.order.as_str())),
        })
        .collect()
}

/// Per arm, each metric's n, mean, sd and t-interval over the arm's cells.
fn arm_summaries(file: &StudyFile, arms: &[StudyArm]) -> Vec<ArmSummary> {
    let values = |arm: &StudyArm, metric: &str| -> Vec<f64> {
        file.cells
            .iter()
            .filter(|c| c.arm() == *arm)
            .filter_map(|c| c.metrics.get(metric).copied())
            .collect()
    };
    arms.iter()
        .map(|arm| ArmSummary {
            strategy: arm.strategy.clone(),
            method: arm.method.clone(),
            metrics: StudyFile::METRICS
                .iter()
                .map(|&m| (m.to_owned(), describe(&values(arm, m))))
                .filter(|(_, d)| d.n > 0)
                .collect(),
        })
        .collect()
}

/// Per pair of arms that differ in one factor, the paired differences of each metric.
fn paired_comparisons(file: &StudyFile, arms: &[StudyArm]) -> Vec<PairedComparison> {
    let mut comparisons = Vec::new();
    for (i, a) in arms.iter().enumerate() {
        // Pairs that differ in one factor: a difference of two changes names neither.
        for b in arms[i + 1..]
            .iter()
            .filter(|b| b.method == a.method || b.strategy == a.strategy)
        {
            let (a_label, b_label) = (a.label(), b.label());
            comparisons.push(PairedComparison {
                metrics: StudyFile::METRICS
                    .iter()
                    .filter_map(|&metric| {
                        let (xs, ys) = matched(&file.cells, a, b, metric);
                        (!xs.is_empty()).then(|| {
                            let seed = bootstrap_seed(&a_label, &b_label, metric);
                            (metric.to_owned(), compare_paired(&xs, &ys, seed))
                        })
                    })
                    .collect(),
                a: a_label,
                b: b_label,
            });
        }
    }
    comparisons
}

/// Per arm and order, the R matrix averaged over the seeds.
fn arm_curves(
    study: &StudyConfig,
    arms: &[StudyArm],
    finished: &[(Cell, RunResults)],
) -> Vec<ScoreCurves> {
    arms.iter()
        .flat_map(|arm| {
            study.orders.iter().filter_map(|order| {
                let runs: Vec<&RunResults> = finished
                    .iter()
                    .filter(|(c, _)| c.arm() == *arm && c.order == *order)
                    .map(|(_, r)| r)
                    .collect();
                score_curves(arm, order, &runs)
            })
        })
        .collect()
}

/// A run's metrics by name; RG from `upper` (the order's `single` diagonal) when every bound
/// is positive, as `trainer run` does.
fn cell_metrics(results: &RunResults, upper: Option<&Vec<f64>>) -> BTreeMap<String, f64> {
    let s = &results.summary;
    let relative_gain = upper
        .filter(|u| u.len() == results.tasks.len() && u.iter().all(|&v| v > 0.0))
        .and_then(|u| {
            ContinualSummary::from_scores(&results.scores, results.zero_shot.as_deref(), Some(u))
                .ok()
        })
        .and_then(|summary| summary.relative_gain);
    [
        ("ap", Some(s.ap)),
        ("forgetting", Some(s.forgetting)),
        ("bwt", Some(s.bwt)),
        ("fwt", s.fwt),
        ("relative_gain", relative_gain),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
    .collect()
}

/// The values of `metric` of arms `a` and `b` over the (seed, order) cells both have, in cell
/// order.
fn matched(cells: &[StudyCell], a: &StudyArm, b: &StudyArm, metric: &str) -> (Vec<f64>, Vec<f64>) {
    cells
        .iter()
        .filter(|x| x.arm() == *a)
        .filter_map(|x| {
            let y = cells
                .iter()
                .find(|y| y.arm() == *b && y.seed == x.seed && y.order == x.order)?;
            Some((*x.metrics.get(metric)?, *y.metrics.get(metric)?))
        })
        .unzip()
}

/// The bootstrap seed of one comparison: from the names, so that it is the same in every
/// study that compares them.
fn bootstrap_seed(a: &str, b: &str, metric: &str) -> u64 {
    let digest = Sha256::digest(format!("bootstrap/{a}/{b}/{metric}").as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The R matrix of `runs` (same arm and order) averaged over them, with its sd.
fn score_curves(arm: &StudyArm, order: &str, runs: &[&RunResults]) -> Option<ScoreCurves> {
    let first = runs.first()?;
    let rows = first.scores.rows().len();
    let complete: Vec<&&RunResults> = runs
        .iter()
        .filter(|r| r.tasks == first.tasks && r.scores.rows().len() == rows)
        .collect();
    // Each entry of R described once over the runs; mean and sd are read off it.
    let described: Vec<Vec<Described>> = first
        .scores
        .rows()
        .iter()
        .enumerate()
        .map(|(i, row)| {
            (0..row.len())
                .map(|j| {
                    let values: Vec<f64> = complete.iter().map(|r| r.scores.rows()[i][j]).collect();
                    describe(&values)
                })
                .collect()
        })
        .collect();
    let table = |f: fn(&Described) -> f64| -> Vec<Vec<f64>> {
        described
            .iter()
            .map(|row| row.iter().map(f).collect())
            .collect()
    };
    Some(ScoreCurves {
        strategy: arm.strategy.clone(),
        method: arm.method.clone(),
        order: order.to_owned(),
        tasks: first.tasks.clone(),
        n: complete.len(),
        mean: table(|d| d.mean),
        sd: table(|d| d.sd.unwrap_or(0.0)),
    })
}

/// The study table: per arm mean ± sd [95% CI] of every metric, then every paired comparison
/// with its bootstrap CI and p-value.
pub fn format_study(study: &StudyFile) -> String {
    let label = StudyFile::metric_label;
    let methods = if study.methods.len() > 1 {
        format!("{} methods × ", study.methods.len())
    } else {
        String::new()
    };
    let mut out = format!(
        "study {}: {methods}{} strategies × {} seeds × {} orders ({} finished runs)\n",
        study.name,
        study.strategies.len(),
        study.seeds.len(),
        study.orders.len(),
        study.cells.len()
    );
    let arm_width = study
        .summaries
        .iter()
        .map(|s| s.arm().label().chars().count())
        .chain(["strategy".len()])
        .max()
        .unwrap_or_default();
    let pair_width = study
        .comparisons
        .iter()
        .map(|c| c.a.chars().count() + c.b.chars().count() + 3)
        .chain(["paired (a - b)".len()])
        .max()
        .unwrap_or_default();
    let interval =
        |ci: Option<[f64; 2]>| ci.map_or_else(|| "-".into(), |[l, h]| format!("[{l:.2}, {h:.2}]"));
    out.push_str(&format!(
        "{:<arm_width$} {:<5} {:>3} {:>8} {:>7} {:>19}\n",
        "strategy", "metric", "n", "mean", "sd", "95% CI"
    ));
    for summary in &study.summaries {
        for metric in StudyFile::METRICS {
            let Some(d) = summary.metrics.get(metric) else {
                continue;
            };
            out.push_str(&format!(
                "{:<arm_width$} {:<5} {:>3} {:>8.2} {:>7} {:>19}\n",
                summary.arm().label(),
                label(metric),
                d.n,
                d.mean,
                d.sd.map_or_else(|| "-".into(), |s| format!("{s:.2}")),
                interval(d.ci95)
            ));
        }
    }
    out.push_str(&format!(
        "\n{:<pair_width$} {:<5} {:>3} {:>8} {:>19} {:>8}\n",
        "paired (a - b)", "metric", "n", "mean", "bootstrap 95% CI", "p"
    ));
    for comparison in &study.comparisons {
        for metric in StudyFile::METRICS {
            let Some(p) = comparison.metrics.get(metric) else {
                continue;
            };
            out.push_str(&format!(
                "{:<pair_width$} {:<5} {:>3} {:>8.2} {:>19} {:>8}\n",
                format!("{} - {}", comparison.a, comparison.b),
                label(metric),
                p.difference.n,
                p.difference.mean,
                interval(p.bootstrap_ci95),
                p.p_value.map_or_else(|| "-".into(), |v| format!("{v:.4}"))
            ));
        }
    }
    out
}
