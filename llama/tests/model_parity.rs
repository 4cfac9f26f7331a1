//! Logits parity of [`llama::model::Llama`] with an independent numpy implementation of HF
//! `LlamaForCausalLM` (`tools/reference/llama_reference.py`) on tiny random checkpoints in
//! `llama/fixtures/tiny_llama_*` (f16 single file tied, f16 two shards untied, f32 two shards
//! with llama3 RoPE scaling), plus KV-cache and checkpoint-error behaviour.
//!
//! Tolerance: 1e-4 absolute; the reference logits are O(1) (|logit| ≤ 9), so this is a
//! relative error of about 1e-5 against a float64 reference.
//!
//! These tests (like the crate's other tests) run on `Device::default()`: flex (CPU) in the
//! default build; with `--features wgpu` burn picks the wgpu device, so the same parity checks
//! cover the GPU path (`BURN_DEVICE=flex` keeps them on the CPU).

use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::io::host::HostTensors;
use llama::model::{KvCache, Llama, ModelError};
use serde_json::Value;

mod support;
use support::{fixture, max_abs_diff};

const TOL: f32 = 1e-4;
const MODELS: [&str; 3] = ["tiny_llama_tied", "tiny_llama_untied", "tiny_llama_llama3"];

fn load(name: &str) -> (Llama, Value) {
    let (config, tensors) = llama::io::safetensors::load_llama(fixture(name)).unwrap();
    let model = Llama::from_host_tensors(&config, &tensors, &Device::default()).unwrap();
    let json = std::fs::read_to_string(fixture(name).join("logits.json")).unwrap();
    (model, serde_json::from_str(&json).unwrap())
}

fn int_tensor(rows: &Value) -> Tensor<2, Int> {
    let rows = rows.as_array().unwrap();
    let cols = rows[0].as_array().unwrap().len();
    let data: Vec<i64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
        .collect();
    Tensor::from_data(
        TensorData::new(data, [rows.len(), cols]),
        &Device::default(),
    )
}

fn to_vec<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    (
        t.dims().to_vec(),
        t.into_data().try_into_vec::<f32>().unwrap(),
    )
}

fn floats(v: &Value) -> Vec<f32> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        x => vec![x.as_f64().unwrap() as f32],
    }
}

/// Logits at the real (mask = 1) positions of every row, flattened row by row.
fn real_logits(logits: Tensor<3>, mask: &Value) -> Vec<f32> {
    let (dims, data) = to_vec(logits);
    let (s, v) = (dims[1], dims[2]);
    let mut out = Vec::new();
    for (r, row) in mask.as_array().unwrap().iter().enumerate() {
        for (j, m) in row.as_array().unwrap().iter().enumerate() {
            if m.as_i64() == Some(1) {
                out.extend_from_slice(&data[(r * s + j) * v..(r * s + j + 1) * v]);
            }
        }
    }
    out
}

#[test]
fn logits_match_numpy_reference() {
    for name in MODELS {
        let (model, reference) = load(name);
        for case in reference["cases"].as_array().unwrap() {
            let logits = model.forward(
                int_tensor(&case["tokens"]),
                int_tensor(&case["attention_mask"]),
            );
            let (_, all) = to_vec(logits.clone());
            assert!(
                all.iter().all(|x| x.is_finite()),
                "{name}/{}: non-finite logits",
                case["name"]
            );
            let got = real_logits(logits, &case["attention_mask"]);
            let want = floats(&case["logits"]);
            let diff = max_abs_diff(&got, &want);
            assert!(diff < TOL, "{name}/{}: max |Δlogit| = {diff}", case["name"]);
        }
    }
}

#[test]
fn mean_pooled_hidden_states_match_reference() {
    for name in MODELS {
        let (model, reference) = load(name);
        for case in reference["cases"].as_array().unwrap() {
            for (layer, want) in case["mean_pooled_hidden"].as_object().unwrap() {
                let pooled = model.mean_pooled_hidden(
                    int_tensor(&case["tokens"]),
                    int_tensor(&case["attention_mask"]),
                    layer.parse().unwrap(),
                );
                let diff = max_abs_diff(&to_vec(pooled).1, &floats(want));
                assert!(
                    diff < TOL,
                    "{name}/{}/layer {layer}: max |Δ| = {diff}",
                    case["name"]
                );
            }
        }
    }
}

