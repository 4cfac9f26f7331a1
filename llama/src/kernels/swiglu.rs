//! The SwiGLU gate of the feed-forward block, silu(gate) ⊙ up, as one operation.
//!
//! HF `LlamaMLP` computes `down_proj(act_fn(gate_proj(x)) * up_proj(x))` with `act_fn` = SiLU,
//! silu(g) = g σ(g). Through burn's ops that is a sigmoid, two products and, in the backward
//! pass, the sigmoid's gradient (another `exp`) and three more products: six passes over
//! `[b, s, intermediate]` tensors, each on one thread on flex. [`swiglu`] is one pass forward
//! and one backward, 8 values at a time (`wide::f32x8::exp`), split across threads.
//!
//! With s = σ(g), the gradients from dy are (d/dg silu(g) = s (1 + g (1 − s)), written so,
//! not as s + silu − silu s, which cancels for large g):
//! - d up = dy ⊙ g s
//! - d gate = dy ⊙ up ⊙ s (1 + g (1 − s))

#[cfg(feature = "cube")]
use burn::backend::Cube;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{DType, Shape, Tensor};
use burn_flex::FlexTensor;
use rayon::prelude::*;
use wide::f32x8;

use crate::kernels::flex_gemm::{contiguous_f32, f32_tensor};
use crate::kernels::vector_exp::sigmoid;

/// Values per parallel task of the flex kernels (64 KiB of each input); a decoding step's
/// smaller gate runs on the calling thread (handing it to the Rayon pool costs more).
const CHUNK: usize = 1 << 14;

/// The SwiGLU gate on every backend the model runs on (`Dispatch` routes to it).
#[backend_extension(Flex, Cube: cfg(feature = "cube"), Autodiff)]
pub trait SwigluBackend: Backend {
    /// silu(gate) ⊙ up for two tensors of the same shape.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        composed::<Self>(gate, up)
    }

    /// The gradients of [`SwigluBackend::swiglu`] with respect to `gate` and `up` for the
    /// upstream gradient `grad` (all of one shape).
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_backward::<Self>(gate, up, grad)
    }
}

/// silu(gate) ⊙ up from the backend's own ops.
fn composed<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    let silu = B::float_mul(gate.clone(), B::sigmoid(gate));
    B::float_mul(silu, up)
}

/// [`SwigluBackend::swiglu_backward`] from the backend's own ops.
fn composed_backward<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let sigmoid = B::sigmoid(gate.clone());
    let grad_up = B::float_mul(grad.clone(), B::float_mul(gate.clone(), sigmoid.clone()));
    // σ(g) (1 + g (1 − σ(g))), the form without cancellation for large g
    let one_minus = B::float_add_scalar(B::float_neg(sigmoid.clone()), 1.0.into());
    let slope = B::float_mul(
        sigmoid,
        B::float_add_scalar(B::float_mul(gate, one_minus), 1.0.into()),
    );
    (B::float_mul(B::float_mul(grad, up), slope), grad_up)
}

/// f32 through one parallel pass, other types through [`composed`].
impl SwigluBackend for Flex {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        if gate.dtype() != DType::F32 || up.dtype() != DType::F32 {
            return composed::<Self>(gate, up);
        }
        let shape = same_shape([&gate, &up]);
        let [gate, up] = [gate, up].map(|t| t.to_contiguous());
        let mut out = vec![0.0f32; shape.num_elements()];
        map_lanes([&gate, &up].map(contiguous_f32), [&mut out], |[g, u]| {
            [g * sigmoid(g) * u]
        });
        f32_tensor(out, shape)
    }

    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if [&gate, &up, &grad].iter().any(|t| t.dtype() != DType::F32) {
            return composed_backward::<Self>(gate, up, grad);
        }
        let shape = same_shape([&gate, &up, &grad]);
        let [gate, up, grad] = [gate, up, grad].map(|t| t.to_contiguous());
        let mut grad_gate = vec![0.0f32; shape.num_elements()];
        let mut grad_up = vec![0.0f32; shape.num_elements()];
        map_lanes(
            [&gate, &up, &grad].map(contiguous_f32),
            [&mut grad_gate, &mut grad_up],
            |[g, u, dy]| {
                let s = sigmoid(g);
                [dy * u * s * (f32x8::ONE + g * (f32x8::ONE - s)), dy * g * s]
            },
        );
        (
            f32_tensor(grad_gate, shape.clone()),
            f32_tensor(grad_up, shape),
        )
    }
}

