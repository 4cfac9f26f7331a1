//! The `llm` tagger on an OpenAI-compatible server (`[tagger] endpoint`, issue 28): InsTag's
//! prompt as one user message per instruction, answers kept in order with bounded
//! concurrency, retries with backoff on 429 / 5xx, errors that name the URL and status, the
//! run's `tags.json` cache (a resume asks nothing), and an API key that reaches the
//! `Authorization` header and nothing else: not the run folder, not stdout or stderr, not an
//! error. Against the stand-in server of `support/chat_stub.rs`, and against a real one:
//! llama-cpp-python's server with the shipped SmolLM2 GGUF (`tools/tagger-server/serve`,
//! installed by `scripts/setup-tools`); where it cannot start, that test reports itself
//! skipped.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/chat_stub.rs"]
mod chat_stub;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chat_stub::{Answer, ChatStub, completion, status};
use trainer::config::{Config, TaggerConfig};
use trainer::tags::api::{ApiError, ChatApi};
use trainer::tags::llm::{self, LlmTagFile, TagOrigin, instag_prompt};

/// A variable no test sets: requests go without a key.
const UNSET_KEY_VAR: &str = "INSCL_TAGGER_TEST_NO_KEY";

fn tagger(endpoint: &str, concurrency: usize, max_retries: u32) -> TaggerConfig {
    TaggerConfig {
        endpoint: Some(endpoint.to_owned()),
        model: Some("stub-model".into()),
        api_key_env: UNSET_KEY_VAR.into(),
        concurrency,
        max_retries,
        ..Config::embedded_default().tagger
    }
}

fn api(config: &TaggerConfig) -> ChatApi {
    ChatApi::new(config).with_first_wait(Duration::from_millis(1))
}

/// The instruction inside an InsTag prompt.
fn instruction_of(prompt: &str) -> &str {
    let start = prompt.find("[begin]\n").unwrap() + "[begin]\n".len();
    let end = prompt.find("\n[end]").unwrap();
    &prompt[start..end]
}

#[test]
fn prompts_are_answered_in_order_with_bounded_concurrency() {
    let stub = ChatStub::start(Duration::from_millis(20), |_, request| {
        let prompt = request.body["messages"][0]["content"].as_str().unwrap();
        completion(&format!("[{{\"tag\": \"{}\"}}]", instruction_of(prompt)))
    });
    let prompts: Vec<String> = (0..8)
        .map(|i| instag_prompt(&format!("Instruction {i}")))
        .collect();
    let replies = api(&tagger(&stub.endpoint, 3, 0)).chat(&prompts).unwrap();
    let expected: Vec<String> = (0..8)
        .map(|i| format!("[{{\"tag\": \"Instruction {i}\"}}]"))
        .collect();
    assert_eq!(replies, expected);
    let requests = stub.requests();
    assert_eq!(requests.len(), 8);
    for request in &requests {
        let body = &request.body;
        assert_eq!(body["model"], "stub-model");
        assert_eq!(body["max_tokens"], 96);
        assert_eq!(body["temperature"], 0.0);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0]["role"], "user");
        assert!(prompts.contains(&messages[0]["content"].as_str().unwrap().to_owned()));
        assert_eq!(request.authorization, None);
    }
    assert!(stub.max_in_flight() <= 3, "{}", stub.max_in_flight());
}

#[test]
fn rate_limits_and_server_errors_are_retried_then_given_up() {
    let prompt = vec![instag_prompt("Add the numbers.")];
    // 429 (with Retry-After), 503, then an answer.
    let stub = ChatStub::start(Duration::ZERO, |n, _| match n {
        0 => Answer {
            headers: vec![("Retry-After", "0".into())],
            ..status(429, "{\"error\": \"rate limited\"}")
        },
        1 => status(503, "busy"),
        _ => completion("[\"Arithmetic\"]"),
    });
    let replies = api(&tagger(&stub.endpoint, 1, 5)).chat(&prompt).unwrap();
    assert_eq!(replies, ["[\"Arithmetic\"]"]);
    assert_eq!(stub.requests().len(), 3);

    // Every answer a 500: the first try and 2 retries, then an error with the last answer.
    let stub = ChatStub::start(Duration::ZERO, |_, _| status(500, "overloaded"));
    let err = api(&tagger(&stub.endpoint, 1, 2))
        .chat(&prompt)
        .unwrap_err();
    assert!(matches!(err, ApiError::GaveUp { attempts: 3, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "{}/chat/completions: no answer after 3 attempts; the last: 500: overloaded",
            stub.endpoint
        )
    );
    assert_eq!(stub.requests().len(), 3);

    // A 400 is not retried; a 2xx that is not a chat completion is an error too.
    let stub = ChatStub::start(Duration::ZERO, |n, _| match n {
        0 => status(400, "{\"error\": \"unknown model\"}"),
        _ => status(200, "{\"object\": \"list\"}"),
    });
    let api = api(&tagger(&stub.endpoint, 1, 5));
    let err = api.chat(&prompt).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}/chat/completions answered 400: {{\"error\": \"unknown model\"}}",
            stub.endpoint
        )
    );
    let err = api.chat(&prompt).unwrap_err().to_string();
    assert!(
        err.contains("not a chat completion (no choices[0].message)"),
        "{err}"
    );
    assert_eq!(stub.requests().len(), 2);
}

