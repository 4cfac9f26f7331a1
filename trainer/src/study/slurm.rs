//! `trainer study submit`: a study's unfinished cells as one Slurm array job, one array task
//! per cell (the task id is the cell's index), and a summary job that starts when the array
//! has ended, however its tasks ended (`--dependency=afterany`), writes `study.json` and lists
//! the cells still missing.
//!
//! Everything goes into `studies/NAME/slurm/`: `study.toml` (the study as submitted, flags
//! included, which every job reads), `cells.sbatch`, `summary.sbatch`, and `logs/cell-K.log`
//! (one per cell, appended to by every attempt) and `logs/summary.log`. Submitting again
//! rewrites the scripts and submits only the cells that are neither finished, nor running
//! (their lock is held), nor waiting in the queue (`squeue`); each array task checks that its
//! index still names the cell it was submitted for.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::status::{CellProgress, study_status};
use super::{StudyConfig, StudyError};

/// `[slurm]` of a study: what each cell's array task asks for. Unset fields are left to the
/// cluster's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--time` of one cell (`MM`, `HH:MM:SS`, `D-HH:MM:SS`); a cell stopped at its limit
    /// resumes from its last finished stage when submitted again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `--cpus-per-task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// `--mem` (`16G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// `--gres` (`gpu:1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gres: Option<String>,
    /// At most this many cells at once: the array's `%N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Further sbatch options, one `#SBATCH` line each, in both scripts (`--account=proj`,
    /// `--qos=normal`, `--constraint=a100`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Shell lines each job runs before the trainer (`module load cuda`,
    /// `export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<String>,
    /// The trainer binary the jobs run, as the compute nodes see it; by default the binary
    /// that submits (its absolute path, on the shared filesystem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trainer: Option<String>,
}

impl SlurmConfig {
    /// No field set.
    pub fn is_empty(&self) -> bool {
        *self == SlurmConfig::default()
    }
}

/// The folder of a study's Slurm files.
pub fn slurm_folder(study_folder: &Path) -> PathBuf {
    study_folder.join("slurm")
}

/// The log of cell `index`: `slurm/logs/cell-INDEX.log`.
pub fn cell_log(study_folder: &Path, index: usize) -> PathBuf {
    slurm_folder(study_folder)
        .join("logs")
        .join(format!("cell-{index}.log"))
}

/// The array job's name, `inscl-NAME`; the summary job's is `inscl-NAME-summary`.
fn job_name(study: &StudyConfig) -> String {
    format!("inscl-{}", study.name)
}

/// What [`submit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Every cell is finished: `study.json` needs no scheduler (`trainer study summarize`).
    AllFinished,
    /// Every unfinished cell is running or queued already: their indices.
    InFlight(Vec<usize>),
    /// The scripts were written and not submitted (`--dry-run`).
    Written {
        /// The cells the array would run.
        cells: Vec<usize>,
        /// The array script.
        script: PathBuf,
    },
    /// The array and summary jobs.
    Jobs {
        /// The cells the array runs.
        cells: Vec<usize>,
        /// The array job's id.
        array_job: String,
        /// The id of the job that writes `study.json` after the array.
        summary_job: String,
        /// The array script.
        script: PathBuf,
    },
}

/// How to submit besides the study's `[slurm]`.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Folder the study's relative paths start from; the jobs run there.
    pub root: PathBuf,
    /// Overrides `[slurm] concurrency`.
    pub concurrency: Option<usize>,
    /// Write the scripts without calling `squeue` or `sbatch`.
    pub dry_run: bool,
}

