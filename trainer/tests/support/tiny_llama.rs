//! A tiny random LLaMA checkpoint for end-to-end tests of the binaries (`run_llama.rs`,
//! `hub_download.rs`).

use std::path::{Path, PathBuf};

use llama::io::host::{HostTensor, HostTensors};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random HF-format LLaMA folder (weights N(0, 0.02²), seeded) with the byte tokenizer.
pub fn tiny_model(dir: &Path) -> PathBuf {
    let (v, d, ff, layers, heads, kv) = (259usize, 32usize, 64usize, 2usize, 4usize, 2usize);
    let hd = d / heads;
    let config = serde_json::json!({
        "vocab_size": v, "hidden_size": d, "intermediate_size": ff,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 512,
        "tie_word_embeddings": true, "bos_token_id": 257, "eos_token_id": 258
    });
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut random = |shape: &[usize]| HostTensor {
        shape: shape.to_vec(),
        data: (0..shape.iter().product::<usize>())
            .map(|_| (rng.random::<f32>() - 0.5) * 0.07)
            .collect(),
    };
    let ones = |n: usize| HostTensor {
        shape: vec![n],
        data: vec![1.0; n],
    };
    let mut t = HostTensors::new();
    t.insert("model.embed_tokens.weight".into(), random(&[v, d]));
    t.insert("model.norm.weight".into(), ones(d));
    for i in 0..layers {
        let p = format!("model.layers.{i}.");
        for (name, shape) in [
            ("self_attn.q_proj.weight", [heads * hd, d]),
            ("self_attn.k_proj.weight", [kv * hd, d]),
            ("self_attn.v_proj.weight", [kv * hd, d]),
            ("self_attn.o_proj.weight", [d, heads * hd]),
            ("mlp.gate_proj.weight", [ff, d]),
            ("mlp.up_proj.weight", [ff, d]),
            ("mlp.down_proj.weight", [d, ff]),
        ] {
            t.insert(format!("{p}{name}"), random(&shape));
        }
        t.insert(format!("{p}input_layernorm.weight"), ones(d));
        t.insert(format!("{p}post_attention_layernorm.weight"), ones(d));
    }
    let model = dir.join("tiny-llama");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    llama::io::safetensors::save_host_tensors(&model.join("model.safetensors"), &t).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../llama/fixtures/byte_tokenizer")
                .join(f),
            model.join(f),
        )
        .unwrap();
    }
    model
}

/// The burn LLaMA learner of `config` on the CPU, its adapter seeded by `seed` (not every test
/// binary that builds the tiny model opens one).
#[allow(dead_code)]
pub fn learner(config: &trainer::config::Config, seed: u64) -> trainer::model::LlamaLearner {
    let mut config = config.clone();
    config.model.device = "cpu".into();
    config.run.seed = seed;
    trainer::model::LlamaLearner::from_config(Path::new(&config.model.path), &config).unwrap()
}
