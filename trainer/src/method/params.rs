//! Per-parameter tensors of the trainable parameters (the LoRA factors, or every weight under
//! full fine-tuning): the values, gradients, importances and anchors the continual-learning
//! methods keep. Each tensor is flattened to 1-D on the plain (non-autodiff) device, keyed by
//! the parameter's module path (`layers.3.self_attn.q_proj.lora.a`), so that state saved at
//! one stage loads into the model rebuilt at the next, whose parameter ids differ.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, ensure};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use llama::io::host::{HostTensor, HostTensors};
use llama::model::Llama;

/// One flattened f32 tensor per trainable parameter, by module path.
#[derive(Debug, Clone, Default)]
pub struct ParamTensors(BTreeMap<String, Tensor<1>>);

/// One trainable parameter of a model: module path, id, shape and value (detached, plain
/// device, flattened).
struct Trainable {
    path: String,
    id: ParamId,
    shape: Vec<usize>,
    value: Tensor<1>,
}

/// The trainable parameters of `model` in visiting order.
fn trainable(model: &Llama) -> Vec<Trainable> {
    struct Collect {
        path: Vec<String>,
        out: Vec<Trainable>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_owned());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if value.is_require_grad() {
                let shape = value.dims().to_vec();
                let n: usize = shape.iter().product();
                self.out.push(Trainable {
                    path: self.path.join("."),
                    id: param.id,
                    shape,
                    value: value.inner().reshape([n]),
                });
            }
        }
    }
    let mut collect = Collect {
        path: Vec::new(),
        out: Vec::new(),
    };
    model.visit(&mut collect);
    collect.out
}

impl ParamTensors {
    /// The current values θ of `model`'s trainable parameters (detached, plain device).
    pub fn values(model: &Llama) -> Self {
        Self(
            trainable(model)
                .into_iter()
                .map(|p| (p.path, p.value))
                .collect(),
        )
    }

    /// The gradients in `grads` of `model`'s trainable parameters; a parameter without a
    /// gradient gets zeros.
    pub fn gradients(model: &Llama, grads: &GradientsParams) -> Self {
        let device = grads_device(model);
        Self(
            trainable(model)
                .into_iter()
                .map(
                    |Trainable {
                         path, id, shape, ..
                     }| {
                        let n: usize = shape.iter().product();
                        let g = flat_gradient(grads, id, shape.len())
                            .unwrap_or_else(|| Tensor::zeros([n], &device));
                        (path, g)
                    },
                )
                .collect(),
        )
    }

    /// Zeros shaped like `model`'s trainable parameters.
    pub fn zeros_like(model: &Llama) -> Self {
        Self::values(model).map(|t| t.zeros_like())
    }

    /// Adds `self` to the gradients of `model`'s trainable parameters in `grads` (registering
    /// it where a parameter has none): the gradient of a penalty written analytically.
    ///
    /// # Panics
    /// When `self` lacks a trainable parameter of `model`.
    pub fn add_to_gradients(&self, model: &Llama, grads: &mut GradientsParams) {
        for Trainable {
            path, id, shape, ..
        } in trainable(model)
        {
            let extra = self
                .0
                .get(&path)
                .unwrap_or_else(|| panic!("no method state for the trainable parameter {path}"));
            let sum = match flat_gradient(grads, id, shape.len()) {
                Some(g) => g + extra.clone(),
                None => extra.clone(),
            };
            register_shaped(grads, id, sum, &shape);
        }
    }

    /// Replaces the gradients in `grads` of `model`'s trainable parameters that `self` holds
    /// by `self`'s.
    pub fn write_gradients(&self, model: &Llama, grads: &mut GradientsParams) {
        for p in trainable(model) {
            if let Some(value) = self.0.get(&p.path) {
                // `register` replaces the gradient already there.
                register_shaped(grads, p.id, value.clone(), &p.shape);
            }
        }
    }

