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
//!
//! [`CostPrecision::Float32`] trades the cosine cost matrix's float64 products for float32
//! ones (`gemm::gemm`, twice the SIMD lanes) when only the optimal plan is needed: the plan's
//! cost is then summed in float64 by [`prepared_plan_cost`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{OtError, TransportEntry};

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

impl CostKind {
    /// The cost from the inner product `dot = ⟨x, y⟩` (of unit rows under the cosine cost)
    /// and the squared norms `‖x‖²`, `‖y‖²`, in POT's order: `1 − dot`, or
    /// `(−2·dot + ‖x‖²) + ‖y‖²` clamped at 0 against cancellation (and its square root).
    fn cost_of_product(self, dot: f64, x_sq_norm: f64, y_sq_norm: f64) -> f64 {
        match self {
            CostKind::Cosine => 1.0 - dot,
            CostKind::SqEuclidean => (-2.0 * dot + x_sq_norm + y_sq_norm).max(0.0),
            CostKind::Euclidean => (-2.0 * dot + x_sq_norm + y_sq_norm).max(0.0).sqrt(),
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

/// The arithmetic of the inner products `⟨x_i, y_j⟩` behind a cost matrix.
///
/// Serialised (and parsed by [`FromStr`]) as `"float64"`, `"float32"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostPrecision {
    /// float64 products: POT's `ot.dist` in float64 to about 1e-12.
    #[default]
    Float64,
    /// Cosine costs from float32 products of the unit rows (rounded from float64), for a
    /// solver that only needs the optimal plan; [`prepared_plan_cost`] then sums that plan's
    /// cost in float64. A cost's error is bounded by about `(d + 2) · 2⁻²⁴` (5e-5 at
    /// d = 768); observed: at most 9.6e-8 at d = 576 (the studio benchmark's clouds) and
    /// 2.2e-7 at d = 1024. As the plan's masses sum to 1, the plan found costs at most twice
    /// the largest error more than the optimum, and when it is the plan of the float64 costs
    /// (no near-tie between plans) its float64 cost is the float64 optimum up to the order of
    /// the sums (about 1e-16).
    /// The (squared) Euclidean costs scale with the norms, and their float32 errors with
    /// them: they keep float64 products under this setting.
    Float32,
}

impl CostPrecision {
    /// Both settings, in the order their names are listed in error messages.
    pub const ALL: [CostPrecision; 2] = [CostPrecision::Float64, CostPrecision::Float32];

    /// The lowercase name used by serde, [`FromStr`] and the studio.
    pub fn name(self) -> &'static str {
        match self {
            CostPrecision::Float64 => "float64",
            CostPrecision::Float32 => "float32",
        }
    }

    /// Whether this is the default, [`CostPrecision::Float64`] (serde skips it, so that
    /// configurations written before the setting existed read and write unchanged).
    pub fn is_float64(&self) -> bool {
        *self == CostPrecision::Float64
    }
}

impl fmt::Display for CostPrecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`CostPrecision::from_str`]: the unknown name and the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cost precision {0:?}; valid names are \"float64\", \"float32\"")]
pub struct ParseCostPrecisionError(pub String);

impl FromStr for CostPrecision {
    type Err = ParseCostPrecisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CostPrecision::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| ParseCostPrecisionError(s.to_owned()))
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
    #[cfg(not(target_arch = "wasm32"))]
    {
        let (rows, m) = (xs.len() / d, ys.len() / d);
        assert_eq!(out.len(), rows * m, "output block is rows × m");
        // SAFETY: `xs` holds `rows × d` values with row stride d, `ys` holds m × d (read
        // transposed: row stride 1, column stride d), and `out` is `rows × m`, checked above.
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
    }
    #[cfg(target_arch = "wasm32")]
    gemm_cross_products(xs, ys, d, out);
}

/// The float types of the cross products: those [`gemm_cross_products`] runs on, with the
/// zero and one it passes as gemm's `alpha` (the factor of the destination, unread here) and
/// `beta` (the factor of the product).
trait GemmFloat: Copy + Send + Sync + Into<f64> + 'static {
    const ZERO: Self;
    const ONE: Self;
}

