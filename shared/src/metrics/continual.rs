//! Continual-learning metrics over the score matrix.
//!
//! `R[i][j]` is the score (e.g. ROUGE-L × 100) on task `j` after training stage `i`, for
//! `T` stages and tasks indexed from 0 in training order. Only the lower triangle `j ≤ i`
//! exists: a task is evaluated from the stage that learns it on. The SuperNI-CL literature
//! (O-LoRA, SAPT; see `superni-cl15/README.md` of the benchmark data) and InsCL
//! (Wang et al., NAACL 2024) report:
//!
//! | metric | definition (0-based, `L = T − 1`) | function |
//! |---|---|---|
//! | AP | `mean_j R[L][j]` | [`average_performance`] |
//! | F.Ra | `mean_{j<L} (max_{j≤i<L} R[i][j] − R[L][j])` | [`forgetting`] |
//! | BWT | `mean_{j<L} (R[L][j] − R[j][j])` | [`backward_transfer`] |
//! | FWT | `mean_j (R[j][j] − zero_shot[j])` | [`forward_transfer`] |
//! | Relative Gain | `mean_{j≤i} R[i][j] / upper[j] × 100` | [`relative_gain_per_stage`] |
//! | forgetting rate | `(R[j][j] − R[L][j]) / R[j][j]` | [`forgetting_rate`] |

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors of the continual-learning metrics; each names the offending index and value.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// A score matrix needs at least one stage.
    #[error("score matrix has no stages")]
    Empty,
    /// Row `row` of a lower-triangular matrix must hold `row + 1` scores (square input:
    /// `T` scores).
    #[error("score matrix row {row} has {got} entries, expected {expected}")]
    RowLength {
        /// 0-based stage index.
        row: usize,
        /// Required number of entries.
        expected: usize,
        /// Number of entries given.
        got: usize,
    },
    /// Scores must be finite.
    #[error("score R[{row}][{column}] = {value} is not finite")]
    NonFiniteScore {
        /// 0-based stage index.
        row: usize,
        /// 0-based task index.
        column: usize,
        /// The offending value.
        value: f64,
    },
    /// A per-task vector (`zero_shot`, `upper`) must hold one value per task.
    #[error("{name} has {got} entries, expected {expected} (one per task)")]
    LengthMismatch {
        /// Which vector.
        name: &'static str,
        /// Number of tasks `T`.
        expected: usize,
        /// Number of entries given.
        got: usize,
    },
    /// Per-task baselines must be finite.
    #[error("{name}[{task}] = {value} is not finite")]
    NonFiniteBaseline {
        /// Which vector.
        name: &'static str,
        /// 0-based task index.
        task: usize,
        /// The offending value.
        value: f64,
    },
    /// Relative Gain divides by the upper bounds, which must be positive.
    #[error("upper bound upper[{task}] = {value} must be positive")]
    NonPositiveUpperBound {
        /// 0-based task index.
        task: usize,
        /// The offending value.
        value: f64,
    },
}

/// Lower-triangular score matrix `R[i][j]`, `0 ≤ j ≤ i < T`, all entries finite.
///
/// Serialised as its rows, a JSON array of `T` arrays where row `i` has `i + 1` numbers;
/// deserialisation validates like [`ScoreMatrix::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Vec<f64>>", into = "Vec<Vec<f64>>")]
pub struct ScoreMatrix {
    rows: Vec<Vec<f64>>,
}