/// Every file under `folder`, as text.
fn texts_under(folder: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                found.push((path, text));
            }
        }
    }
    found
}

#[test]
fn a_run_tags_through_the_endpoint_caches_and_never_writes_the_key() {
    const KEY_VAR: &str = "INSCL_TAGGER_TEST_KEY";
    const KEY: &str = "sk-test-SECRET-0123456789";
    let root = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(root.path());
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni");
    let run = |endpoint: &str, extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
        command.current_dir(&fixtures).arg("run").args(extra);
        if extra.is_empty() {
            for set in [
                format!("model.path={:?}", model.display().to_string()),
                "data.path=\"inscl/categories.json\"".into(),
                "data.first=2".into(),
                "data.held_out=0.25".into(),
                "strategy.tags=\"llm\"".into(),
                format!("tagger.endpoint={endpoint:?}"),
                "tagger.model=\"stub-model\"".into(),
                format!("tagger.api_key_env={KEY_VAR:?}"),
                "tagger.batch_size=2".into(),
                "training.batch_size=4".into(),
                "training.max_length=64".into(),
                "eval.max_new_tokens=4".into(),
            ] {
                command.arg("--set").arg(set);
            }
            command
                .arg("--output")
                .arg(root.path().join("runs"))
                .args(["--name", "api"]);
        }
        let output = command.env(KEY_VAR, KEY).output().unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), printed)
    };
    let stub = ChatStub::start(Duration::ZERO, |_, request| {
        let prompt = request.body["messages"][0]["content"].as_str().unwrap();
        let words: Vec<&str> = instruction_of(prompt).split_whitespace().take(2).collect();
        completion(&format!(
            "[{{\"tag\": \"{}\", \"explanation\": \"the start\"}}]",
            words.join(" ")
        ))
    });
    let (ok, printed) = run(&stub.endpoint, &[]);
    assert!(ok, "{printed}");
    let folder = root.path().join("runs/api");
    let tags: LlmTagFile =
        serde_json::from_str(&std::fs::read_to_string(folder.join("tags.json")).unwrap()).unwrap();
    let name = format!("stub-model at {}/chat/completions", stub.endpoint);
    assert_eq!(tags.model, name);
    // The two categories' four SuperNI tasks: four instructions, each asked once.
    assert_eq!(tags.instructions.len(), 4);
    assert!(tags.instructions.iter().all(|r| r.origin == TagOrigin::Llm));
    let requests = stub.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );
    }
    assert!(
        printed.contains(&format!("llm tags: 4 instructions by {name}")),
        "{printed}"
    );
    // The key is nowhere but in the header.
    assert!(!printed.contains("SECRET"), "{printed}");
    for (path, text) in texts_under(&folder) {
        assert!(!text.contains("SECRET"), "{}", path.display());
    }
    // A resume reads tags.json: nothing is asked again.
    let (ok, printed) = run(
        &stub.endpoint,
        &["--resume", folder.to_str().unwrap(), "--quiet"],
    );
    assert!(ok, "{printed}");
    assert_eq!(stub.requests().len(), 4);

    // A refused key: the error names the variable, not the key, and not the server's answer
    // (which quotes the key).
    let refusing = ChatStub::start(Duration::ZERO, |_, _| {
        status(
            401,
            &format!("{{\"error\": \"Incorrect API key provided: {KEY}\"}}"),
        )
    });
    std::fs::remove_dir_all(&folder).unwrap();
    let (ok, printed) = run(&refusing.endpoint, &[]);
    assert!(!ok);
    assert!(
        printed.contains("answered 401")
            && printed.contains(&format!("check the key in ${KEY_VAR}")),
        "{printed}"
    );
    assert!(!printed.contains("SECRET"), "{printed}");
    for (path, text) in texts_under(&root.path().join("runs")) {
        assert!(!text.contains("SECRET"), "{}", path.display());
    }
}

