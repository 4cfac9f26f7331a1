//! The model-file readers on mutated real files (`shared/tests/support/fuzz.rs`): GGUF (a small
//! LLaMA GGUF with an embedded tokenizer, built here: header, config, tensors, vocabulary),
//! safetensors (the tiny checkpoints and PEFT adapter of `llama/fixtures`), `tokenizer.json`
//! and `tokenizer_config.json` (`llama/fixtures/byte_tokenizer`). No panic, bounded allocation,
//! errors that name the file. `INSCL_FUZZ_CASES` sets the cases per reader.
#![cfg(not(target_arch = "wasm32"))]

#[path = "../../shared/tests/support/fuzz.rs"]
mod fuzz;

#[global_allocator]
static ALLOCATOR: fuzz::Counting = fuzz::Counting;
mod support;

use std::path::{Path, PathBuf};

use llama::io::gguf::GgufFile;
use llama::io::host::HostTensors;
use llama::tokenizer::Tokenizer;
use support::gguf::Builder;

fn tiny_tokenizer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/byte_tokenizer")
}

/// A LLaMA GGUF (d = 8, one layer, 2 query / 1 key-value heads, F32, F16 and Q8_0 tensors)
/// with the byte-level vocabulary of `fixtures/byte_tokenizer/tokenizer.json`, two merges,
/// token types, BOS/EOS and a ChatML template; without `vocab`, only the config and the
/// tensors (so that more mutations hit the tensor directory).
fn tiny_gguf(vocab: bool) -> Vec<u8> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tiny_tokenizer().join("tokenizer.json")).unwrap())
            .unwrap();
    let mut tokens: Vec<(u64, String)> = json["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(t, id)| (id.as_u64().unwrap(), t.clone()))
        .collect();
    for added in json["added_tokens"].as_array().unwrap() {
        let content = added["content"].as_str().unwrap().to_owned();
        tokens.push((added["id"].as_u64().unwrap(), content));
    }
    tokens.sort();
    tokens.dedup_by_key(|(id, _)| *id);
    let mut tokens: Vec<String> = tokens.into_iter().map(|(_, t)| t).collect();
    tokens.extend(["Ġt".to_owned(), "he".to_owned()]);
    let strings = |items: &[String]| {
        let mut v = 8u32.to_le_bytes().to_vec();
        v.extend((items.len() as u64).to_le_bytes());
        for s in items {
            Builder::string(&mut v, s);
        }
        v
    };
    let mut types = 5u32.to_le_bytes().to_vec();
    types.extend((tokens.len() as u64).to_le_bytes());
    for t in &tokens {
        let control = t.starts_with("<|");
        types.extend(if control { 3i32 } else { 1 }.to_le_bytes());
    }
    let u32_kv = |b: Builder, key: &str, v: u32| b.kv(key, 4, &v.to_le_bytes());
    let f32s = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (i as f32 * 0.01).to_le_bytes())
            .collect()
    };
    let f16s = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| half::f16::from_f32(i as f32 * 0.01).to_le_bytes())
            .collect()
    };
    let q8 = |blocks: usize| -> Vec<u8> {
        (0..blocks)
            .flat_map(|_| {
                let mut b = half::f16::from_f32(0.5).to_le_bytes().to_vec();
                b.extend(0..32u8);
                b
            })
            .collect()
    };
    let (d, ff, v) = (8u64, 32u64, tokens.len() as u64);
    let mut b = Builder::new().kv_str("general.architecture", "llama");
    for (key, value) in [
        ("llama.embedding_length", d as u32),
        ("llama.block_count", 1),
        ("llama.feed_forward_length", ff as u32),
        ("llama.attention.head_count", 2),
        ("llama.attention.head_count_kv", 1),
        ("llama.rope.dimension_count", 4),
        ("llama.context_length", 64),
        ("tokenizer.ggml.bos_token_id", 257),
        ("tokenizer.ggml.eos_token_id", 258),
    ] {
        b = u32_kv(b, key, value);
    }
    b = b.kv(
        "llama.attention.layer_norm_rms_epsilon",
        6,
        &1e-5f32.to_le_bytes(),
    );
    if vocab {
        let merges = ["Ġ t".to_owned(), "h e".to_owned()];
        b = b
            .kv_str("tokenizer.ggml.model", "gpt2")
            .kv_str("tokenizer.ggml.pre", "smollm")
            .kv("tokenizer.ggml.tokens", 9, &strings(&tokens))
            .kv("tokenizer.ggml.merges", 9, &strings(&merges))
            .kv("tokenizer.ggml.token_type", 9, &types)
            .kv("tokenizer.ggml.add_bos_token", 7, &[0])
            .kv_str(
                "tokenizer.chat_template",
                "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + \
                 message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}",
            );
    }
    let n = |dims: &[u64]| dims.iter().product::<u64>() as usize;
    for (name, dims, type_id) in [
        ("token_embd.weight", [d, v], 1),
        ("output_norm.weight", [d, 1], 0),
        ("blk.0.attn_norm.weight", [d, 1], 0),
        ("blk.0.attn_q.weight", [d, d], 0),
        ("blk.0.attn_k.weight", [d, 4], 0),
        ("blk.0.attn_v.weight", [d, 4], 1),
        ("blk.0.attn_output.weight", [d, d], 0),
        ("blk.0.ffn_norm.weight", [d, 1], 0),
        ("blk.0.ffn_gate.weight", [d, ff], 1),
        ("blk.0.ffn_up.weight", [d, ff], 0),
        ("blk.0.ffn_down.weight", [ff, d], 8),
    ] {
        let dims = if dims[1] == 1 { &dims[..1] } else { &dims[..] };
        let data = match type_id {
            0 => f32s(n(dims)),
            1 => f16s(n(dims)),
            _ => q8(n(dims) / 32),
        };
        b = b.tensor(name, dims, type_id, &data);
    }
    b.bytes(3)
}