/// Writes the study's sbatch scripts for its unfinished cells and submits them (see the module
/// documentation).
///
/// # Errors
/// A grid or status error; [`StudyError::Io`] writing a script; [`StudyError::Scheduler`]
/// when `squeue` or `sbatch` fails, with its message.
// Long: the submission's steps in the order they must happen (status, scripts, the
// submitted config, sbatch, the record), each short and with its own error.
pub fn submit(study: &StudyConfig, options: &SubmitOptions) -> Result<Submitted, StudyError> {
    let root = options
        .root
        .canonicalize()
        .map_err(|error| StudyError::Io {
            file: options.root.display().to_string(),
            error,
        })?;
    let statuses = study_status(study, &root)?;
    let unfinished: Vec<usize> = statuses
        .iter()
        .filter(|s| !s.settled())
        .map(|s| s.index)
        .collect();
    if unfinished.is_empty() {
        let running: Vec<usize> = statuses
            .iter()
            .filter(|s| s.progress != CellProgress::Done)
            .map(|s| s.index)
            .collect();
        return Ok(if running.is_empty() {
            Submitted::AllFinished
        } else {
            Submitted::InFlight(running)
        });
    }
    let queued = if options.dry_run {
        Vec::new()
    } else {
        queued_cells(&job_name(study), &root)?
    };
    let cells: Vec<usize> = unfinished
        .into_iter()
        .filter(|index| !queued.contains(index))
        .collect();
    if cells.is_empty() {
        return Ok(Submitted::InFlight(queued));
    }
    let folder = study.folder(&root);
    let slurm = slurm_folder(&folder);
    let logs = slurm.join("logs");
    std::fs::create_dir_all(&logs).map_err(|error| StudyError::Io {
        file: logs.display().to_string(),
        error,
    })?;
    let trainer = match &study.slurm.trainer {
        Some(trainer) => trainer.clone(),
        None => std::env::current_exe()
            .map_err(|error| StudyError::Io {
                file: "the trainer binary".into(),
                error,
            })?
            .display()
            .to_string(),
    };
    let names: Vec<(usize, String)> = cells
        .iter()
        .map(|&index| Ok((index, study.cell(index)?.name())))
        .collect::<Result<_, StudyError>>()?;
    let paths = ScriptPaths {
        root: root.clone(),
        study: folder.clone(),
        trainer,
    };
    let concurrency = options.concurrency.or(study.slurm.concurrency);
    let cells_script = slurm.join("cells.sbatch");
    let summary_script = slurm.join("summary.sbatch");
    for (file, text) in [
        (slurm.join("study.toml"), study.to_toml()),
        (
            cells_script.clone(),
            cells_sbatch(study, &paths, &names, concurrency),
        ),
        (summary_script.clone(), summary_sbatch(study, &paths)),
    ] {
        std::fs::write(&file, text).map_err(|error| StudyError::Io {
            file: file.display().to_string(),
            error,
        })?;
    }
    if options.dry_run {
        return Ok(Submitted::Written {
            cells,
            script: cells_script,
        });
    }
    let array_job = sbatch(&[], &cells_script)?;
    let summary_job = sbatch(
        &[format!("--dependency=afterany:{array_job}")],
        &summary_script,
    )?;
    Ok(Submitted::Jobs {
        cells,
        array_job,
        summary_job,
        script: cells_script,
    })
}

/// Absolute paths the scripts name.
struct ScriptPaths {
    /// The jobs' working directory.
    root: PathBuf,
    /// The study folder.
    study: PathBuf,
    /// The trainer binary.
    trainer: String,
}

/// `s` quoted for bash and for sbatch's own `#SBATCH` parser (both take single quotes).
fn quote(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| s.to_owned(), std::borrow::Cow::into_owned)
}

/// The `#SBATCH` lines and shell prologue both scripts share.
fn header(study: &StudyConfig, paths: &ScriptPaths, name: &str, log: &str) -> Vec<String> {
    let slurm = &study.slurm;
    let log = slurm_folder(&paths.study).join("logs").join(log);
    let mut lines = vec![
        format!("#SBATCH --job-name={}", quote(name)),
        format!(
            "#SBATCH --chdir={}",
            quote(&paths.root.display().to_string())
        ),
        format!("#SBATCH --output={}", quote(&log.display().to_string())),
        "#SBATCH --open-mode=append".to_owned(),
    ];
    lines.extend(
        slurm
            .partition
            .iter()
            .map(|p| format!("#SBATCH --partition={}", quote(p))),
    );
    lines.extend(slurm.options.iter().map(|o| format!("#SBATCH {o}")));
    lines
}

