//! llama::tokenizer from a Hugging Face directory (tokenizer.json + tokenizer_config.json)
//! and its errors, on a hand-written byte-level BPE with a known segmentation.

use llama::tokenizer::{ChatTemplate, Tokenizer, TokenizerError};

/// Vocab: the byte-level letters a, b, c, Ġ (space), merges "a b" → "ab", "Ġ ab" → "Ġab";
/// special tokens <|im_start|> and <|im_end|>.
const TOKENIZER_JSON: &str = r#"{
  "version": "1.0",
  "added_tokens": [
    {"id": 6, "content": "<|im_start|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 7, "content": "<|im_end|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": true},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}
  ]},
  "post_processor": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "Ġab": 5, "<|im_start|>": 6, "<|im_end|>": 7},
            "merges": ["a b", "Ġ ab"]}
}"#;

const CONFIG_JSON: &str = r#"{
  "bos_token": "<|im_start|>",
  "eos_token": {"content": "<|im_end|>", "special": true},
  "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
}"#;

fn dir(name: &str, config: Option<&str>) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llama-tok-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER_JSON).unwrap();
    if let Some(config) = config {
        std::fs::write(dir.join("tokenizer_config.json"), config).unwrap();
    }
    dir
}

#[test]
fn hf_dir_with_config() {
    let d = dir("config", Some(CONFIG_JSON));
    let tok = Tokenizer::from_hf_dir(&d).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id()), (Some(6), Some(7)));
    assert_eq!(
        tok.chat_template(),
        Some(&ChatTemplate::ChatMl {
            default_system: None
        })
    );
    // "ab ab c" → ab, Ġab, Ġ, c;  special tokens stay whole.
    assert_eq!(tok.encode("ab ab c", false).unwrap(), vec![4, 5, 3, 2]);
    assert_eq!(
        tok.encode("<|im_start|>abc<|im_end|>", true).unwrap(),
        vec![6, 4, 2, 7]
    );
    assert_eq!(
        tok.decode(&[6, 4, 5, 7], false).unwrap(),
        "<|im_start|>ab ab<|im_end|>"
    );
    assert_eq!(tok.decode(&[6, 4, 5, 7], true).unwrap(), "ab ab");
    assert_eq!(tok.vocab_size(), 8);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn hf_dir_without_config() {
    let d = dir("plain", None);
    let tok = Tokenizer::from_hf_dir(&d).unwrap();
    assert_eq!((tok.bos_id(), tok.eos_id()), (None, None));
    assert!(tok.chat_template().is_none());
    assert_eq!(tok.token_id("Ġab"), Some(5));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn file_errors_name_the_file() {
    let d = dir(
        "bad",
        Some(r#"{"chat_template": "[INST] {{ x }} [/INST]"}"#),
    );
    let err = Tokenizer::from_hf_dir(&d).unwrap_err();
    assert!(
        matches!(err, TokenizerError::UnknownChatTemplate { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("tokenizer_config.json: chat_template"),
        "{msg}"
    );

    std::fs::write(d.join("tokenizer.json"), "{ not json").unwrap();
    let msg = Tokenizer::from_file(d.join("tokenizer.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");

    let msg = Tokenizer::from_file(d.join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.json"), "{msg}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn gguf_with_sentencepiece_vocab_is_unsupported() {
    // GGUF v3, no tensors, one key: tokenizer.ggml.model = "llama" (a sentencepiece vocab).
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    let key = "tokenizer.ggml.model";
    bytes.extend((key.len() as u64).to_le_bytes());
    bytes.extend(key.as_bytes());
    bytes.extend(8u32.to_le_bytes());
    bytes.extend(5u64.to_le_bytes());
    bytes.extend(b"llama");
    let path = std::env::temp_dir().join(format!("llama-tok-test-{}-spm.gguf", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let file = llama::io::gguf::GgufFile::open(&path).unwrap();
    let msg = Tokenizer::from_gguf(&file).unwrap_err().to_string();
    std::fs::remove_file(&path).unwrap();
    assert!(
        msg.contains("tokenizer.ggml.model = \"llama\" is not supported (supported: gpt2)"),
        "{msg}"
    );
}