#[test]
fn the_seed_gguf_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    std::fs::write(&path, tiny_gguf(true)).unwrap();
    let (config, tensors) = llama::io::gguf::load_llama(&path).unwrap();
    assert_eq!((config.hidden_size, tensors.len()), (8, 11));
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_eq!(tok.encode(" the", false).unwrap().len(), 2);
}

/// GGUF: the header, `llama_config`, every tensor dequantised, the embedded tokenizer.
#[test]
fn gguf() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = vec![tiny_gguf(true), tiny_gguf(false), Builder::new().bytes(2)];
    let file = dir.path().join("model.gguf");
    fuzz::fuzz("gguf", seeds, &file, &file, |path| {
        let loaded = llama::io::gguf::load_llama(path)
            .err()
            .map(|e| e.to_string());
        let tokenizer = GgufFile::open(path)
            .map_err(llama::tokenizer::TokenizerError::from)
            .and_then(|file| Tokenizer::from_gguf(&file));
        loaded.or_else(|| tokenizer.err().map(|e| e.to_string()))
    });
}

/// safetensors: every tensor of one file as f32.
#[test]
fn safetensors() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let seeds = [
        "tiny_llama_tied/model.safetensors",
        "tiny_llama_llama3/model-00002-of-00002.safetensors",
        "peft_adapter/adapter_model.safetensors",
    ]
    .map(|f| std::fs::read(fixtures.join(f)).unwrap())
    .to_vec();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    fuzz::fuzz("safetensors", seeds, &file, &file, |path| {
        llama::io::safetensors::read_file_into(path, &mut HostTensors::new())
            .err()
            .map(|e| e.to_string())
    });
}

/// `tokenizer.json` (Hugging Face `tokenizers`).
#[test]
fn tokenizer_json() {
    let seeds = vec![std::fs::read(tiny_tokenizer().join("tokenizer.json")).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenizer.json");
    fuzz::fuzz("tokenizer.json", seeds, &file, &file, |path| {
        Tokenizer::from_file(path).err().map(|e| e.to_string())
    });
}

/// `tokenizer_config.json` (BOS/EOS, chat template) beside a valid `tokenizer.json`.
#[test]
fn tokenizer_config_json() {
    let seeds = vec![std::fs::read(tiny_tokenizer().join("tokenizer_config.json")).unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_tokenizer().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let file = dir.path().join("tokenizer_config.json");
    fuzz::fuzz("tokenizer_config.json", seeds, &file, &file, |_| {
        Tokenizer::from_hf_dir(dir.path())
            .err()
            .map(|e| e.to_string())
    });
}

/// What the fuzzer rarely builds: arrays nested 100 000 deep (a stack overflow before the
/// depth limit), a tensor offset and an F32 tensor size near 2⁶⁴ (u64 overflows), a query
/// weight with no rows (a division by zero).
#[test]
fn extreme_headers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extreme.gguf");
    let error = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        let message = llama::io::gguf::load_llama(&path).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        message
    };
    let mut nested = Vec::new();
    for _ in 0..100_000 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    nested.extend(4u32.to_le_bytes());
    nested.extend(1u64.to_le_bytes());
    nested.extend(7u32.to_le_bytes());
    let message = error(Builder::new().kv("deep", 9, &nested).bytes(3));
    assert!(message.contains("nested more than 8 deep"), "{message}");

    let mut far = tiny_gguf(false);
    let name = b"blk.0.ffn_down.weight";
    let at = far.windows(name.len()).rposition(|w| w == name).unwrap() + name.len();
    // After the name: n_dims (4 bytes), 2 dims (16), the type (4), then the offset.
    far[at + 24..at + 32].copy_from_slice(&(u64::MAX - 31).to_le_bytes());
    let message = error(far);
    assert!(
        message.contains("data of tensor \"blk.0.ffn_down.weight\""),
        "{message}"
    );

    let huge = Builder::new()
        .tensor("token_embd.weight", &[1 << 61, 4], 0, &[])
        .bytes(3);
    let message = error(huge);
    assert!(message.contains("byte size of F32"), "{message}");

    let no_rows = Builder::new()
        .kv_str("general.architecture", "llama")
        .kv("llama.embedding_length", 4, &8u32.to_le_bytes())
        .kv("llama.block_count", 4, &1u32.to_le_bytes())
        .kv("llama.feed_forward_length", 4, &8u32.to_le_bytes())
        .kv("llama.attention.head_count", 4, &2u32.to_le_bytes())
        .kv("llama.vocab_size", 4, &8u32.to_le_bytes())
        .tensor("blk.0.attn_q.weight", &[8, 0], 0, &[])
        .bytes(3);
    let message = error(no_rows);
    assert!(message.contains("blk.0.attn_q.weight"), "{message}");
}
