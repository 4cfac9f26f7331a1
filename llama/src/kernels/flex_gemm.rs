//! `gemm` on flex tensors' f32 data, for the kernels that write their own outputs
//! ([`crate::kernels::frozen_matmul`], [`crate::kernels::head_loss`], [`crate::kernels::flex_attention`]).

use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};
use gemm::Parallelism;

/// A 2-D f32 operand of [`product`]: where its first value is and the strides (in values)
/// between rows and between columns.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operand {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

// SAFETY: an `Operand` is only read, while the data it points into is alive (one kernel call).
unsafe impl Send for Operand {}
unsafe impl Sync for Operand {}

impl Operand {
    /// The 2-D f32 `tensor` as stored (any strides, e.g. a transposed view).
    ///
    /// # Panics
    /// When `tensor` is not 2-D.
    pub(crate) fn of(tensor: &FlexTensor) -> Self {
        let (_, _, row_stride, col_stride) = tensor.layout().as_2d_strides().expect("a 2-D tensor");
        Self {
            ptr: tensor.storage::<f32>()[tensor.layout().start_offset()..].as_ptr(),
            row_stride,
            col_stride,
        }
    }

    /// Rows `first..` of the row-major matrix with `cols` columns held in `values`.
    pub(crate) fn rows(values: &[f32], first: usize, cols: usize) -> Self {
        Self {
            ptr: values[first * cols..].as_ptr(),
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The matrix whose first value is `values[first]`, with the given strides (in values).
    ///
    /// # Panics
    /// When `first` is outside `values`.
    pub(crate) fn strided(
        values: &[f32],
        first: usize,
        row_stride: isize,
        col_stride: isize,
    ) -> Self {
        Self {
            ptr: values[first..].as_ptr(),
            row_stride,
            col_stride,
        }
    }

    /// The same values read as the transposed matrix.
    pub(crate) fn transposed(self) -> Self {
        Self {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `dst` (`rows × n`, row-major with `dst_row_stride` values between rows) = `lhs`
/// (`rows × k`) · `rhs` (`k × n`), written without reading `dst` (`gemm` with
/// `read_dst = false`).
///
/// # Safety
/// `dst` must be valid for `rows × n` writes at its row stride, and `lhs` and `rhs` must point
/// to live data covering `rows × k` and `k × n` values at their strides.
pub(crate) unsafe fn product(
    dst: *mut f32,
    dst_row_stride: usize,
    dims: [usize; 3],
    lhs: Operand,
    rhs: Operand,
    parallelism: Parallelism,
) {
    // SAFETY: as the caller promises.
    unsafe { product_into(dst, dst_row_stride, dims, lhs, rhs, false, parallelism) }
}

/// [`product`], or with `accumulate` `dst += lhs · rhs` (`dst` read, so initialised).
///
/// # Safety
/// As [`product`]; with `accumulate`, `dst` must also be initialised.
pub(crate) unsafe fn product_into(
    dst: *mut f32,
    dst_row_stride: usize,
    [rows, n, k]: [usize; 3],
    lhs: Operand,
    rhs: Operand,
    accumulate: bool,
    parallelism: Parallelism,
) {
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The values of a contiguous f32 flex tensor, in order.
///
/// # Panics
/// When `tensor` is not contiguous.
pub(crate) fn contiguous_f32(tensor: &FlexTensor) -> &[f32] {
    let (start, end) = tensor.layout().contiguous_offsets().expect("contiguous");
    &tensor.storage::<f32>()[start..end]
}

/// A contiguous f32 flex tensor of `shape` holding `values`.
pub(crate) fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}
