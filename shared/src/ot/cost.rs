//! Point clouds and ground-cost matrices.
//!
//! The formulas mirror POT's `ot.dist` (`ot/utils.py`, POT 0.9.7) computed in float64:
//!
//! - `sqeuclidean`: `‖x‖² + ‖y‖² − 2⟨x, y⟩`, clamped at 0 (POT `euclidean_distances(squared=True)`);
//! - `euclidean`: the square root of the above;
//! - `cosine`: `1 − ⟨x, y⟩ / ‖x‖ / ‖y‖`.
//!
//! The cross products `⟨x_i, y_j⟩` are one float64 GEMM per block of 256 source points, on
//! float64 copies of the (float32) coordinates, the blocks in parallel under the `parallel`
//! feature on native targets. The GEMM is `matrixmultiply::dgemm` on native targets (runtime
//! dispatch to its AVX2/FMA or AVX-512 kernels) and `gemm::gemm` on wasm32, whose simd128
//! kernels matrixmultiply lacks for float64 (`tools/bench/RESULTS.md`). Neither splits the sum
//! over `d` by block or thread, so the result does not depend on the thread count.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::OtError;

/// A borrowed cloud of `rows()` points in `dim()` dimensions, stored row-major as `f32`.
///
/// Invariants checked by [`PointCloud::new`]: at least one point, `dim ≥ 1`, the buffer
/// splits into whole rows and every coordinate is finite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointCloud<'a> {
    data: &'a [f32],
    dim: usize,
}

impl<'a> PointCloud<'a> {
    /// Wraps `data` (length `rows × dim`, row-major) as a cloud of `dim`-dimensional points.
    ///
    /// # Errors
    /// [`OtError::ZeroDimension`] if `dim == 0`, [`OtError::EmptyCloud`] if `data` is empty,
    /// [`OtError::RaggedData`] if `data.len()` is not a multiple of `dim`, and
    /// [`OtError::NonFiniteCoordinate`] (with row and column) for a NaN or infinite value.
    pub fn new(data: &'a [f32], dim: usize) -> Result<Self, OtError> {
        if dim == 0 {
            return Err(OtError::ZeroDimension);
        }
        if data.is_empty() {
            return Err(OtError::EmptyCloud);
        }
        if !data.len().is_multiple_of(dim) {
            return Err(OtError::RaggedData {
                len: data.len(),
                dim,
            });
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(OtError::NonFiniteCoordinate {
                row: k / dim,
                col: k % dim,
                value: data[k],
            });
        }
        Ok(Self { data, dim })
    }

    /// Number of points.
    pub fn rows(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Dimension of each point.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Coordinates of point `i` (length `dim()`).
    ///
    /// # Panics
    /// If `i >= rows()`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The whole row-major buffer (length `rows() × dim()`).
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }

    /// Whether `self` and `other` view the very same buffer (POT's `X is Y` test).
    fn same_buffer(&self, other: &Self) -> bool {
        std::ptr::eq(self.data, other.data) && self.dim == other.dim
    }
}

/// The ground cost `c(x, y)` between two points, named as in POT's `ot.dist(metric=...)`.
///
/// Serialised (and parsed by [`FromStr`]) as `"cosine"`, `"sqeuclidean"`, `"euclidean"`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum CostKind {
    /// `1 − cos(x, y)`, in `[0, 2]`; InsCL's choice for instruction embeddings. Undefined
    /// (an error) for zero vectors.
    #[default]
    Cosine,
    /// `‖x − y‖²`.
    SqEuclidean,
    /// `‖x − y‖`.
    Euclidean,
}

impl CostKind {
    /// All kinds, in the order their names are listed in error messages.
    pub const ALL: [CostKind; 3] = [CostKind::Cosine, CostKind::SqEuclidean, CostKind::Euclidean];

    /// The lowercase name used by serde, [`FromStr`] and POT.
    pub fn name(self) -> &'static str {
        match self {
            CostKind::Cosine => "cosine",
            CostKind::SqEuclidean => "sqeuclidean",
            CostKind::Euclidean => "euclidean",
        }
    }
}

