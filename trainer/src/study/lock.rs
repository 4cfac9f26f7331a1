//! One process per study cell: an exclusive advisory lock on `cells/CELL.lock` of the study
//! folder, held while the cell runs, and a record in the same file of who holds it (or last
//! held it) and how that attempt ended.
//!
//! The lock is `flock(2)` (`std::fs::File::try_lock`): the kernel releases it when the holder
//! exits, however it exits (SIGKILL, a scheduler's time limit, a crash), so a dead holder never
//! blocks a resubmitted cell, and a second process is refused with the holder's pid, host,
//! start time and scheduler job ([`LockedBy`]). The record is JSON written in place (the
//! lock belongs to the open file, so the file is never replaced); an attempt that ends writes
//! its outcome ([`CellOutcome`]), one killed before it could leaves a record without an end,
//! which is how `trainer study status` tells a killed cell from a pending one.
//!
//! **Network filesystems.** On Linux NFS clients `flock` is emulated with whole-file POSIX
//! locks held on the server (NLM for NFSv3, the NFSv4 protocol's own locks), so processes on
//! different nodes exclude each other; a node that dies loses its locks when its lease
//! expires (NFSv4, about 90 s) or when its lock daemon's state is recovered (NFSv3). Mounts
//! with `local_lock=flock` or `nolock` keep locks on each node only: there two nodes can run
//! the same cell, so schedule each cell once (a Slurm array does). Lustre needs the `flock`
//! mount option (`localflock` is node-local); BeeGFS and GPFS support `flock` across nodes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::StudyError;

/// How many times [`CellLock::acquire`] tries a held lock before refusing, and the pause
/// between tries: `trainer study status` takes a shared lock for a moment to see whether a
/// cell is held, which must not refuse a cell starting at that moment.
const TRIES: usize = 10;
const PAUSE: Duration = Duration::from_millis(100);

/// The lock file of cell `cell` in `study_folder`: `cells/CELL.lock`.
pub fn lock_file(study_folder: &Path, cell: &str) -> PathBuf {
    study_folder.join("cells").join(format!("{cell}.lock"))
}

/// A process that holds or held a cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellHolder {
    /// Its process id.
    pub pid: u32,
    /// The machine it runs on.
    pub host: String,
    /// When it took the lock, RFC 3339 in UTC.
    pub since: String,
    /// Its scheduler job, when it runs in one: `slurm 1234_5` (array job and task),
    /// `slurm 1234`, `kubernetes index 5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

impl CellHolder {
    /// This process, now.
    pub fn this_process() -> Self {
        CellHolder {
            pid: std::process::id(),
            host: host_name(),
            since: now(),
            job: scheduler_job(),
        }
    }
}

impl std::fmt::Display for CellHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {}", self.pid, self.host, self.since)?;
        if let Some(job) = &self.job {
            write!(f, " ({job})")?;
        }
        Ok(())
    }
}

/// How an attempt at a cell ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellOutcome {
    /// The run finished (or was found finished).
    Finished,
    /// Stopped on request (Ctrl-C), resumable.
    Interrupted,
    /// Stopped by an error, with its message.
    Failed(String),
}

/// What a cell's lock file says: the last holder and, once its attempt ended, how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRecord {
    /// The last process that took the lock.
    pub holder: CellHolder,
    /// Absent while the holder runs, and after a holder that was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<CellEnd>,
}

/// The end of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellEnd {
    /// RFC 3339 in UTC.
    pub at: String,
    /// How it ended.
    pub outcome: CellOutcome,
}

/// Who holds a lock, as far as its record says (a holder that has not written its record
/// yet, or one of an older trainer, is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedBy(pub Option<CellHolder>);

impl std::fmt::Display for LockedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(holder) => holder.fmt(f),
            None => f.write_str("another process (its record is not written yet)"),
        }
    }
}

