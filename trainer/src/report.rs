//! Text reports: the R matrix and summary of one run, and `trainer compare`'s table of runs.

use std::fmt::Write;
use std::path::Path;

use inscl::artifact::{self, RunManifest, RunResults};
use inscl::metrics::continual::relative_gain_per_stage;

use crate::run::RunFolder;

/// The R matrix (rows: after stage i; columns: tasks) and AP / F.Ra / BWT / FWT / RG.
pub fn format_results(results: &RunResults) -> String {
    let mut out = String::new();
    let width = 8;
    let _ = writeln!(
        out,
        "R (ROUGE-L x100; row i = after stage i, column j = task j):"
    );
    for (j, task) in results.tasks.iter().enumerate() {
        let _ = writeln!(out, "  T{:<2} {task}", j + 1);
    }
    let _ = write!(out, "{:>10}", "");
    for j in 0..results.tasks.len() {
        let _ = write!(out, "{:>width$}", format!("T{}", j + 1));
    }
    out.push('\n');
    if let Some(zero) = &results.zero_shot {
        let _ = write!(out, "{:>10}", "zero-shot");
        for value in zero {
            let _ = write!(out, "{value:>width$.2}");
        }
        out.push('\n');
    }
    for (i, row) in results.scores.rows().iter().enumerate() {
        let _ = write!(out, "{:>10}", format!("stage {}", i + 1));
        for value in row {
            let _ = write!(out, "{value:>width$.2}");
        }
        out.push('\n');
    }
    let s = &results.summary;
    let _ = write!(
        out,
        "AP {:.2}  F.Ra {:.2}  BWT {:.2}  FWT {}  RG {}",
        s.ap,
        s.forgetting,
        s.bwt,
        optional(s.fwt),
        optional(s.relative_gain)
    );
    out
}

fn optional(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// One row of [`compare`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    /// The run folder name.
    pub run: String,
    /// The replay strategy.
    pub strategy: String,
    /// The continual-learning method (`seq`, `ewc`, ...).
    pub method: String,
    /// Replayed instances per previous stage α.
    pub alpha: usize,
    /// The run seed.
    pub seed: u64,
    /// Rows of the R matrix / tasks (a `multitask` run's matrix is square after its stage).
    pub stages: String,
    /// Average performance AP (ROUGE-L × 100).
    pub ap: f64,
    /// `None` for the non-sequential references (`multitask`, `single`).
    pub forgetting: Option<f64>,
    /// Backward transfer; `None` for the non-sequential references.
    pub bwt: Option<f64>,
    /// Forward transfer; `None` without zero-shot scores or for the references.
    pub fwt: Option<f64>,
    /// From the run's own results, or from a `single` run among the compared ones.
    pub relative_gain: Option<f64>,
}

/// Reads the summaries of `folders`. Relative Gain comes from each run's own results or,
/// when a complete `single` run over the same tasks is among `folders`, from its diagonal.
///
/// # Errors
/// Artifact errors naming the file.
pub fn compare(folders: &[impl AsRef<Path>]) -> Result<Vec<CompareRow>, artifact::ArtifactError> {
    let runs: Vec<(String, RunManifest, RunResults)> = folders
        .iter()
        .map(|folder| {
            let folder = RunFolder::new(folder.as_ref());
            Ok((
                folder.root().display().to_string(),
                artifact::read::<RunManifest>(&folder.manifest())?,
                artifact::read::<RunResults>(&folder.results())?,
            ))
        })
        .collect::<Result<_, artifact::ArtifactError>>()?;
    let single_bounds: Vec<(Vec<String>, Vec<f64>)> = runs
        .iter()
        .filter(|(_, m, r)| m.replay.strategy == "single" && r.scores.stages() == m.tasks.len())
        .map(|(_, _, r)| {
            (
                r.tasks.clone(),
                (0..r.tasks.len())
                    .map(|j| r.scores.get(j, j).unwrap_or(0.0))
                    .collect(),
            )
        })
        .collect();
    Ok(runs
        .into_iter()
        .map(|(run, manifest, results)| {
            let sequential = manifest.replay.replay_strategy().is_some();
            let relative_gain = results.summary.relative_gain.or_else(|| {
                single_bounds
                    .iter()
                    .find(|(tasks, _)| tasks.starts_with(&results.tasks))
                    .and_then(|(_, bounds)| {
                        relative_gain_per_stage(&results.scores, &bounds[..results.tasks.len()])
                            .ok()
                    })
                    .and_then(|gains| gains.last().copied())
            });
            CompareRow {
                run,
                strategy: manifest.replay.strategy.clone(),
                method: manifest.method().to_owned(),
                alpha: manifest.replay.alpha,
                seed: manifest.replay.seed,
                stages: format!("{}/{}", results.scores.stages(), manifest.tasks.len()),
                ap: results.summary.ap,
                forgetting: sequential.then_some(results.summary.forgetting),
                bwt: sequential.then_some(results.summary.bwt),
                fwt: results.summary.fwt.filter(|_| sequential),
                relative_gain,
            }
        })
        .collect())
}

/// [`compare`]'s rows as an aligned text table.
pub fn format_compare(rows: &[CompareRow]) -> String {
    let header = [
        "run", "strategy", "method", "alpha", "seed", "stages", "AP", "F.Ra", "BWT", "FWT", "RG",
    ];
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            [
                r.run.clone(),
                r.strategy.clone(),
                r.method.clone(),
                r.alpha.to_string(),
                r.seed.to_string(),
                r.stages.clone(),
                format!("{:.2}", r.ap),
                optional(r.forgetting),
                optional(r.bwt),
                optional(r.fwt),
                optional(r.relative_gain),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                let _ = write!(out, "{cell:<w$}", w = widths[c]);
            } else {
                let _ = write!(out, "  {cell:>w$}", w = widths[c]);
            }
        }
        out.push('\n');
    };
    line(&mut out, &header);
    for row in &cells {
        line(
            &mut out,
            &row.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }
    out
}