impl ScoreMatrix {
    /// Builds the matrix from lower-triangular rows (row `i` holds `R[i][0..=i]`).
    ///
    /// # Errors
    /// [`MetricsError::Empty`] for no rows, [`MetricsError::RowLength`] for a row that does
    /// not have `i + 1` entries, [`MetricsError::NonFiniteScore`] for NaN or ±∞.
    pub fn new(rows: Vec<Vec<f64>>) -> Result<Self, MetricsError> {
        if rows.is_empty() {
            return Err(MetricsError::Empty);
        }
        for (row, values) in rows.iter().enumerate() {
            if values.len() != row + 1 {
                return Err(MetricsError::RowLength {
                    row,
                    expected: row + 1,
                    got: values.len(),
                });
            }
            if let Some((column, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite())
            {
                return Err(MetricsError::NonFiniteScore { row, column, value });
            }
        }
        Ok(Self { rows })
    }

    /// Builds the matrix from a square `T × T` matrix (e.g. a log that also evaluated tasks
    /// not yet trained), keeping the lower triangle; entries above the diagonal are dropped
    /// unchecked.
    ///
    /// # Errors
    /// As [`ScoreMatrix::new`], with every row required to have `T` entries.
    pub fn from_square(mut rows: Vec<Vec<f64>>) -> Result<Self, MetricsError> {
        let stages = rows.len();
        if let Some((row, got)) = rows
            .iter()
            .map(Vec::len)
            .enumerate()
            .find(|&(_, len)| len != stages)
        {
            return Err(MetricsError::RowLength {
                row,
                expected: stages,
                got,
            });
        }
        for (i, row) in rows.iter_mut().enumerate() {
            row.truncate(i + 1);
        }
        Self::new(rows)
    }

    /// Number of stages `T` (= number of tasks), at least 1.
    pub fn stages(&self) -> usize {
        self.rows.len()
    }

    /// `R[i][j]`, or `None` outside the lower triangle (`j > i` or `i ≥ T`).
    pub fn get(&self, i: usize, j: usize) -> Option<f64> {
        self.rows.get(i)?.get(j).copied()
    }

    /// The rows; row `i` holds `R[i][0..=i]`.
    pub fn rows(&self) -> &[Vec<f64>] {
        &self.rows
    }

    /// The last row `R[T−1][·]`: every task's score at the end of training.
    fn final_row(&self) -> &[f64] {
        self.rows
            .last()
            .expect("a validated matrix has at least one stage")
    }

    /// `R[j][j]`: each task's score right after it was learned.
    fn diagonal(&self) -> impl Iterator<Item = f64> + '_ {
        self.rows.iter().enumerate().map(|(j, row)| row[j])
    }
}

impl TryFrom<Vec<Vec<f64>>> for ScoreMatrix {
    type Error = MetricsError;

    fn try_from(rows: Vec<Vec<f64>>) -> Result<Self, Self::Error> {
        Self::new(rows)
    }
}

impl From<ScoreMatrix> for Vec<Vec<f64>> {
    fn from(matrix: ScoreMatrix) -> Self {
        matrix.rows
    }
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .into_iter()
        .fold((0.0, 0usize), |(sum, count), v| (sum + v, count + 1));
    sum / count as f64
}

/// Checks that a per-task vector has one finite value per task.
fn check_per_task(name: &'static str, values: &[f64], tasks: usize) -> Result<(), MetricsError> {
    if values.len() != tasks {
        return Err(MetricsError::LengthMismatch {
            name,
            expected: tasks,
            got: values.len(),
        });
    }
    match values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        Some((task, &value)) => Err(MetricsError::NonFiniteBaseline { name, task, value }),
        None => Ok(()),
    }
}

/// Average performance after the last stage, `AP = (1/T) Σ_j R[T−1][j]` (the "AP" of the
/// SuperNI-CL literature; Chaudhry et al. 2018's average accuracy `A_T`). Same unit as `R`.
pub fn average_performance(scores: &ScoreMatrix) -> f64 {
    mean(scores.final_row().iter().copied())
}

/// Average performance after every stage: element `i` is `(1/(i+1)) Σ_{j≤i} R[i][j]`, the
/// mean over the tasks seen so far (Chaudhry et al. 2018, `A_k`). Length `T`; the last
/// element is [`average_performance`].
pub fn average_performance_per_stage(scores: &ScoreMatrix) -> Vec<f64> {
    scores
        .rows()
        .iter()
        .map(|row| mean(row.iter().copied()))
        .collect()
}

/// Forgetting `F.Ra = (1/(T−1)) Σ_{j<T−1} (max_{j≤i<T−1} R[i][j] − R[T−1][j])`: how far each
/// earlier task fell from its best score before the last stage (the average forgetting of
/// Chaudhry et al., *Riemannian Walk*, ECCV 2018, after the last task; the SuperNI-CL README's
/// F.Ra). The last task cannot be forgotten yet and is excluded. Can be negative (a task improved at the last stage).
/// A single-stage matrix has nothing to forget: 0 by convention.
pub fn forgetting(scores: &ScoreMatrix) -> f64 {
    let last = scores.stages() - 1;
    if last == 0 {
        return 0.0;
    }
    let final_row = scores.final_row();
    mean((0..last).map(|j| {
        let best = scores.rows()[j..last]
            .iter()
            .map(|row| row[j])
            .fold(f64::NEG_INFINITY, f64::max);
        best - final_row[j]
    }))
}

/// Backward transfer `BWT = (1/(T−1)) Σ_{j<T−1} (R[T−1][j] − R[j][j])` (Lopez-Paz & Ranzato,
/// *Gradient Episodic Memory*, NeurIPS 2017, which averages over the `T − 1` earlier tasks).
/// Negative values mean forgetting. A single-stage matrix has no earlier
/// task: 0 by convention.
pub fn backward_transfer(scores: &ScoreMatrix) -> f64 {
    let last = scores.stages() - 1;
    if last == 0 {
        return 0.0;
    }
    let final_row = scores.final_row();
    mean(
        scores
            .diagonal()
            .take(last)
            .enumerate()
            .map(|(j, learned)| final_row[j] - learned),
    )
}