/// The array job: one task per cell in `cells` (`(index, name)`), at most `concurrency` at
/// once.
fn cells_sbatch(
    study: &StudyConfig,
    paths: &ScriptPaths,
    cells: &[(usize, String)],
    concurrency: Option<usize>,
) -> String {
    let slurm = &study.slurm;
    let array = cells
        .iter()
        .map(|(index, _)| index.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let throttle = concurrency.map(|n| format!("%{n}")).unwrap_or_default();
    let mut lines = vec![
        "#!/bin/bash".to_owned(),
        format!(
            "# Written by `trainer study submit` for study {}: one array task per unfinished cell,",
            study.name
        ),
        "# the task id being the cell's index (`trainer study status` lists them).".to_owned(),
    ];
    lines.extend(header(study, paths, &job_name(study), "cell-%a.log"));
    lines.push(format!("#SBATCH --array={array}{throttle}"));
    lines.extend(
        slurm
            .time
            .iter()
            .map(|t| format!("#SBATCH --time={}", quote(t))),
    );
    lines.extend(
        slurm
            .cpus
            .iter()
            .map(|c| format!("#SBATCH --cpus-per-task={c}")),
    );
    lines.extend(
        slurm
            .mem
            .iter()
            .map(|m| format!("#SBATCH --mem={}", quote(m))),
    );
    lines.extend(
        slurm
            .gres
            .iter()
            .map(|g| format!("#SBATCH --gres={}", quote(g))),
    );
    lines.push("set -euo pipefail".to_owned());
    lines.extend(slurm.setup.iter().cloned());
    let names = cells
        .iter()
        .map(|(index, name)| format!("[{index}]={}", quote(name)))
        .collect::<Vec<_>>()
        .join(" ");
    lines.push(format!("cells=({names})"));
    lines.push(format!(
        "exec {} study cell --config {} --index \"$SLURM_ARRAY_TASK_ID\" --cell \"${{cells[$SLURM_ARRAY_TASK_ID]}}\"",
        quote(&paths.trainer),
        quote(&submitted_config(paths).display().to_string()),
    ));
    lines.join("\n") + "\n"
}

/// The summary job: `study.json` from the finished cells, and the missing ones listed.
fn summary_sbatch(study: &StudyConfig, paths: &ScriptPaths) -> String {
    let mut lines = vec![
        "#!/bin/bash".to_owned(),
        format!(
            "# Written by `trainer study submit` for study {}: runs after its array job, however its",
            study.name
        ),
        "# tasks ended; writes study.json and lists the cells still missing.".to_owned(),
    ];
    lines.extend(header(
        study,
        paths,
        &format!("{}-summary", job_name(study)),
        "summary.log",
    ));
    lines.push("set -euo pipefail".to_owned());
    lines.extend(study.slurm.setup.iter().cloned());
    lines.push(format!(
        "exec {} study summarize --config {}",
        quote(&paths.trainer),
        quote(&submitted_config(paths).display().to_string()),
    ));
    lines.join("\n") + "\n"
}

/// `slurm/study.toml`: the study as submitted.
fn submitted_config(paths: &ScriptPaths) -> PathBuf {
    slurm_folder(&paths.study).join("study.toml")
}

/// Runs `sbatch --parsable ARGS SCRIPT` and returns the job id.
fn sbatch(args: &[String], script: &Path) -> Result<String, StudyError> {
    let mut command = Command::new("sbatch");
    command.arg("--parsable").args(args).arg(script);
    let stdout = scheduler_output(&mut command)?;
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(StudyError::Scheduler {
            command: describe(&command),
            message: format!("expected a job id, got {:?}", stdout.trim()),
        });
    }
    Ok(id)
}

/// The array task ids of this user's queued or running jobs named `name` whose working
/// directory is `root` (`squeue --array`, one line per task).
fn queued_cells(name: &str, root: &Path) -> Result<Vec<usize>, StudyError> {
    let mut command = Command::new("squeue");
    command.args([
        "--noheader",
        "--array",
        "--me",
        &format!("--name={name}"),
        "--format=%K|%Z",
    ]);
    let stdout = scheduler_output(&mut command)?;
    Ok(stdout
        .lines()
        .filter_map(|line| {
            let (index, dir) = line.trim().split_once('|')?;
            (Path::new(dir) == root).then(|| index.parse().ok())?
        })
        .collect())
}

/// Runs a scheduler command and returns its stdout.
fn scheduler_output(command: &mut Command) -> Result<String, StudyError> {
    let output = command.output().map_err(|error| StudyError::Scheduler {
        command: describe(command),
        message: format!("{error} (is Slurm installed and on PATH?)"),
    })?;
    if !output.status.success() {
        return Err(StudyError::Scheduler {
            command: describe(command),
            message: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The command line, for messages.
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}
