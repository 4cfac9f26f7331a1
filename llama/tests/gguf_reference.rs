//! llama::io::gguf against the `gguf` Python package (tools/reference/gguf_reference.py):
//! type table, dequantisation of random blocks of every supported type, the q/k row
//! permutation, and the real `assets/SmolLM2-135M-Instruct.Q4_1.gguf`'s metadata, tensor
//! directory and values (those tests fail when `scripts/fetch-assets` has not fetched it).

use std::path::PathBuf;

use llama::io::gguf::{GgmlType, GgufFile, GgufValue, load_llama, quants, unpermute_rows};
use llama::io::host::HostTensor;
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/gguf_reference.json")).unwrap()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn type_named(name: &str) -> Option<GgmlType> {
    GgmlType::ALL.into_iter().find(|t| t.name() == name)
}

/// The fetched SmolLM2 file; fails when it is absent (`scripts/test` fetches it first).
fn asset() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets")
        .join(fixture()["file"]["asset"].as_str().unwrap());
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-assets",
        path.display()
    );
    path
}

#[test]
fn type_table_matches_gguf_package() {
    let fx = fixture();
    let sizes = fx["quant_sizes"].as_object().unwrap();
    for t in GgmlType::ALL {
        let row = &sizes[t.name()];
        assert_eq!(
            [u64::from(t.id()), t.block_size(), t.type_size()],
            [0, 1, 2].map(|i| row[i].as_u64().unwrap()),
            "{t}"
        );
    }
    for (name, row) in sizes {
        let id = row[0].as_u64().unwrap() as u32;
        assert_eq!(GgmlType::from_id(id), type_named(name), "id {id} ({name})");
    }
}

#[test]
fn random_blocks_match_gguf_package() {
    let fx = fixture();
    let blocks = fx["random_blocks"].as_object().unwrap();
    assert_eq!(blocks.len(), GgmlType::DEQUANTIZABLE.len());
    for (name, case) in blocks {
        let dtype = type_named(name).unwrap();
        let hex = case["bytes"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let got = quants::dequantize(dtype, &bytes).unwrap();
        let want = f32s(&case["values"]);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{name} element {i}: {g} vs {w}");
        }
    }
}

#[test]
fn unpermute_inverts_llama_cpp_permute() {
    let fx = fixture();
    let u = &fx["unpermute"];
    let cols = u["cols"].as_u64().unwrap() as usize;
    for (gguf_key, hf_key, heads_key) in [
        ("q_gguf", "q_hf", "n_head"),
        ("k_gguf", "k_hf", "n_head_kv"),
    ] {
        let data = f32s(&u[gguf_key]);
        let t = HostTensor {
            shape: vec![data.len() / cols, cols],
            data,
        };
        let heads = u[heads_key].as_u64().unwrap() as usize;
        let got = unpermute_rows(&t, heads).unwrap();
        assert_ne!(
            t.data,
            f32s(&u[hf_key]),
            "{gguf_key} must differ from HF order"
        );
        assert_eq!(got.data, f32s(&u[hf_key]), "{gguf_key}");
        assert_eq!(got.shape, t.shape);
    }
}

/// Compares a metadata value with its JSON rendering by the `gguf` package.
fn assert_value(key: &str, got: &GgufValue, want: &Value) {
    match want {
        Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{key}"),
        Value::Bool(b) => assert_eq!(got.as_bool(), Some(*b), "{key}"),
        Value::Number(n) if n.is_f64() => assert_eq!(got.as_f64(), n.as_f64(), "{key}"),
        Value::Number(n) => assert_eq!(got.as_i64(), n.as_i64(), "{key}"),
        other => panic!("{key}: unexpected fixture value {other}"),
    }
}

#[test]
fn smollm2_metadata_and_directory() {
    let path = asset();
    let fx = fixture();
    let want = &fx["file"];
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.data_offset(), want["data_offset"].as_u64().unwrap());

    let scalars = want["metadata"].as_object().unwrap();
    let arrays = want["arrays"].as_object().unwrap();
    assert_eq!(file.metadata_entries().len(), scalars.len() + arrays.len());
    for (key, value) in scalars {
        assert_value(key, file.metadata(key).unwrap(), value);
    }
    for (key, expect) in arrays {
        let items = file.get_array(key).unwrap();
        assert_eq!(items.len() as u64, expect["len"].as_u64().unwrap(), "{key}");
        for (i, v) in expect["first"].as_array().unwrap().iter().enumerate() {
            assert_value(&format!("{key}[{i}]"), &items[i], v);
        }
        let last = expect["last"].as_array().unwrap();
        for (i, v) in last.iter().enumerate() {
            assert_value(
                &format!("{key}[-{}]", last.len() - i),
                &items[items.len() - last.len() + i],
                v,
            );
        }
    }

    let tensors = want["tensors"].as_array().unwrap();
    assert_eq!(file.tensors().len(), tensors.len());
    for (got, t) in file.tensors().iter().zip(tensors) {
        assert_eq!(got.name, t["name"].as_str().unwrap());
        let dims: Vec<u64> = t["dims"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(got.dims, dims, "{}", got.name);
        assert_eq!(
            got.dtype.name(),
            t["type"].as_str().unwrap(),
            "{}",
            got.name
        );
        assert_eq!(got.offset, t["offset"].as_u64().unwrap(), "{}", got.name);
    }
}

