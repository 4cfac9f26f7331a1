//! Checkpoint tensors on the host, in Hugging Face names and layouts, before they become
//! burn parameters (both checkpoint readers, GGUF and safetensors, produce these), and burn
//! parameters copied back to the host ([`parameters_on_host`]) for export.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use crate::io::gguf::GgmlType;
use crate::io::stored::{BasePrecision, StoredMatrix};

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

/// A checkpoint's tensors as a reader returns them for a [`BasePrecision`]: the projection
/// weights it keeps in their storage format, and every other tensor as dense f32. Each name is
/// in exactly one of the two maps.
#[derive(Debug, Clone, Default)]
pub struct CheckpointTensors {
    /// f32 tensors (norms, embeddings, the output head, and every weight under
    /// [`BasePrecision::F32`]).
    pub dense: HostTensors,
    /// Projection weights ([`is_projection_weight`]) kept as stored or re-encoded.
    pub stored: BTreeMap<String, StoredMatrix>,
}

impl CheckpointTensors {
    /// Only dense tensors.
    pub fn dense(tensors: HostTensors) -> Self {
        Self {
            dense: tensors,
            stored: BTreeMap::new(),
        }
    }

    /// Bytes the weights take on the host: 4 per dense value plus the stored matrices.
    pub fn host_bytes(&self) -> usize {
        let dense: usize = self.dense.values().map(|t| 4 * t.data.len()).sum();
        dense
            + self
                .stored
                .values()
                .map(StoredMatrix::storage_bytes)
                .sum::<usize>()
    }
}

/// Whether the HF tensor `name` is the weight of one of a decoder layer's seven projections
/// (`model.layers.N.self_attn.{q,k,v,o}_proj.weight`, `model.layers.N.mlp.{gate,up,down}_proj.weight`):
/// the frozen base that [`BasePrecision::Stored`] and [`BasePrecision::Bf16`] keep out of f32.
/// Embeddings, norms and the output head stay f32.
pub fn is_projection_weight(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("model.layers.") else {
        return false;
    };
    let Some((layer, part)) = rest.split_once('.') else {
        return false;
    };
    layer.parse::<usize>().is_ok()
        && matches!(
            part,
            "self_attn.q_proj.weight"
                | "self_attn.k_proj.weight"
                | "self_attn.v_proj.weight"
                | "self_attn.o_proj.weight"
                | "mlp.gate_proj.weight"
                | "mlp.up_proj.weight"
                | "mlp.down_proj.weight"
        )
}

/// How a reader keeps one tensor of a checkpoint read for `precision`.
pub(crate) enum Keep {
    /// As its stored bytes.
    Stored,
    /// Dequantised, then rounded to bf16.
    Bf16,
    /// Dequantised to f32.
    Dense,
}

impl Keep {
    /// The choice for the HF tensor `name` stored as `dtype`.
    pub(crate) fn choose(precision: BasePrecision, name: &str, dtype: GgmlType) -> Self {
        let storable = GgmlType::STORABLE.contains(&dtype);
        match precision {
            _ if !is_projection_weight(name) => Self::Dense,
            BasePrecision::F32 => Self::Dense,
            BasePrecision::Stored if storable => Self::Stored,
            BasePrecision::Stored => Self::Dense,
            BasePrecision::Bf16 if dtype == GgmlType::BF16 => Self::Stored,
            BasePrecision::Bf16 => Self::Bf16,
        }
    }
}

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