    /// `model` with its trainable parameters set to `self` (kept trainable).
    pub fn assign_to(&self, model: Llama) -> Llama {
        struct Assign<'a> {
            path: Vec<String>,
            values: &'a BTreeMap<String, Tensor<1>>,
        }
        impl ModuleMapper for Assign<'_> {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.path.push(name.to_owned());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.path.pop();
            }
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, tensor, mapper) = param.consume();
                let Some(value) = self
                    .values
                    .get(&self.path.join("."))
                    .filter(|_| tensor.is_require_grad())
                else {
                    return Param::from_mapped_value(id, tensor, mapper);
                };
                let shape: [usize; D] = tensor.dims();
                // A fresh contiguous buffer, as a checkpoint load gives: the same layout makes
                // the same matmuls round alike, so a resumed run equals an uninterrupted one.
                let data = value.clone().reshape(shape).into_data();
                let updated = Tensor::from_data(data, &tensor.device()).require_grad();
                Param::from_mapped_value(id, updated, mapper)
            }
        }
        model.map(&mut Assign {
            path: Vec::new(),
            values: &self.0,
        })
    }

    /// Applies `f` to every tensor.
    pub fn map(&self, mut f: impl FnMut(Tensor<1>) -> Tensor<1>) -> Self {
        Self(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), f(v.clone())))
                .collect(),
        )
    }

    /// Applies `f` to the tensors of `self` and `other` at each path.
    ///
    /// # Panics
    /// When the two do not hold the same parameters.
    pub fn zip(&self, other: &Self, mut f: impl FnMut(Tensor<1>, Tensor<1>) -> Tensor<1>) -> Self {
        assert_eq!(
            self.0.len(),
            other.0.len(),
            "parameter sets of different sizes"
        );
        Self(
            self.0
                .iter()
                .map(|(k, a)| {
                    let b = other
                        .0
                        .get(k)
                        .unwrap_or_else(|| panic!("no tensor for {k}"));
                    (k.clone(), f(a.clone(), b.clone()))
                })
                .collect(),
        )
    }

    /// `Σ_params Σ_i a_i · b_i` over every parameter, as one device scalar `[1]` (no host
    /// sync per tensor).
    ///
    /// # Panics
    /// When `other` lacks a parameter of `self`, or neither holds any.
    pub fn dot(&self, other: &Self) -> Tensor<1> {
        self.0
            .iter()
            .map(|(k, a)| {
                let b = other
                    .0
                    .get(k)
                    .unwrap_or_else(|| panic!("no tensor for {k}"));
                (a.clone() * b.clone()).sum()
            })
            .reduce(|x, y| x + y)
            .expect("at least one trainable parameter")
    }

    /// The tensors in path order.
    pub fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor<1>)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Host copies of every tensor, under `prefix` + path (for a safetensors file).
    pub fn to_host(&self, prefix: &str) -> HostTensors {
        self.0
            .iter()
            .map(|(k, v)| (format!("{prefix}{k}"), host_tensor(v)))
            .collect()
    }

    /// The tensors under `prefix` in `host`, checked against `model`'s trainable parameters
    /// (every one present, with its number of elements).
    ///
    /// # Errors
    /// A missing parameter or a size mismatch, naming the tensor and `file`.
    pub fn from_host(
        host: &HostTensors,
        prefix: &str,
        model: &Llama,
        file: &Path,
    ) -> anyhow::Result<Self> {
        let device = grads_device(model);
        let mut out = BTreeMap::new();
        for Trainable { path, shape, .. } in trainable(model) {
            let name = format!("{prefix}{path}");
            let tensor = host
                .get(&name)
                .with_context(|| format!("{}: no tensor `{name}`", file.display()))?;
            let n: usize = shape.iter().product();
            ensure!(
                tensor.data.len() == n,
                "{}: tensor `{name}` has {} elements, the parameter has {n}",
                file.display(),
                tensor.data.len()
            );
            out.insert(
                path,
                Tensor::from_data(TensorData::new(tensor.data.clone(), [n]), &device),
            );
        }
        Ok(Self(out))
    }
}

/// A host copy of `tensor` (f32, its shape), for a safetensors file.
///
/// # Panics
/// When the backend cannot give the values as f32.
pub fn host_tensor<const D: usize>(tensor: &Tensor<D>) -> HostTensor {
    HostTensor {
        shape: tensor.dims().to_vec(),
        data: tensor
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 method state"),
    }
}

/// The plain device the model's parameters live on.
fn grads_device(model: &Llama) -> burn::tensor::Device {
    model.embed_tokens.weight.val().inner().device()
}

fn flat_gradient(grads: &GradientsParams, id: ParamId, rank: usize) -> Option<Tensor<1>> {
    fn flat<const D: usize>(grads: &GradientsParams, id: ParamId) -> Option<Tensor<1>> {
        grads.get::<D>(id).map(|g| {
            let n = g.shape().num_elements();
            g.reshape([n])
        })
    }
    match rank {
        1 => flat::<1>(grads, id),
        2 => flat::<2>(grads, id),
        3 => flat::<3>(grads, id),
        other => panic!("parameters of rank {other} are not supported"),
    }
}

fn register_shaped(grads: &mut GradientsParams, id: ParamId, flat: Tensor<1>, shape: &[usize]) {
    match *shape {
        [a] => grads.register::<1>(id, flat.reshape([a])),
        [a, b] => grads.register::<2>(id, flat.reshape([a, b])),
        [a, b, c] => grads.register::<3>(id, flat.reshape([a, b, c])),
        _ => panic!("parameters of rank {} are not supported", shape.len()),
    }
}
