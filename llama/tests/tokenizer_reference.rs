//! llama::tokenizer built from SmolLM2's GGUF against tools/reference/tokenizer_reference.py
//! (a pure-Python byte-level BPE, cross-checked there with the Python `tokenizers` package).
//! Needs `assets/SmolLM2-135M-Instruct.Q4_1.gguf` (`scripts/fetch-assets`); fails without it.

use std::path::PathBuf;

use llama::io::gguf::GgufFile;
use llama::tokenizer::{ChatTemplate, Tokenizer};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../fixtures/tokenizer_reference.json")).unwrap()
}

/// The tokenizer of the fetched SmolLM2 file; fails when it is absent (`scripts/test` fetches
/// it first).
fn smollm2() -> Tokenizer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets")
        .join(fixture()["asset"].as_str().unwrap());
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-assets",
        path.display()
    );
    Tokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap()
}

#[test]
fn ids_and_round_trip_match_reference() {
    let tok = smollm2();
    let fx = fixture();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(ids, want, "{text:?}");
        // SmolLM2 does not add BOS (tokenizer.ggml.add_bos_token = false).
        assert_eq!(
            tok.encode(text, true).unwrap(),
            want,
            "{text:?} with add_special"
        );
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
        assert_eq!(
            tok.decode(&ids, true).unwrap(),
            case["decoded_skip_special"].as_str().unwrap(),
            "{text:?}"
        );
    }
}

#[test]
fn special_tokens_and_ids() {
    let tok = smollm2();
    let fx = fixture();
    assert_eq!(tok.vocab_size() as u64, fx["vocab_size"].as_u64().unwrap());
    for (token, id) in fx["special"].as_object().unwrap() {
        assert_eq!(
            tok.token_id(token),
            Some(id.as_u64().unwrap() as u32),
            "{token}"
        );
        assert_eq!(
            tok.encode(token, false).unwrap(),
            vec![id.as_u64().unwrap() as u32],
            "{token}"
        );
    }
    assert_eq!(tok.bos_id(), tok.token_id("<|im_start|>"));
    assert_eq!(tok.eos_id(), tok.token_id("<|im_end|>"));
    assert_eq!(
        tok.token(tok.eos_id().unwrap()).as_deref(),
        Some("<|im_end|>")
    );
}

#[test]
fn chat_template_from_gguf() {
    let tok = smollm2();
    let template = tok.chat_template().expect("SmolLM2 has a chat template");
    assert_eq!(
        template,
        &ChatTemplate::ChatMl {
            default_system: Some(
                "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
            )
        }
    );
    let prompt = template.user_prompt("What is the capital of France?");
    let ids = tok.encode(&prompt, true).unwrap();
    let start = tok.token_id("<|im_start|>").unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == start).count(), 3);
    assert_eq!(tok.decode(&ids, false).unwrap(), prompt);
}
