//! `trainer generate` on the real SmolLM2-135M-Instruct (assets/, fetched by
//! `scripts/fetch-assets`): the chat answer to "What is the capital of France?" names Paris.
//! Fails when the asset is absent (`scripts/test` fetches it first). In a debug build this
//! takes about a minute (GGUF dequantisation and an unoptimised forward); `--release` takes
//! seconds.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;
use std::process::Command;

#[test]
fn chat_answers_the_capital_of_france() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = root.join("assets/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/fetch-assets",
        model.display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .current_dir(&root)
        .args([
            "generate",
            "--chat",
            "--max-new-tokens",
            "12",
            "--device",
            "cpu",
        ])
        .args(["--prompt", "What is the capital of France?"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("Paris"), "answer: {stdout:?}");
    assert!(stderr.contains("tokens/s"), "{stderr}");
    assert!(stderr.contains("cpu (flex"), "{stderr}");
}

#[test]
fn gpu_without_a_gpu_backend_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args([
            "generate",
            "--device",
            "gpu",
            "--prompt",
            "hi",
            "--model",
            "missing.gguf",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no GPU backend"), "{stderr}");
}