/// Forward transfer `FWT = (1/T) Σ_j (R[j][j] − zero_shot[j])`: the mean score on each task
/// right after learning it, minus the zero-shot score of the base model on that task (the
/// SuperNI-CL literature's `mean_j R[j][j] − zero-shot baseline`, `superni-cl15/README.md`).
///
/// # Errors
/// [`MetricsError::LengthMismatch`] unless `zero_shot` has `T` entries,
/// [`MetricsError::NonFiniteBaseline`] for a NaN/±∞ entry.
pub fn forward_transfer(scores: &ScoreMatrix, zero_shot: &[f64]) -> Result<f64, MetricsError> {
    check_per_task("zero_shot", zero_shot, scores.stages())?;
    Ok(mean(
        scores
            .diagonal()
            .zip(zero_shot)
            .map(|(learned, &base)| learned - base),
    ))
}

/// Relative Gain after every stage (InsCL, Wang et al. NAACL 2024, "Relative Gain"):
/// element `i` is `(1/(i+1)) Σ_{j≤i} R[i][j] / upper[j] × 100`, the mean share (in percent)
/// of each seen task's upper bound — its score when fine-tuned on that task alone — retained
/// after stage `i`. Length `T`; the last element is the final Relative Gain.
///
/// # Errors
/// [`MetricsError::LengthMismatch`] unless `upper` has `T` entries,
/// [`MetricsError::NonFiniteBaseline`] for NaN/±∞, [`MetricsError::NonPositiveUpperBound`]
/// for an entry ≤ 0.
pub fn relative_gain_per_stage(
    scores: &ScoreMatrix,
    upper: &[f64],
) -> Result<Vec<f64>, MetricsError> {
    check_per_task("upper", upper, scores.stages())?;
    if let Some((task, &value)) = upper.iter().enumerate().find(|(_, u)| **u <= 0.0) {
        return Err(MetricsError::NonPositiveUpperBound { task, value });
    }
    Ok(scores
        .rows()
        .iter()
        .map(|row| {
            mean(
                row.iter()
                    .zip(upper)
                    .map(|(score, bound)| score / bound * 100.0),
            )
        })
        .collect())
}

/// Per-task forgetting rate `(R[j][j] − R[T−1][j]) / R[j][j]` for every `j < T−1`: the
/// fraction of the score just after learning task `j` that was lost by the end (InsCL's
/// forgetting analysis). Length `T − 1` (empty for one stage). An entry is `None` when
/// `R[j][j] = 0`, where the ratio is undefined, so no NaN or ±∞ is ever returned.
pub fn forgetting_rate(scores: &ScoreMatrix) -> Vec<Option<f64>> {
    let last = scores.stages() - 1;
    let final_row = scores.final_row();
    scores
        .diagonal()
        .take(last)
        .enumerate()
        .map(|(j, learned)| (learned != 0.0).then(|| (learned - final_row[j]) / learned))
        .collect()
}

/// The headline continual-learning numbers of one run, in the unit of the score matrix
/// (Relative Gain in percent). `fwt` / `relative_gain` are present only when the zero-shot
/// scores / upper bounds were supplied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContinualSummary {
    /// [`average_performance`].
    pub ap: f64,
    /// [`forgetting`] (F.Ra).
    pub forgetting: f64,
    /// [`backward_transfer`].
    pub bwt: f64,
    /// [`forward_transfer`] against the zero-shot scores.
    pub fwt: Option<f64>,
    /// Final [`relative_gain_per_stage`] value (after the last stage).
    pub relative_gain: Option<f64>,
}

impl ContinualSummary {
    /// Computes every metric of a score matrix.
    ///
    /// # Errors
    /// Those of [`forward_transfer`] for `zero_shot` and of [`relative_gain_per_stage`] for
    /// `upper` (wrong length, non-finite or non-positive entries).
    pub fn from_scores(
        scores: &ScoreMatrix,
        zero_shot: Option<&[f64]>,
        upper: Option<&[f64]>,
    ) -> Result<Self, MetricsError> {
        Ok(Self {
            ap: average_performance(scores),
            forgetting: forgetting(scores),
            bwt: backward_transfer(scores),
            fwt: zero_shot
                .map(|base| forward_transfer(scores, base))
                .transpose()?,
            relative_gain: upper
                .map(|bounds| {
                    relative_gain_per_stage(scores, bounds).map(|gains| gains[gains.len() - 1])
                })
                .transpose()?,
        })
    }
}
