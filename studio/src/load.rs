//! Dropped files → runs: size check, parsing (artifacts and imported logs) and grouping.
//!
//! Files are grouped into runs by folder: a file's run is the folder that holds it, with a
//! trailing `stages/` dropped, so a picked run folder (`run-a/run.json`,
//! `run-a/stages/stage-01.json`, ...) or a folder of runs gives one run per folder. Files
//! dropped without a folder form one group; a group without `run.json` gets no name and is
//! added to the focused run (see [`crate::state::AppState::add`]). A study folder's
//! `study.json` is a study, not part of a run: `studies/NAME/study.json` with its cells under
//! `studies/NAME/runs/CELL/` loads the study and one run per cell.

use std::collections::BTreeMap;
use std::sync::Arc;

use inscl::artifact::{Artifact, StudyFile};

use crate::import;
use crate::run::Run;

/// A file that could not be loaded, with a message naming it and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// File name or path as dropped.
    pub file: String,
    /// What is wrong, for people (already names the file).
    pub message: String,
}

/// Largest file the studio reads (bytes): 200 MiB. Larger files are refused before reading,
/// since a browser tab holding several copies of such a file while parsing runs out of memory.
pub const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;

/// Refuses files larger than [`MAX_FILE_BYTES`].
///
/// # Errors
/// A [`LoadError`] naming the file, its size and the limit.
pub fn check_size(path: &str, bytes: u64) -> Result<(), LoadError> {
    if bytes > MAX_FILE_BYTES {
        return Err(LoadError {
            file: path.to_owned(),
            message: format!(
                "{path}: {:.1} MB is too large (the studio reads files up to {} MB)",
                bytes as f64 / 1e6,
                MAX_FILE_BYTES / 1024 / 1024
            ),
        });
    }
    Ok(())
}

/// What one file holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// An inscl run artifact.
    Artifact(Box<Artifact>),
    /// A run made from another tool's log ([`import`]).
    Imported(Box<Run>),
}

/// Parses one file: InsCL's `output_state.jsonl`, HF `trainer_state.json` (recognised by
/// `log_history` without `schema_version`), or else an inscl artifact of any kind.
///
/// # Errors
/// A [`LoadError`] whose message names `path` and the problem (not JSON, truncated,
/// unsupported `schema_version`, unknown kind, invalid field, unusable log).
pub fn parse(path: &str, text: &str) -> Result<Parsed, LoadError> {
    let error = |message: String| LoadError {
        file: path.to_owned(),
        message,
    };
    let imported = |run: Run| Ok(Parsed::Imported(Box::new(run)));
    if path.ends_with(".jsonl") {
        let results = import::inscl_output_state(path, text).map_err(|e| error(e.to_string()))?;
        return imported(Run {
            name: run_name_from_path(path),
            results: Some(results),
            ..Run::default()
        });
    }
    if text.contains("\"log_history\"") && !text.contains("\"schema_version\"") {
        let loss = import::hf_trainer_state(path, text).map_err(|e| error(e.to_string()))?;
        return imported(Run {
            name: run_name_from_path(path),
            imported_loss: loss,
            ..Run::default()
        });
    }
    Artifact::from_json(path, text)
        .map(|a| Parsed::Artifact(Box::new(a)))
        .map_err(|e| error(e.to_string()))
}

/// The folder that identifies a file's run: its parent folder, without a trailing `stages`.
/// Empty for a file dropped without a folder.
pub fn run_folder(path: &str) -> &str {
    let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    match parent.rsplit_once('/') {
        Some((dir, "stages")) => dir,
        None if parent == "stages" => "",
        _ => parent,
    }
}

/// Name for an imported log: its run folder's last component, else the file name.
fn run_name_from_path(path: &str) -> String {
    let folder = run_folder(path);
    let last = folder.rsplit('/').next().unwrap_or("");
    if last.is_empty() {
        path.rsplit('/').next().unwrap_or(path).to_owned()
    } else {
        last.to_owned()
    }
}

/// What a set of files holds: runs and studies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// Runs, grouped by folder ([`group`]).
    pub runs: Vec<Run>,
    /// `study.json` files, in the order given.
    pub studies: Vec<StudyFile>,
}

/// Groups parsed files into runs by [`run_folder`] and sets studies apart. A group is named by
/// its `run.json`, else by its folder's last component, else left unnamed (empty name).
pub fn group(files: Vec<(String, Parsed)>) -> Loaded {
    let mut groups: BTreeMap<String, Run> = BTreeMap::new();
    let mut imported = Vec::new();
    let mut studies = Vec::new();
    for (path, parsed) in files {
        let artifact = match parsed {
            Parsed::Imported(run) => {
                imported.push(*run);
                continue;
            }
            Parsed::Artifact(a) => *a,
        };
        let mut part = Run::default();
        match artifact {
            Artifact::Study(study) => {
                studies.push(study);
                continue;
            }
            Artifact::Run(manifest) => {
                part.name = manifest.name.clone();
                part.manifest = Some(manifest);
            }
            Artifact::Stage(stage) => part.stages.push(stage),
            Artifact::Results(results) => part.results = Some(results),
            Artifact::Embeddings(e) => part.embeddings = Some(Arc::new(e)),
        }
        let folder = run_folder(&path).to_owned();
        let run = groups.entry(folder.clone()).or_insert_with(|| Run {
            name: folder.rsplit('/').next().unwrap_or("").to_owned(),
            ..Run::default()
        });
        run.absorb(part);
    }
    Loaded {
        runs: groups.into_values().chain(imported).collect(),
        studies,
    }
}