impl fmt::Display for CostKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`CostKind::from_str`]: the unknown name and the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cost kind {0:?}; valid names are \"cosine\", \"sqeuclidean\", \"euclidean\"")]
pub struct ParseCostKindError(pub String);

impl FromStr for CostKind {
    type Err = ParseCostKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CostKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ParseCostKindError(s.to_owned()))
    }
}

/// A dense `rows × cols` cost matrix, row-major `f64`: entry `(i, j)` is `c(x_i, y_j)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CostMatrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl CostMatrix {
    /// Wraps a row-major buffer of length `rows × cols`.
    ///
    /// # Errors
    /// [`OtError::EmptyCloud`] if either side is 0, [`OtError::RaggedData`] if the length is
    /// not `rows × cols`, [`OtError::NonFiniteCost`] for a NaN or infinite entry.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self, OtError> {
        if rows == 0 || cols == 0 {
            return Err(OtError::EmptyCloud);
        }
        if data.len() != rows * cols {
            return Err(OtError::RaggedData {
                len: data.len(),
                dim: cols,
            });
        }
        if let Some(k) = data.iter().position(|v| !v.is_finite()) {
            return Err(OtError::NonFiniteCost {
                row: k / cols,
                col: k % cols,
                value: data[k],
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// Number of rows (source points).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (target points).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry `(i, j)`.
    ///
    /// # Panics
    /// If `i >= rows()` or `j >= cols()`.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(
            j < self.cols,
            "column {j} out of range for {} columns",
            self.cols
        );
        self.data[i * self.cols + j]
    }

    /// The row-major buffer (length `rows() × cols()`).
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }
}

/// Source points per GEMM call and parallel work item: big enough that re-packing the target
/// cloud for each block costs little (64 rows took 18.7 ms at n = m = 1000, d = 576; 256 rows
/// 14.5 ms), small enough to balance over a few cores.
const ROW_BLOCK: usize = 256;