#[test]
fn kv_cache_decoding_equals_full_forward() {
    for name in MODELS {
        let (model, reference) = load(name);
        for case in reference["cases"].as_array().unwrap() {
            let tokens = int_tensor(&case["tokens"]);
            let mask = int_tensor(&case["attention_mask"]);
            let [b, s] = tokens.dims();
            let (_, full) = to_vec(model.forward(tokens.clone(), mask.clone()));
            let v = model.config().vocab_size;
            // Prefill 3 positions, then chunks of 1 and 2 tokens.
            let mut cache = KvCache::new(model.layers.len());
            let mut start = 0;
            for len in [3, 1, 2, 1, 1, 1, 1] {
                let end = (start + len).min(s);
                if start == end {
                    break;
                }
                let chunk = |t: &Tensor<2, Int>| t.clone().narrow(1, start, end - start);
                let (_, step) =
                    to_vec(model.forward_cached(chunk(&tokens), chunk(&mask), &mut cache));
                for r in 0..b {
                    // Padding positions' logits are meaningless (and differ: their fully
                    // masked attention is uniform over whatever keys exist).
                    for j in (start..end).filter(|&j| case["attention_mask"][r][j] == 1) {
                        let got = &step[(r * (end - start) + j - start) * v..][..v];
                        let want = &full[(r * s + j) * v..][..v];
                        let diff = max_abs_diff(got, want);
                        assert!(
                            diff < TOL,
                            "{name}/{}: row {r} pos {j}: |Δ| = {diff}",
                            case["name"]
                        );
                    }
                }
                start = end;
            }
            assert_eq!(start, s, "{name}: the chunks must cover the sequence");
            assert_eq!(cache.len(), s);
        }
    }
}

fn tiny() -> (llama::config::LlamaConfig, HostTensors) {
    llama::io::safetensors::load_llama(fixture("tiny_llama_untied")).unwrap()
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let (config, mut tensors) = tiny();
    let device = Device::default();
    let name = "model.layers.1.mlp.up_proj.weight";
    let mut bad = tensors.clone();
    bad.get_mut(name).unwrap().shape = vec![64, 128];
    assert_eq!(
        Llama::from_host_tensors(&config, &bad, &device).unwrap_err(),
        ModelError::ShapeMismatch {
            name: name.into(),
            expected: vec![128, 64],
            found: vec![64, 128]
        }
    );
    tensors.remove("lm_head.weight");
    assert_eq!(
        Llama::from_host_tensors(&config, &tensors, &device).unwrap_err(),
        ModelError::MissingTensor("lm_head.weight".into())
    );
}

#[test]
fn rope_scaling_types_are_checked() {
    let (mut config, tensors) = tiny();
    let device = Device::default();
    config.rope_scaling = Some(serde_json::json!({"rope_type": "yarn", "factor": 4.0}));
    assert_eq!(
        Llama::from_host_tensors(&config, &tensors, &device).unwrap_err(),
        ModelError::UnsupportedRopeScaling("yarn".into())
    );
    config.rope_scaling = Some(serde_json::json!({"type": "linear"}));
    assert_eq!(
        Llama::from_host_tensors(&config, &tensors, &device).unwrap_err(),
        ModelError::InvalidRopeScaling {
            kind: "linear".into(),
            field: "factor".into()
        }
    );
    // Linear scaling divides every inverse frequency by the factor.
    config.rope_scaling = Some(serde_json::json!({"type": "linear", "factor": 4.0}));
    let scaled = llama::model::rope_inv_freq(&config).unwrap();
    config.rope_scaling = None;
    let plain = llama::model::rope_inv_freq(&config).unwrap();
    assert_eq!(plain.len(), 8);
    assert_eq!(plain[0], 1.0);
    for (s, p) in scaled.iter().zip(&plain) {
        assert!((s * 4.0 - p).abs() <= 1e-7 * p, "{s} vs {p}");
    }
}

#[test]
fn gqa_head_counts_must_divide() {
    let (mut config, tensors) = tiny();
    config.num_key_value_heads = Some(3);
    assert!(matches!(
        Llama::from_host_tensors(&config, &tensors, &Device::default()),
        Err(ModelError::InvalidConfig(msg)) if msg.contains("num_key_value_heads 3")
    ));
    // 64 heads of width 1: rotary embeddings rotate pairs, so the head width must be even.
    config.num_key_value_heads = Some(64);
    config.num_attention_heads = 64;
    assert!(matches!(
        Llama::from_host_tensors(&config, &tensors, &Device::default()),
        Err(ModelError::InvalidConfig(msg)) if msg.contains("head dimension 1")
    ));
}