/// The one shape of `tensors`.
///
/// # Panics
/// When they differ.
fn same_shape<const N: usize>(tensors: [&FlexTensor; N]) -> Shape {
    let shape = tensors[0].layout().shape().clone();
    for t in &tensors[1..] {
        assert_eq!(t.layout().shape(), &shape, "swiglu: inputs differ in shape");
    }
    shape
}

#[cfg(feature = "cube")]
impl SwigluBackend for Cube {}

impl<B: SwigluBackend, C: CheckpointStrategy> SwigluBackend for Autodiff<B, C> {
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        match SwigluGradient
            .prepare::<C>([gate.node(), up.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let inputs = [&gate, &up].map(|tensor| prep.checkpoint(tensor));
                let output = B::swiglu(gate.into_primitive(), up.into_primitive());
                prep.finish(inputs, output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::swiglu(gate.into_primitive(), up.into_primitive()))
            }
        }
    }
}

/// [`swiglu`]'s backward step: gate and up (by node).
#[derive(Debug)]
struct SwigluGradient;

impl<B: SwigluBackend> Backward<B, 2> for SwigluGradient {
    type State = [NodeId; 2];

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [gate, up]: [FloatTensor<B>; 2] =
            ops.state.map(|id| checkpointer.retrieve_node_output(id));
        let grad = grads.consume::<B>(&ops.node);
        let (grad_gate, grad_up) = B::swiglu_backward(gate, up, grad);
        for (parent, grad) in ops.parents.into_iter().zip([grad_gate, grad_up]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// `outputs[k][i] = f(inputs[..][i])[k]` for every `i`, 8 values at a time, in chunks of
/// [`CHUNK`] on the Rayon pool when there is more than one. All slices have one length.
fn map_lanes<const N: usize, const M: usize>(
    inputs: [&[f32]; N],
    outputs: [&mut [f32]; M],
    f: impl Fn([f32x8; N]) -> [f32x8; M] + Sync,
) {
    let len = outputs[0].len();
    assert!(
        inputs.iter().all(|x| x.len() == len) && outputs.iter().all(|x| x.len() == len),
        "map_lanes: slices of one length"
    );
    if len <= CHUNK {
        return lanes(inputs, outputs, &f);
    }
    let mut chunked = outputs.map(|out| out.chunks_mut(CHUNK));
    let chunks: Vec<[&mut [f32]; M]> = (0..len.div_ceil(CHUNK))
        .map(|_| {
            chunked
                .each_mut()
                .map(|c| c.next().expect("one chunk per output"))
        })
        .collect();
    chunks.into_par_iter().enumerate().for_each(|(i, outputs)| {
        let range = i * CHUNK..i * CHUNK + outputs[0].len();
        lanes(inputs.map(|x| &x[range.clone()]), outputs, &f);
    });
}

/// [`map_lanes`] on one thread; the last group of 8 is padded with zeros.
fn lanes<const N: usize, const M: usize>(
    inputs: [&[f32]; N],
    mut outputs: [&mut [f32]; M],
    f: &impl Fn([f32x8; N]) -> [f32x8; M],
) {
    let len = outputs[0].len();
    let full = len - len % 8;
    for start in (0..full).step_by(8) {
        let load = |x: &[f32]| f32x8::new(x[start..start + 8].try_into().expect("8 values"));
        for (out, value) in outputs.iter_mut().zip(f(inputs.map(load))) {
            out[start..start + 8].copy_from_slice(value.as_array());
        }
    }
    if full < len {
        let n = len - full;
        let load = |x: &[f32]| {
            let mut padded = [0.0; 8];
            padded[..n].copy_from_slice(&x[full..]);
            f32x8::new(padded)
        };
        for (out, value) in outputs.iter_mut().zip(f(inputs.map(load))) {
            out[full..].copy_from_slice(&value.as_array()[..n]);
        }
    }
}

/// silu(gate) ⊙ up (HF `LlamaMLP`'s `act_fn(gate_proj(x)) * up_proj(x)` with SiLU) for two
/// tensors of the same shape. Under autodiff the backward pass keeps only `gate` and `up`
/// (see the module docs for the gradients).
///
/// # Panics
/// When the shapes differ.
pub fn swiglu<const D: usize>(gate: Tensor<D>, up: Tensor<D>) -> Tensor<D> {
    assert_eq!(
        gate.dims(),
        up.dims(),
        "swiglu: gate and up differ in shape"
    );
    Tensor::from_dispatch(Dispatch::swiglu(gate.into_dispatch(), up.into_dispatch()))
}