/// `out = xs · ysᵀ` for `rows = xs.len() / d` source points and `m = ys.len() / d` target
/// points, both row-major with `d` coordinates; `out` is `rows × m`, row-major.
fn cross_products(xs: &[f64], ys: &[f64], d: usize, out: &mut [f64]) {
    let (rows, m) = (xs.len() / d, ys.len() / d);
    assert_eq!(out.len(), rows * m, "output block is rows × m");
    // SAFETY (both GEMMs): `xs` holds `rows × d` values with row stride d, `ys` holds m × d
    // (read transposed: row stride 1, column stride d), and `out` is `rows × m`, checked
    // above; gemm's `read_dst = false` never reads `out`.
    #[cfg(not(target_arch = "wasm32"))]
    unsafe {
        matrixmultiply::dgemm(
            rows,
            d,
            m,
            1.0,
            xs.as_ptr(),
            d as isize,
            1,
            ys.as_ptr(),
            1,
            d as isize,
            0.0,
            out.as_mut_ptr(),
            m as isize,
            1,
        );
    }
    #[cfg(target_arch = "wasm32")]
    unsafe {
        gemm::gemm(
            rows,
            m,
            d,
            out.as_mut_ptr(),
            1,
            m as isize,
            false,
            xs.as_ptr(),
            1,
            d as isize,
            ys.as_ptr(),
            d as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// One cloud's coordinates as the cost matrix reads them: float64 copies of the (float32)
/// coordinates, scaled to unit rows under the cosine cost, and each row's squared norm (of the
/// unscaled row). [`cost_matrix`] prepares both of its clouds on every call;
/// [`crate::similarity::distance_matrix`] prepares each task once for all of its pairs, which
/// gives the same values (the same arithmetic, done fewer times).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedCloud {
    points: Vec<f64>,
    sq_norms: Vec<f64>,
    dim: usize,
    kind: CostKind,
}

impl PreparedCloud {
    /// Prepares `cloud` for the cost `kind`.
    ///
    /// # Errors
    /// The first row of zero norm under the cosine cost (`Err(row)`), which has no direction.
    pub fn new(cloud: &PointCloud, kind: CostKind) -> Result<Self, usize> {
        let d = cloud.dim();
        let mut points: Vec<f64> = cloud.as_slice().iter().map(|&v| f64::from(v)).collect();
        let sq_norms: Vec<f64> = points
            .chunks_exact(d)
            .map(|r| r.iter().map(|&v| v * v).sum())
            .collect();
        if kind == CostKind::Cosine {
            // Unit rows: the GEMM then yields cos(x_i, y_j) and the element-wise pass has no
            // division left.
            if let Some(row) = sq_norms.iter().position(|&v| v == 0.0) {
                return Err(row);
            }
            for (point, &sq) in points.chunks_exact_mut(d).zip(&sq_norms) {
                let norm = sq.sqrt();
                point.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(Self {
            points,
            sq_norms,
            dim: d,
            kind,
        })
    }

    /// Number of points.
    pub fn rows(&self) -> usize {
        self.sq_norms.len()
    }

    /// Dimension of each point.
    pub fn dim(&self) -> usize {
        self.dim
    }
}

/// Computes the `x.rows() × y.rows()` cost matrix `M[i][j] = c(x_i, y_j)` in float64.
///
/// Agrees with POT's `ot.dist(x.astype(float64), y.astype(float64), metric=kind)` to about
/// 1e-12 relative; like POT, (squared) Euclidean costs of a cloud with itself get an exact
/// zero diagonal.
///
/// # Errors
/// [`OtError::DimensionMismatch`] if the clouds differ in dimension; [`OtError::ZeroNorm`]
/// (naming the cloud, `"source"` = x or `"target"` = y, and the row) for a zero vector under
/// the cosine cost.
pub fn cost_matrix(x: &PointCloud, y: &PointCloud, kind: CostKind) -> Result<CostMatrix, OtError> {
    if x.dim() != y.dim() {
        return Err(OtError::DimensionMismatch {
            left: x.dim(),
            right: y.dim(),
        });
    }
    let prepare = |p: &PointCloud, cloud| {
        PreparedCloud::new(p, kind).map_err(|row| OtError::ZeroNorm { cloud, row })
    };
    let mut costs = prepared_cost_matrix(&prepare(x, "source")?, &prepare(y, "target")?)?;
    if kind != CostKind::Cosine && x.same_buffer(y) {
        (0..x.rows()).for_each(|i| costs.data[i * x.rows() + i] = 0.0);
    }
    Ok(costs)
}

/// [`cost_matrix`] of two prepared clouds (without its zero diagonal for a cloud with itself).
///
/// # Errors
/// [`OtError::DimensionMismatch`] if the clouds differ in dimension.
///
/// # Panics
/// When the clouds were prepared for different costs.
pub fn prepared_cost_matrix(x: &PreparedCloud, y: &PreparedCloud) -> Result<CostMatrix, OtError> {
    if x.dim != y.dim {
        return Err(OtError::DimensionMismatch {
            left: x.dim,
            right: y.dim,
        });
    }
    assert_eq!(x.kind, y.kind, "clouds prepared for different costs");
    let (n, m, d, kind) = (x.rows(), y.rows(), x.dim, x.kind);
    let (xs, ys, xn, yn) = (&x.points, &y.points, &x.sq_norms, &y.sq_norms);

    let mut data = vec![0.0; n * m];
    let fill_block = |(block, out): (usize, &mut [f64])| {
        let r0 = block * ROW_BLOCK;
        let rows = out.len() / m;
        cross_products(&xs[r0 * d..(r0 + rows) * d], ys, d, out);
        for (r, row) in out.chunks_exact_mut(m).enumerate() {
            let xi = xn[r0 + r];
            for (c, &yj) in row.iter_mut().zip(yn) {
                *c = match kind {
                    CostKind::Cosine => 1.0 - *c,
                    // POT order: (−2⟨x,y⟩ + ‖x‖²) + ‖y‖², clamped at 0 against cancellation.
                    CostKind::SqEuclidean => (-2.0 * *c + xi + yj).max(0.0),
                    CostKind::Euclidean => (-2.0 * *c + xi + yj).max(0.0).sqrt(),
                };
            }
        }
    };
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(ROW_BLOCK * m)
            .enumerate()
            .for_each(fill_block);
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    data.chunks_mut(ROW_BLOCK * m)
        .enumerate()
        .for_each(fill_block);

    Ok(CostMatrix {
        rows: n,
        cols: m,
        data,
    })
}
