//! The exponential 8 values at a time (`wide::f32x8::exp`, a port of Agner Fog's vectorclass
//! `exp`), for the softmax and SiLU of the flex kernels: libm's scalar `expf` was 5 % of a
//! LoRA training step.

use wide::f32x8;

/// Values whose exponentials are summed in 8 float32 lanes (32 terms per lane, relative error
/// about 32 float32 roundings at most) before the lanes move to f64.
const SUM_BLOCK: usize = 256;

/// Replaces every value v of `values` by e^(v − `shift`) and returns their sum: float32 lanes
/// within blocks of [`SUM_BLOCK`] values, f64 across lanes and blocks. −∞ becomes 0.
pub(crate) fn exp_shifted_in_place(values: &mut [f32], shift: f32) -> f64 {
    let shift8 = f32x8::splat(shift);
    values
        .chunks_mut(SUM_BLOCK)
        .map(|block| {
            let mut sums = f32x8::ZERO;
            let mut chunks = block.chunks_exact_mut(8);
            for chunk in &mut chunks {
                let chunk: &mut [f32; 8] = chunk.try_into().expect("chunks of 8");
                let e = (f32x8::new(*chunk) - shift8).exp();
                *chunk = e.to_array();
                sums += e;
            }
            let mut sum: f64 = sums.to_array().into_iter().map(f64::from).sum();
            for v in chunks.into_remainder() {
                *v = (*v - shift).exp();
                sum += f64::from(*v);
            }
            sum
        })
        .sum()
}

/// The largest value of `values` (−∞ when empty).
pub(crate) fn max(values: &[f32]) -> f32 {
    let mut chunks = values.chunks_exact(8);
    let mut maxes = f32x8::splat(f32::NEG_INFINITY);
    for chunk in &mut chunks {
        maxes = maxes.max(f32x8::new(chunk.try_into().expect("chunks of 8")));
    }
    chunks
        .remainder()
        .iter()
        .chain(maxes.as_array())
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

/// σ(x) = 1 / (1 + e^(−x)) of 8 values.
#[inline]
pub(crate) fn sigmoid(x: f32x8) -> f32x8 {
    f32x8::ONE / (f32x8::ONE + (-x).exp())
}