impl GemmFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl GemmFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// [`cross_products`] by `gemm::gemm` (simd128 kernels on wasm32, runtime dispatch on x86),
/// for float64 on wasm32 and for float32 on every target.
fn gemm_cross_products<T: GemmFloat>(xs: &[T], ys: &[T], d: usize, out: &mut [T]) {
    let (rows, m) = (xs.len() / d, ys.len() / d);
    assert_eq!(out.len(), rows * m, "output block is rows × m");
    // SAFETY: `xs` holds `rows × d` values with row stride d, `ys` holds m × d (read
    // transposed), and `out` is `rows × m`, checked above; `read_dst = false` never reads it.
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
            T::ZERO,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// One cloud's coordinates as the cost matrix reads them: float64 copies of the (float32)
/// coordinates, scaled to unit rows under the cosine cost, and each row's squared norm (of the
/// unscaled row); under [`CostPrecision::Float32`] and the cosine cost also the unit rows
/// rounded to float32. [`cost_matrix`] prepares both of its clouds on every call;
/// [`crate::similarity::distance_matrix`] prepares each task once for all of its pairs, which
/// gives the same values (the same arithmetic, done fewer times).
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedCloud {
    points: Vec<f64>,
    /// The unit rows in float32, when the cost matrix takes float32 products.
    single: Option<Vec<f32>>,
    sq_norms: Vec<f64>,
    dim: usize,
    kind: CostKind,
}

impl PreparedCloud {
    /// Prepares `cloud` for the cost `kind` with float64 products.
    ///
    /// # Errors
    /// The first row of zero norm under the cosine cost (`Err(row)`), which has no direction.
    pub fn new(cloud: &PointCloud, kind: CostKind) -> Result<Self, usize> {
        Self::with_precision(cloud, kind, CostPrecision::Float64)
    }

    /// Prepares `cloud` for the cost `kind` with the products of `precision` (float32 ones
    /// only for the cosine cost, see [`CostPrecision::Float32`]).
    ///
    /// # Errors
    /// As [`PreparedCloud::new`].
    pub fn with_precision(
        cloud: &PointCloud,
        kind: CostKind,
        precision: CostPrecision,
    ) -> Result<Self, usize> {
        let d = cloud.dim();
        let mut points: Vec<f64> = cloud.as_slice().iter().map(|&v| f64::from(v)).collect();
        let sq_norms: Vec<f64> = points
            .chunks_exact(d)
            .map(|r| r.iter().map(|&v| v * v).sum())
            .collect();
        let mut single = None;
        if kind == CostKind::Cosine {
            // Unit rows: the GEMM then yields cos(x_i, y_j) and the element-wise pass has no
            // division left.
            if let Some(row) = sq_norms.iter().position(|&v| v == 0.0) {
                return Err(row);
            }
            for (point, &sq) in points.chunks_exact_mut(d).zip(&sq_norms) {
                let norm = sq.sqrt();
                for v in point.iter_mut() {
                    *v /= norm;
                }
            }
            if precision == CostPrecision::Float32 {
                single = Some(points.iter().map(|&v| v as f32).collect());
            }
        }
        Ok(Self {
            points,
            single,
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

    /// The precision of the cost matrices [`prepared_cost_matrix`] makes from this cloud:
    /// [`CostPrecision::Float32`] only when it was asked for and the cost is cosine.
    pub fn precision(&self) -> CostPrecision {
        if self.single.is_some() {
            CostPrecision::Float32
        } else {
            CostPrecision::Float64
        }
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

/// [`cost_matrix`] of two prepared clouds (without its zero diagonal for a cloud with itself),
/// from float32 products when both were prepared for them (see [`PreparedCloud::precision`]).
///
/// # Errors
/// [`OtError::DimensionMismatch`] if the clouds differ in dimension.
///
/// # Panics
/// When the clouds were prepared for different costs or precisions.
pub fn prepared_cost_matrix(x: &PreparedCloud, y: &PreparedCloud) -> Result<CostMatrix, OtError> {
    if x.dim != y.dim {
        return Err(OtError::DimensionMismatch {
            left: x.dim,
            right: y.dim,
        });
    }
    assert_eq!(x.kind, y.kind, "clouds prepared for different costs");
    assert_eq!(
        x.precision(),
        y.precision(),
        "clouds prepared for different precisions"
    );
    Ok(match (&x.single, &y.single) {
        (Some(xs), Some(ys)) => costs_from_products(xs, ys, x, y, gemm_cross_products::<f32>),
        _ => costs_from_products(&x.points, &y.points, x, y, cross_products),
    })
}

/// The cost matrix of `x` and `y` from their rows `xs` and `ys` in `T` (float64 rows, or the
/// float32 unit rows of [`CostPrecision::Float32`]): `cross` makes the products of each block
/// of [`ROW_BLOCK`] source rows, the blocks in parallel under the `parallel` feature on
/// native targets, and [`CostKind::cost_of_product`] turns each into a float64 cost.
fn costs_from_products<T: GemmFloat>(
    xs: &[T],
    ys: &[T],
    x: &PreparedCloud,
    y: &PreparedCloud,
    cross: fn(&[T], &[T], usize, &mut [T]),
) -> CostMatrix {
    let (n, m, d, kind) = (x.rows(), y.rows(), x.dim, x.kind);
    let mut data = vec![0.0; n * m];
    let fill_block = |(block, out): (usize, &mut [f64])| {
        let r0 = block * ROW_BLOCK;
        let rows = out.len() / m;
        let mut products = vec![T::ZERO; rows * m];
        cross(&xs[r0 * d..(r0 + rows) * d], ys, d, &mut products);
        let dot_rows = products.chunks_exact(m);
        for (r, (row, dots)) in out.chunks_exact_mut(m).zip(dot_rows).enumerate() {
            let xi = x.sq_norms[r0 + r];
            for ((c, &dot), &yj) in row.iter_mut().zip(dots).zip(&y.sq_norms) {
                *c = kind.cost_of_product(dot.into(), xi, yj);
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
    CostMatrix {
        rows: n,
        cols: m,
        data,
    }
}

/// The cost `Σ mass · c(x_row, y_col)` of a transport plan between two prepared clouds, each
/// cost in float64 from the float64 rows (cosine: `1 − ⟨x̂, ŷ⟩` of the unit rows; (squared)
/// Euclidean as in [`cost_matrix`]): the value of a plan that a float32 cost matrix found
/// ([`CostPrecision::Float32`]), `n + m − 1` products instead of `n · m`.
///
/// # Panics
/// When the clouds were prepared for different costs or dimensions, or an entry's row or
/// column is out of range.
pub fn prepared_plan_cost(x: &PreparedCloud, y: &PreparedCloud, plan: &[TransportEntry]) -> f64 {
    assert_eq!(x.kind, y.kind, "clouds prepared for different costs");
    assert_eq!(x.dim, y.dim, "clouds of different dimensions");
    #[cfg(target_arch = "wasm32")]
    return plan_cost_simd128(x, y, plan);
    #[cfg(not(target_arch = "wasm32"))]
    plan_cost(x, y, plan)
}

/// [`prepared_plan_cost`] after its checks.
#[inline(always)]
fn plan_cost(x: &PreparedCloud, y: &PreparedCloud, plan: &[TransportEntry]) -> f64 {
    let d = x.dim;
    plan.iter()
        .map(|p| {
            let (xi, yj) = (&x.points[p.row * d..][..d], &y.points[p.col * d..][..d]);
            let dot = lane_dot(xi, yj);
            p.mass
                * x.kind
                    .cost_of_product(dot, x.sq_norms[p.row], y.sq_norms[p.col])
        })
        .sum()
}

/// [`plan_cost`] compiled for wasm's simd128, the studio's build (its `gemm` cost matrices
/// already need simd128; wasm has no runtime feature detection).
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn plan_cost_simd128(x: &PreparedCloud, y: &PreparedCloud, plan: &[TransportEntry]) -> f64 {
    plan_cost(x, y, plan)
}

/// `⟨a, b⟩` summed in 4 independent lanes, then across them and the tail: lanes the compiler
/// turns into vector multiply-adds (a single running sum cannot be reordered).
#[inline(always)]
fn lane_dot(a: &[f64], b: &[f64]) -> f64 {
    const LANES: usize = 4;
    let mut acc = [0.0; LANES];
    for (u, v) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += u[k] * v[k];
        }
    }
    let tail = a.len() - a.len() % LANES;
    let rest: f64 = a[tail..].iter().zip(&b[tail..]).map(|(u, v)| u * v).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + rest
}