/// A held cell lock; dropping it releases the lock without recording an end.
#[derive(Debug)]
pub struct CellLock {
    file: File,
    path: PathBuf,
    holder: CellHolder,
}

impl CellLock {
    /// Takes the lock of `cell` at `path` (creating the file and its folder) and records this
    /// process as its holder.
    ///
    /// # Errors
    /// [`StudyError::Busy`] naming the holder when another process holds it (after
    /// [`TRIES`] tries [`PAUSE`] apart); [`StudyError::Io`] naming the file.
    pub fn acquire(path: &Path, cell: &str) -> Result<CellLock, StudyError> {
        let io = |error| StudyError::Io {
            file: path.display().to_string(),
            error,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if tries + 1 < TRIES => {
                    tries += 1;
                    std::thread::sleep(PAUSE);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StudyError::Busy {
                        cell: cell.to_owned(),
                        holder: Box::new(LockedBy(read_record(path).map(|r| r.holder))),
                        lock: path.display().to_string(),
                    });
                }
                Err(TryLockError::Error(error)) => return Err(io(error)),
            }
        }
        let mut lock = CellLock {
            file,
            path: path.to_owned(),
            holder: CellHolder::this_process(),
        };
        let record = CellRecord {
            holder: lock.holder.clone(),
            ended: None,
        };
        lock.write(&record).map_err(io)?;
        Ok(lock)
    }

    /// Records how the attempt ended, then releases the lock.
    ///
    /// # Errors
    /// [`StudyError::Io`] when the record cannot be written (the lock is released anyway).
    pub fn release(mut self, outcome: CellOutcome) -> Result<(), StudyError> {
        let record = CellRecord {
            holder: self.holder.clone(),
            ended: Some(CellEnd { at: now(), outcome }),
        };
        self.write(&record).map_err(|error| StudyError::Io {
            file: self.path.display().to_string(),
            error,
        })
    }

    /// Replaces the file's content in place (the lock stays with this open file).
    fn write(&mut self, record: &CellRecord) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(record).expect("records serialise");
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.file.sync_data()
    }
}

/// Whether a cell's lock is held now, and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockProbe {
    /// A process holds the lock now.
    pub held: bool,
    /// `None` when the cell never ran under a lock, or its record cannot be read (being
    /// written at this moment, or damaged).
    pub record: Option<CellRecord>,
}

/// Looks at the lock at `path` without waiting: a shared lock taken and dropped at once.
///
/// # Errors
/// [`StudyError::Io`] naming the file when it exists but cannot be opened or locked.
pub fn probe(path: &Path) -> Result<LockProbe, StudyError> {
    let io = |error| StudyError::Io {
        file: path.display().to_string(),
        error,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LockProbe {
                held: false,
                record: None,
            });
        }
        Err(error) => return Err(io(error)),
    };
    let held = match file.try_lock_shared() {
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => true,
        Err(TryLockError::Error(error)) => return Err(io(error)),
    };
    drop(file);
    Ok(LockProbe {
        held,
        record: read_record(path),
    })
}

/// The record in a lock file, `None` when absent or unreadable.
fn read_record(path: &Path) -> Option<CellRecord> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Now, RFC 3339 in UTC to the second.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// This machine's host name (`unknown` when the system does not tell).
fn host_name() -> String {
    #[cfg(unix)]
    let name = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok());
    #[cfg(not(unix))]
    let name = std::env::var("COMPUTERNAME").ok();
    name.unwrap_or_else(|| "unknown".to_owned())
}

/// The scheduler job this process runs in, from the variables Slurm and Kubernetes Indexed
/// Jobs set.
fn scheduler_job() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(array), Some(task)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return Some(format!("slurm {array}_{task}"));
    }
    if let Some(job) = var("SLURM_JOB_ID") {
        return Some(format!("slurm {job}"));
    }
    var("JOB_COMPLETION_INDEX").map(|index| format!("kubernetes index {index}"))
}