/// `tools/tagger-server/serve` running on a free port, stopped on drop.
struct RealServer {
    child: Child,
    endpoint: String,
}

impl Drop for RealServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RealServer {
    /// The server, ready; or why it could not start.
    fn start(log: &Path) -> Result<Self, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(root.join("tools/tagger-server/serve"))
            .current_dir(&root)
            .args(["--no-install", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).map_err(|e| e.to_string())?)
            .spawn()
            .map_err(|e| format!("tools/tagger-server/serve: {e}"))?;
        let mut server = RealServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}/v1"),
        };
        let started = Instant::now();
        let models = format!("{}/models", server.endpoint);
        loop {
            if let Some(exit) = server.child.try_wait().map_err(|e| e.to_string())? {
                let said = std::fs::read_to_string(log).unwrap_or_default();
                let last = said.lines().last().unwrap_or("").to_owned();
                return Err(format!("the server exited ({exit}): {last}"));
            }
            if ureq::get(&models).call().is_ok() {
                return Ok(server);
            }
            if started.elapsed() > Duration::from_secs(180) {
                return Err("the server did not answer within 180 s".into());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[test]
fn a_real_openai_compatible_server_tags_instructions() {
    let dir = tempfile::tempdir().unwrap();
    let server = match RealServer::start(&dir.path().join("server.log")) {
        Ok(server) => server,
        Err(reason) => {
            eprintln!(
                "skipped: tagger_api::a_real_openai_compatible_server_tags_instructions ({reason})"
            );
            return;
        }
    };
    // Six real SuperNI definitions (the InsCL16 fixture's task files).
    let tasks = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni/inscl/tasks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tasks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let instructions: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let task: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            // A list in current SuperNI files, a plain string in older ones.
            let definition = &task["Definition"];
            let text = definition[0]
                .as_str()
                .or_else(|| definition.as_str())
                .unwrap()
                .to_owned();
            (trainer::data::instruction_id(&text), text)
        })
        .collect();
    let config = TaggerConfig {
        model: Some("SmolLM2-135M-Instruct".into()),
        ..tagger(&server.endpoint, 2, 2)
    };
    let api = ChatApi::new(&config);
    let mut file = LlmTagFile::new(&api.describe());
    let mut chat = |prompts: &[String]| Ok(api.chat(prompts)?);
    for batch in instructions.iter().collect::<Vec<_>>().chunks(3) {
        llm::tag_batch(&mut file, batch, &mut chat, 5).unwrap();
    }
    assert_eq!(file.instructions.len(), 6);
    let (mut retried, mut fell_back) = (0, 0);
    for (record, (id, text)) in file.instructions.iter().zip(&instructions) {
        assert_eq!((&record.id, &record.text), (id, text));
        // The server wrote something for every prompt it was asked.
        assert!(
            record.replies.iter().all(|r| !r.trim().is_empty()),
            "{record:?}"
        );
        assert!(!record.tags.is_empty(), "{record:?}");
        match record.origin {
            TagOrigin::Llm => assert_eq!(record.replies.len(), 1),
            TagOrigin::LlmRetry => retried += 1,
            TagOrigin::KeyphraseFallback => {
                retried += 1;
                fell_back += 1;
                assert_eq!(record.tags, trainer::tags::keyphrases(text, 5));
            }
        }
    }
    assert_eq!((file.retries, file.fallbacks), (retried, fell_back));
    // Greedy decoding: the same prompt gets the same reply again.
    let again = api.chat(&[instag_prompt(&instructions[0].1)]).unwrap();
    assert_eq!(again[0], file.instructions[0].replies[0]);
    eprintln!(
        "tagger_api: {} instructions by {} in {:.1} s ({:.2} instructions/s), {} asked twice, {} fell back to keyphrases",
        file.instructions.len(),
        file.model,
        file.seconds,
        file.tags_per_second(),
        file.retries,
        file.fallbacks
    );
    drop(server);
}