#[test]
fn smollm2_dequantised_samples() {
    let path = asset();
    let fx = fixture();
    let file = GgufFile::open(&path).unwrap();
    let samples = fx["file"]["samples"].as_object().unwrap();
    let mut types = std::collections::BTreeSet::new();
    for (name, sample) in samples {
        let t = file.dequantize(name).unwrap();
        types.insert(file.tensor(name).unwrap().dtype.name());
        assert_eq!(
            t.data.len() as u64,
            sample["len"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(t.shape, file.tensor(name).unwrap().shape());
        for range in sample["ranges"].as_array().unwrap() {
            let start = range["start"].as_u64().unwrap() as usize;
            let want = f32s(&range["values"]);
            assert_eq!(
                &t.data[start..start + want.len()],
                &want[..],
                "{name} from {start}"
            );
        }
    }
    assert_eq!(types.len(), 3, "F32, Q4_1 and Q8_0 all sampled: {types:?}");
}

#[test]
fn smollm2_load_llama() {
    let path = asset();
    let fx = fixture();
    let meta = &fx["file"]["metadata"];
    let (config, tensors) = load_llama(&path).unwrap();
    let n = |k: &str| meta[k].as_u64().unwrap() as usize;
    assert_eq!(config.hidden_size, n("llama.embedding_length"));
    assert_eq!(config.num_hidden_layers, n("llama.block_count"));
    assert_eq!(config.intermediate_size, n("llama.feed_forward_length"));
    assert_eq!(config.num_attention_heads, n("llama.attention.head_count"));
    assert_eq!(
        config.num_key_value_heads,
        Some(n("llama.attention.head_count_kv"))
    );
    assert_eq!(config.max_position_embeddings, n("llama.context_length"));
    assert_eq!(
        config.vocab_size,
        fx["file"]["arrays"]["tokenizer.ggml.tokens"]["len"]
            .as_u64()
            .unwrap() as usize
    );
    assert_eq!(
        config.rope_theta,
        meta["llama.rope.freq_base"].as_f64().unwrap()
    );
    assert_eq!(
        config.rms_norm_eps,
        meta["llama.attention.layer_norm_rms_epsilon"]
            .as_f64()
            .unwrap()
    );
    assert!(config.tie_word_embeddings);
    assert_eq!(config.bos_token_id, Some(1));
    assert_eq!(config.eos_token_id, Some(serde_json::json!(2)));
    assert_eq!(config.rope_scaling, None);

    // 1 embedding + final norm + 9 per layer, no lm_head (tied).
    assert_eq!(tensors.len(), 2 + 9 * config.num_hidden_layers);
    assert!(!tensors.contains_key("lm_head.weight"));
    let d = config.hidden_size;
    let kv = config.kv_heads() * config.head_dim();
    for (name, shape) in [
        ("model.embed_tokens.weight", vec![config.vocab_size, d]),
        ("model.norm.weight", vec![d]),
        ("model.layers.29.input_layernorm.weight", vec![d]),
        ("model.layers.0.self_attn.q_proj.weight", vec![d, d]),
        ("model.layers.0.self_attn.k_proj.weight", vec![kv, d]),
        ("model.layers.0.self_attn.v_proj.weight", vec![kv, d]),
        ("model.layers.0.self_attn.o_proj.weight", vec![d, d]),
        (
            "model.layers.0.mlp.gate_proj.weight",
            vec![config.intermediate_size, d],
        ),
        (
            "model.layers.0.mlp.up_proj.weight",
            vec![config.intermediate_size, d],
        ),
        (
            "model.layers.0.mlp.down_proj.weight",
            vec![d, config.intermediate_size],
        ),
        ("model.layers.0.post_attention_layernorm.weight", vec![d]),
    ] {
        assert_eq!(tensors[name].shape, shape, "{name}");
    }
    for (name, rows) in fx["file"]["hf_rows"].as_object().unwrap() {
        let t = &tensors[name];
        let cols = t.shape[1];
        for (row, want) in rows.as_object().unwrap() {
            let r: usize = row.parse().unwrap();
            let want = f32s(want);
            assert_eq!(
                &t.data[r * cols..r * cols + want.len()],
                &want[..],
                "{name} row {r}"
            );
        }
    }
}
