//! Helpers of the studio's end-to-end tests: a std-only static file server for `dist/`,
//! chromedriver with headless Chromium through fantoccini, and `trainer plan` for expected
//! values.
//!
//! Environment: `CHROMEDRIVER` (default `chromedriver` on PATH), `CHROME` (default: the
//! driver's choice, e.g. `/usr/bin/chromium`), `STUDIO_DIST` (default `<repo>/dist`, built by
//! `trunk build --release`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// The repository root (this crate's parent folder).
///
/// # Panics
/// When the crate folder has no parent (never in the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Where tests write screenshots and other outputs: `$CARGO_TARGET_DIR/e2e`, else
/// `<repo>/target/e2e`. Created if missing.
///
/// # Panics
/// When the output folder cannot be created.
pub fn output_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let dir = target.join("e2e");
    std::fs::create_dir_all(&dir).expect("create the e2e output folder");
    dir
}

/// The built site (`STUDIO_DIST` or `<repo>/dist`).
///
/// # Panics
/// When it has no `index.html` (run `trunk build --release` first).
pub fn dist_dir() -> PathBuf {
    let dist =
        std::env::var_os("STUDIO_DIST").map_or_else(|| repo_root().join("dist"), PathBuf::from);
    assert!(
        dist.join("index.html").is_file(),
        "{} has no index.html: run `trunk build --release` first (scripts/test-studio does)",
        dist.display()
    );
    dist
}

/// Content type of a served file, by extension.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Answers one HTTP/1.1 GET from `root` (`/` is `index.html`; `..` is refused).
fn answer(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    // Drain the headers so the client sees a complete exchange.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or("/")
        .trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    let file = root.join(path);
    let body = (!path.split('/').any(|c| c == ".."))
        .then(|| std::fs::read(&file).ok())
        .flatten();
    match body {
        Some(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content_type(&file),
                body.len()
            )?;
            stream.write_all(&body)
        }
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    }
}

/// Serves `root` on `127.0.0.1` (a free port) from a background thread; returns the base
/// URL, e.g. `http://127.0.0.1:40123/`. The server lives as long as the test process.
///
/// # Panics
/// When no local port can be bound.
pub fn serve(root: PathBuf) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!("http://{}/", listener.local_addr().expect("local address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = root.clone();
            std::thread::spawn(move || answer(stream, &root));
        }
    });
    url
}

/// A running chromedriver, killed on drop.
pub struct Driver {
    child: Child,
    /// WebDriver URL, e.g. `http://127.0.0.1:9515`.
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port and waits until it listens.
///
/// # Panics
/// When chromedriver cannot be started or does not listen within 20 s.
pub fn chromedriver() -> Driver {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port();
    let program = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let child = Command::new(&program)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e} (set CHROMEDRIVER)"));
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{program} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A headless Chromium session (no network services, runs as root) with a fresh profile
/// under [`output_dir`]`/profiles`, emptied of any earlier profile of the same name.
///
/// # Panics
/// When chromedriver does not start a session.
pub async fn browser(driver: &Driver) -> Client {
    let profile =
        output_dir()
            .join("profiles")
            .join(format!("{}-{}", std::process::id(), session_number()));
    let _ = std::fs::remove_dir_all(&profile);
    let mut options = json!({
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--window-size=1400,1000",
            format!("--user-data-dir={}", profile.display()),
        ]
    });
    if let Ok(chrome) = std::env::var("CHROME") {
        options["binary"] = Value::String(chrome);
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("start a Chromium session through chromedriver")
}

/// Distinguishes profiles of sessions started by one process.
fn session_number() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Runs `trainer plan` (built by cargo if needed) with `args` and returns its JSON output.
///
/// # Panics
/// When the trainer cannot be built or run, or exits non-zero.
pub fn trainer_plan(args: &[String]) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(repo_root())
        .args(["run", "--quiet", "-p", "trainer", "--", "plan"])
        .args(args)
        .output()
        .expect("run cargo run -p trainer");
    assert!(
        out.status.success(),
        "trainer plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("trainer plan prints JSON")
}

/// `trainer plan` arguments that reproduce a run's replay settings (`run.json`'s `replay`),
/// with α replaced by `alpha`.
pub fn plan_args(embeddings: &Path, replay: &Value, alpha: usize) -> Vec<String> {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let similarity = &replay["similarity"];
    let mut args = vec![
        "--embeddings".to_owned(),
        embeddings.display().to_string(),
        "--alpha".to_owned(),
        alpha.to_string(),
        "--strategy".to_owned(),
        s(&replay["strategy"]),
        "--seed".to_owned(),
        s(&replay["seed"]),
        "--cost".to_owned(),
        s(&similarity["cost"]),
        "--weights".to_owned(),
        s(&similarity["weights"]),
        "--solver".to_owned(),
        s(&similarity["solver"]["kind"]),
    ];
    if let Some(eps) = similarity["solver"]["epsilon"].as_f64() {
        args.extend(["--epsilon".to_owned(), eps.to_string()]);
    }
    if replay["tags"]["stem"] == Value::Bool(false) {
        args.push("--no-stem".to_owned());
    }
    if let Some(m) = replay["tags"]["merge_threshold"].as_f64() {
        args.extend(["--merge-tags".to_owned(), m.to_string()]);
    }
    args
}
