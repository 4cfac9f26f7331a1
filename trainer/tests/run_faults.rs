//! Faults of the real `trainer run` binary on a tiny random LLaMA (3 SuperNI tasks, `llm` tags
//! by the tiny model): SIGKILL at every named point of the stage loop
//! (`trainer::run::faults`) and a full disk (a size-limited tmpfs) at every kind of write. After
//! each fault `--resume` finishes the run, and its artifacts equal an uninterrupted run's byte
//! for byte, apart from fields that record time.
//!
//! The binary pauses at a named point (`INSCL_TEST_PAUSE_AT=POINT:N`) and says so on stderr;
//! the test then kills it, or fills the disk and lets it go on. Mounting a tmpfs needs root: a
//! machine that refuses it reports the full-disk test as skipped on stderr
//! (`skipped: ...`, counted by `scripts/test`), never as passed.
#![cfg(unix)]

mod support;
#[path = "support/tiny_llama.rs"]
mod tiny_llama;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use trainer::run::faults::PAUSE_AT_VAR;

/// The run's name in every output folder.
const NAME: &str = "faults";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The tiny model and an uninterrupted run of the test config, made once per test binary.
struct Baseline {
    _dir: tempfile::TempDir,
    model: PathBuf,
    run: PathBuf,
}

fn baseline() -> &'static Baseline {
    static BASELINE: OnceLock<Baseline> = OnceLock::new();
    BASELINE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let model = tiny_llama::tiny_model(dir.path());
        let out = dir.path().join("runs");
        let status = start(&model, &out, None, None).wait_with_output().unwrap();
        assert!(
            status.status.success(),
            "uninterrupted run: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        Baseline {
            run: out.join(NAME),
            model,
            _dir: dir,
        }
    })
}

/// `trainer run` of the test config into `out/NAME` (or `--resume` of it), pausing at `pause`.
fn start(model: &Path, out: &Path, resume: Option<&Path>, pause: Option<&str>) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command.current_dir(fixtures()).arg("run").arg("--quiet");
    match resume {
        Some(folder) => {
            command.arg("--resume").arg(folder);
        }
        None => {
            for set in [
                format!("model.path={}", toml_string(&model.display().to_string())),
                "data.format=\"benchmark\"".into(),
                "data.path=\"superni/cl\"".into(),
                "data.order=\"order1\"".into(),
                "data.first=3".into(),
                "strategy.alpha=4".into(),
                "strategy.tags=\"llm\"".into(),
                "tagger.batch_size=1".into(),
                "tagger.max_new_tokens=8".into(),
                "training.batch_size=4".into(),
                "training.max_length=96".into(),
                "training.lr=5e-3".into(),
                "eval.max_new_tokens=4".into(),
            ] {
                command.arg("--set").arg(set);
            }
            command.arg("--output").arg(out).arg("--name").arg(NAME);
        }
    }
    match pause {
        Some(point) => command.env(PAUSE_AT_VAR, point),
        None => command.env_remove(PAUSE_AT_VAR),
    };
    command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `s` as a TOML basic string (JSON's escapes are TOML's).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Waits until `child` says it paused at `point`; returns the rest of its stderr as a reader.
fn wait_for_pause(child: &mut Child, point: &str) -> BufReader<std::process::ChildStderr> {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("the run never reached {point} ({status}); stderr:\n{seen}");
        }
        if line.trim() == format!("paused at {point}") {
            return stderr;
        }
        seen.push_str(&line);
    }
}

/// Every file under `dir`, relative path → content.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let name = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What a finished run must reproduce: the artifacts (wall-clock fields zeroed), `tags.json`
/// (timing zeroed), the names of every file, and the checkpoints byte for byte.
fn finished_state(folder: &Path) -> Vec<(String, String)> {
    let mut state = support::artifacts(folder);
    let mut tags: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("tags.json")).unwrap()).unwrap();
    tags["seconds"] = 0.into();
    state.push(("tags.json".into(), tags.to_string()));
    for (name, bytes) in files(folder) {
        let content = if name.starts_with("checkpoints/") {
            format!("{bytes:?}")
        } else {
            String::new()
        };
        state.push((name, content));
    }
    state
}

/// Resumes `folder` to the end and checks the result against the uninterrupted run.
fn resume_to_the_end(model: &Path, folder: &Path) {
    let out = start(model, folder.parent().unwrap(), Some(folder), None)
        .wait_with_output()
        .unwrap();
    assert!(
        out.status.success(),
        "resume: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = finished_state(&baseline().run);
    let got = finished_state(folder);
    assert_eq!(
        got.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        expected.iter().map(|(name, _)| name).collect::<Vec<_>>(),
        "files of the resumed run"
    );
    for ((name, got), (_, expected)) in got.iter().zip(&expected) {
        assert!(
            got == expected,
            "{name} differs from the uninterrupted run's"
        );
    }
}

/// Every `.NAME.tmp` left in the run folder.
fn leftovers(folder: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["", "stages", "checkpoints", "cache"] {
        for entry in std::fs::read_dir(folder.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                found.push(format!("{dir}/{name}"));
            }
        }
    }
    found
}

