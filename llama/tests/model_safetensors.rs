//! HF checkpoint directories: dtype conversion (F32/F16/BF16 → f32), single vs sharded files,
//! and errors.

use std::path::PathBuf;

use llama::io::safetensors::{SafetensorsError, load_llama};
use safetensors::{Dtype, tensor::TensorView};

const CONFIG: &str = r#"{"vocab_size": 4, "hidden_size": 2, "intermediate_size": 4,
  "num_hidden_layers": 1, "num_attention_heads": 1, "eos_token_id": [2, 3]}"#;

/// A fresh temporary directory (removed when dropped) with `config.json`, and its path.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), CONFIG).unwrap();
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

fn write(path: PathBuf, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views = tensors.iter().map(|(n, dtype, shape, bytes)| {
        (*n, TensorView::new(*dtype, shape.clone(), bytes).unwrap())
    });
    safetensors::serialize_to_file(views, None, &path).unwrap();
}

#[test]
fn half_precision_tensors_become_exact_f32() {
    // Values exactly representable in both half formats.
    let values = [1.0f32, -2.5, 0.15625, 4096.0];
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let f32: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    let (_tmp, dir) = scratch();
    write(
        dir.join("model.safetensors"),
        &[
            ("a", Dtype::F16, vec![2, 2], f16),
            ("b", Dtype::BF16, vec![4], bf16),
            ("c", Dtype::F32, vec![1, 4], f32),
        ],
    );
    let (config, tensors) = load_llama(&dir).unwrap();
    assert_eq!(config.vocab_size, 4);
    assert_eq!(config.eos_token_id, Some(serde_json::json!([2, 3])));
    assert_eq!(tensors["a"].shape, vec![2, 2]);
    assert_eq!(tensors["b"].shape, vec![4]);
    assert_eq!(tensors["c"].shape, vec![1, 4]);
    for name in ["a", "b", "c"] {
        assert_eq!(tensors[name].data, values, "{name}");
    }
    // BF16 keeps 8 significand bits: 1 + 2^-8 rounds to 1 (ties to even), 1 + 2^-7 is exact.
    let (_tmp, dir) = scratch();
    let bytes = [1.0f32 + 1.0 / 256.0, 1.0 + 1.0 / 128.0]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    write(
        dir.join("model.safetensors"),
        &[("x", Dtype::BF16, vec![2], bytes)],
    );
    assert_eq!(
        load_llama(&dir).unwrap().1["x"].data,
        vec![1.0, 1.0 + 1.0 / 128.0]
    );
}

#[test]
fn sharded_checkpoint_reads_every_shard() {
    let (_, tensors) = load_llama(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tiny_llama_untied"),
    )
    .unwrap();
    // 2 layers × 9 tensors + embedding + final norm + untied head.
    assert_eq!(tensors.len(), 21);
    assert_eq!(tensors["lm_head.weight"].shape, vec![128, 64]);
    assert_eq!(tensors["model.embed_tokens.weight"].shape, vec![128, 64]);
}

#[test]
fn errors_name_the_problem() {
    let (_tmp, dir) = scratch();
    assert!(matches!(load_llama(&dir), Err(SafetensorsError::NoWeights(d)) if d == dir));
    write(
        dir.join("model.safetensors"),
        &[("ids", Dtype::I32, vec![1], 7i32.to_le_bytes().to_vec())],
    );
    assert!(matches!(
        load_llama(&dir),
        Err(SafetensorsError::UnsupportedDtype { name, dtype: Dtype::I32 }) if name == "ids"
    ));
    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    assert!(matches!(
        load_llama(&dir),
        Err(SafetensorsError::Format { .. })
    ));
    std::fs::write(dir.join("config.json"), "{").unwrap();
    assert!(matches!(
        load_llama(&dir),
        Err(SafetensorsError::Json { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(load_llama(&dir), Err(SafetensorsError::Io { .. })));
}
