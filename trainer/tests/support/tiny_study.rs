//! A 2 × 2 study on the tiny random LLaMA (`tiny_llama.rs`) over the three fixture
//! categories (8 training and 4 test instances each): `none` and `inscl` replay × seeds 0 and
//! 1, run through the `trainer` binary.
//! Shared by the `trainer study cell` tests (`study_cells.rs`) and the Slurm test
//! (`study_slurm.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trainer::run::faults::PAUSE_AT_VAR;

/// The folder the binary runs in: the study's data paths start there.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni")
}

/// `s` as a TOML basic string (JSON's escapes are TOML's).
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Writes the study `name` into `dir/NAME.toml`, its folder under `output`, its cells on the
/// tiny model at `model`; `extra` is appended (e.g. a `[slurm]` table). Returns the file.
pub fn write_config(dir: &Path, name: &str, model: &Path, output: &Path, extra: &str) -> PathBuf {
    let set = [
        format!("model.path={}", toml_string(&model.display().to_string())),
        "data.format=\"categories\"".to_owned(),
        "data.path=\"inscl/categories.json\"".to_owned(),
        "data.max_train=8".to_owned(),
        "data.max_test=4".to_owned(),
        "strategy.alpha=4".to_owned(),
        "training.batch_size=4".to_owned(),
        "training.max_length=64".to_owned(),
        "training.lr=5e-3".to_owned(),
        "eval.max_new_tokens=4".to_owned(),
    ];
    let set: Vec<String> = set.iter().map(|s| toml_string(s)).collect();
    let text = format!(
        "name = \"tiny\"\nstrategies = [\"none\", \"inscl\"]\nseeds = [0, 1]\n\
         orders = [\"curriculum\"]\noutput = {}\nset = [{}]\n{extra}",
        toml_string(&output.display().to_string()),
        set.join(", ")
    );
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    file
}

/// `trainer study ARGS` in [`root`], without a fault pause.
pub fn study(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command
        .current_dir(root())
        .arg("study")
        .args(args)
        .env_remove(PAUSE_AT_VAR);
    command
}

/// Runs `command` and returns its output, failing with its stderr unless it succeeded.
pub fn succeed(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The study.json of the study folder `output/tiny`, as bytes.
pub fn study_json(output: &Path) -> Vec<u8> {
    std::fs::read(output.join("tiny/study.json")).unwrap()
}