/// SIGKILL at ten points of one run (tagging, embedding, zero-shot evaluation, training,
/// evaluation, inside the checkpoint write, between the artifact writes, after the last stage
/// file), each followed by `--resume`.
/// A pause point (`POINT:N`) where the run is killed, and a check of the run folder at that
/// moment.
type KillPoint = (&'static str, fn(&Path));

#[test]
fn sigkill_anywhere_then_resume_equals_an_uninterrupted_run() {
    let base = baseline();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs");
    let folder = out.join(NAME);
    // Arrivals count from the start of each process: a resumed one starts after the last
    // finished stage.
    let kills: [KillPoint; 10] = [
        ("tags-write:2", |_| {}),
        ("embed-cache-write:1", |_| {}),
        ("eval-step:2", |f| {
            assert!(!f.join("stages/stage-00.json").exists());
        }),
        ("train-step:2", |_| {}),
        ("checkpoint-write:1", |_| {}),
        ("checkpoint-rename:1", |f| {
            // A complete checkpoint not yet renamed: resume ignores and removes it.
            assert!(
                f.join("checkpoints/.stage-01.tmp/adapter_model.safetensors")
                    .is_file()
            );
            assert!(!f.join("checkpoints/stage-01").exists());
        }),
        ("stage-write:1", |f| {
            // The checkpoint is in place but the stage is not finished: cut it in half, as
            // a torn write would; resume must redo stage 1, not load it.
            let adapter = f.join("checkpoints/stage-01/adapter_model.safetensors");
            let bytes = std::fs::read(&adapter).unwrap();
            std::fs::write(&adapter, &bytes[..bytes.len() / 2]).unwrap();
            assert!(!f.join("stages/stage-01.json").exists());
        }),
        ("results-write:1", |f| {
            assert!(f.join("stages/stage-01.json").is_file());
        }),
        ("eval-step:2", |f| {
            assert!(!f.join("stages/stage-02.json").exists());
        }),
        // The resumed process runs stages 2 and 3: the last stage's results are not written.
        ("results-write:2", |f| {
            assert!(f.join("stages/stage-03.json").is_file());
        }),
    ];
    for (i, (point, check)) in kills.iter().enumerate() {
        let resume = (i > 0).then_some(folder.as_path());
        let mut child = start(&base.model, &out, resume, Some(point));
        wait_for_pause(&mut child, point);
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "{point}: {status}");
        check(&folder);
    }
    resume_to_the_end(&base.model, &folder);
    assert_eq!(leftovers(&folder), Vec::<String>::new());
    println!("survived {} kills", kills.len());
}

/// A tmpfs mounted on a fresh folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this machine refuses the mount (not root, no CAP_SYS_ADMIN, a sandbox).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `filler` until the file system is full.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..1]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The disk fills up while the run waits before each kind of write (the `llm` tag cache, the
/// embedding cache, a checkpoint): the run stops with an error naming the file (once, as a
/// write), earlier files are untouched, nothing temporary is left, and `--resume` finishes
/// once space is back.
#[test]
fn a_full_disk_stops_the_run_cleanly_and_resume_finishes_it() {
    let Some(disk) = Tmpfs::mount("32m") else {
        // Straight to the process's stderr (not captured by the test harness), so that
        // `scripts/test` counts it.
        writeln!(
            std::io::stderr(),
            "skipped: run_faults::a_full_disk_stops_the_run_cleanly_and_resume_finishes_it \
             (cannot mount a tmpfs here: needs root)"
        )
        .unwrap();
        return;
    };
    let base = baseline();
    let out = disk.path().join("runs");
    let folder = out.join(NAME);
    for (i, (point, file)) in [
        ("tags-write:2", "tags.json"),
        ("embed-cache-write:1", "cache/embed-"),
        (
            "checkpoint-write:2",
            "checkpoints/.stage-02.tmp/adapter_model.safetensors",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let resume = (i > 0).then_some(folder.as_path());
        let mut child = start(&base.model, &out, resume, Some(point));
        let mut stderr = wait_for_pause(&mut child, point);
        let before = files(&folder);
        let filler = disk.fill();
        child.stdin.take().unwrap().write_all(b"go on\n").unwrap();
        let mut message = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut message).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{point}: the run went on: {message}");
        let named = folder.join(file).display().to_string();
        assert!(message.contains(&named), "{point}: no {named} in {message}");
        assert_eq!(
            message.matches("No space left on device").count(),
            1,
            "{point}: {message}"
        );
        assert!(!message.contains("cannot read"), "{point}: {message}");
        assert_eq!(files(&folder), before, "{point}: earlier files changed");
        assert_eq!(leftovers(&folder), Vec::<String>::new(), "{point}");
        std::fs::remove_file(filler).unwrap();
    }
    resume_to_the_end(&base.model, &folder);
}
