//! `hf:owner/name` model paths (feature `hub`) end to end, without network: a stand-in for the
//! Hub's file API (`trainer/tests/support/hub_server.py`) serves the tiny LLaMA folder; `trainer
//! generate` downloads what a checkpoint needs into the HF cache (`HF_HOME`) and runs it, and a
//! missing repository fails with a message naming it.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The stand-in Hub, killed on drop.
struct Hub {
    child: Child,
    endpoint: String,
}

impl Hub {
    fn serve(repo: &str, folder: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hub_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(repo)
            .arg(folder)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the stand-in Hub");
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        Hub {
            child,
            endpoint: format!("http://127.0.0.1:{}", port.trim()),
        }
    }

    fn generate(&self, hf_home: &Path, model: &str) -> Output {
        Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args([
                "generate",
                "--model",
                model,
                "--prompt",
                "ab",
                "--max-new-tokens",
                "3",
            ])
            .args(["--device", "cpu"])
            .env("HF_ENDPOINT", &self.endpoint)
            .env("HF_HOME", hf_home)
            .env_remove("HF_TOKEN")
            .output()
            .unwrap()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn hf_models_download_into_the_cache_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let repo = tiny_llama::tiny_model(dir.path());
    std::fs::write(repo.join("README.md"), "not needed by a checkpoint").unwrap();
    let hub = Hub::serve("inscl/tiny-llama", &repo);
    let hf_home = dir.path().join("hf");

    let out = hub.generate(&hf_home, "hf:inscl/tiny-llama");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let snapshot = hf_home
        .join("hub/models--inscl--tiny-llama/snapshots/0123456789abcdef0123456789abcdef01234567");
    assert!(
        stderr.contains(&format!("model {} on cpu", snapshot.display())),
        "{stderr}"
    );
    let mut fetched: Vec<String> = std::fs::read_dir(&snapshot)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fetched.sort();
    assert_eq!(
        fetched,
        [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    for file in &fetched {
        assert_eq!(
            std::fs::read(snapshot.join(file)).unwrap(),
            std::fs::read(repo.join(file)).unwrap(),
            "{file}"
        );
    }

    let out = hub.generate(&hf_home, "hf:inscl/absent@v1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("inscl/absent@v1"), "{stderr}");
}
