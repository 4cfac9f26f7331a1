//! Checkpoint tensors on the host, in Hugging Face names and layouts, before they become
//! burn parameters (both checkpoint readers, GGUF and safetensors, produce these), and burn
//! parameters copied back to the host ([`parameters_on_host`]) for export.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// A dense f32 tensor in row-major order with its shape (HF layout: linear weights are
/// `[out_features, in_features]`).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// The transpose of a 2-D tensor (`[r, c]` → `[c, r]`): converts linear weights between HF
    /// `[out, in]` and burn `[in, out]` layouts.
    ///
    /// # Panics
    /// When the tensor is not 2-D.
    pub fn transposed(&self) -> HostTensor {
        let [rows, cols] = self.shape[..] else {
            panic!("transposed needs a 2-D tensor, got shape {:?}", self.shape)
        };
        let mut data = vec![0.0; self.data.len()];
        for (i, row) in self.data.chunks_exact(cols).enumerate() {
            for (j, &x) in row.iter().enumerate() {
                data[j * rows + i] = x;
            }
        }
        HostTensor {
            shape: vec![cols, rows],
            data,
        }
    }

    /// A copy of a float parameter's value on the host, as f32.
    ///
    /// # Panics
    /// When the backend cannot give the value as f32.
    pub fn from_param<const D: usize>(param: &Param<Tensor<D>>) -> HostTensor {
        let value = param.val();
        HostTensor {
            shape: value.dims().to_vec(),
            data: value
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 parameter data"),
        }
    }
}

/// All tensors of a checkpoint by HF name (e.g. `model.layers.0.self_attn.q_proj.weight`).
pub type HostTensors = BTreeMap<String, HostTensor>;

/// Copies every float parameter of `module` to the host, keyed by its burn path joined with
/// dots (`layers.0.self_attn.q_proj.weight`; LoRA factors under `….q_proj.lora.a` / `.b`).
/// An adapted projection's `weight` is its frozen base (unmerged).
pub fn parameters_on_host<M: Module>(module: &M) -> HostTensors {
    struct Collector {
        path: Vec<String>,
        out: HostTensors,
    }
    impl ModuleVisitor for Collector {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out
                .insert(self.path.join("."), HostTensor::from_param(param));
        }
    }
    let mut collector = Collector {
        path: Vec::new(),
        out: HostTensors::new(),
    };
    module.visit(&mut collector);
    collector.out
}
