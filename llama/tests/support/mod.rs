//! Helpers shared by the `llama` test files; each test binary uses a subset of them.
#![allow(dead_code)]

pub mod gguf;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use llama::io::host::HostTensors;
use llama::model::Llama;

/// `llama/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The tiny reference checkpoint `llama/fixtures/<name>` on `device`.
pub fn tiny_model(name: &str, device: &Device) -> Llama {
    let (config, tensors) = llama::io::safetensors::load_llama(fixture(name)).unwrap();
    Llama::from_host_tensors(&config, &tensors, device).unwrap()
}

/// The base parameters of [`llama::io::host::parameters_on_host`]'s output: LoRA factors left out.
pub fn frozen(params: &HostTensors) -> HostTensors {
    params
        .iter()
        .filter(|(k, _)| !k.contains(".lora."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// max |a_i - b_i| over equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
