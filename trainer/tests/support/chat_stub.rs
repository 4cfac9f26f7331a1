//! A stand-in OpenAI-compatible chat server on 127.0.0.1 for the API tagger's tests
//! (`tagger_api.rs`): every request is recorded and answered as the test's script says (status,
//! headers, body), one connection per request (`Connection: close`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// A scripted answer.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// A 200 chat completion whose message is `content`.
pub fn completion(content: &str) -> Answer {
    Answer {
        status: 200,
        headers: Vec::new(),
        body: serde_json::json!({
            "id": "chatcmpl-stub", "object": "chat.completion", "model": "stub",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}]
        })
        .to_string(),
    }
}

/// An answer with `status` and `body`.
pub fn status(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_owned(),
    }
}

/// A running stub server.
pub struct ChatStub {
    /// The base URL to give as `tagger.endpoint` (`http://127.0.0.1:PORT/v1`).
    pub endpoint: String,
    requests: Arc<Mutex<Vec<Request>>>,
    max_in_flight: Arc<AtomicUsize>,
}

type Script = dyn Fn(usize, &Request) -> Answer + Send + Sync;

impl ChatStub {
    /// Starts a server answering request number `n` (from 0) with `script(n, request)`; each
    /// answer is held for `hold`, so that concurrent requests overlap.
    pub fn start(
        hold: Duration,
        script: impl Fn(usize, &Request) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let (recorded, most) = (requests.clone(), max_in_flight.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (recorded, in_flight, most, script) = (
                    recorded.clone(),
                    in_flight.clone(),
                    most.clone(),
                    script.clone(),
                );
                std::thread::spawn(move || {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let (mut length, mut authorization) = (0usize, None);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(value) = lower.strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("authorization:") {
                            authorization = Some(line["authorization:".len()..].trim().to_owned());
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                    let request = Request {
                        authorization,
                        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                    };
                    let n = {
                        let mut all = recorded.lock().unwrap();
                        all.push(request.clone());
                        all.len() - 1
                    };
                    let answer = script(n, &request);
                    std::thread::sleep(hold);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let mut head = format!(
                        "HTTP/1.1 {} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                        answer.status,
                        answer.body.len()
                    );
                    for (name, value) in &answer.headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    let mut stream = stream;
                    let _ = stream.write_all(format!("{head}\r\n{}", answer.body).as_bytes());
                });
            }
        });
        ChatStub {
            endpoint,
            requests,
            max_in_flight,
        }
    }

    /// The requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}
