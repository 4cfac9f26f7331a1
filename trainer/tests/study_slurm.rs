//! `trainer study submit` on a real Slurm: a 2 × 2 grid of the tiny random LLaMA
//! (`support/tiny_study.rs`) through `sbatch` (an array of 4 cells, at most 2 at once, and the
//! summary job after it) gives the `study.json` of a local sequential `trainer study`, byte for
//! byte; so does a second round whose array task is `scancel`led mid-run, paused (by the
//! fault-injection pause of `trainer::run::faults`, set up for that task once) after its first
//! stage (its cell shows as killed, the summary lists it missing) and which is submitted again
//! (only that cell, which resumes from its last stage checkpoint).
//!
//! `scripts/test-slurm` starts a private single-node cluster (Debian's `slurm-wlm` and
//! `munge`) and runs this test against it; with `SLURM_CONF` of another cluster whose jobs see
//! this checkout, `cargo test -p trainer --test study_slurm` runs it there. Without a
//! controller that answers, it reports `skipped: study_slurm::...` on stderr (counted by
//! `scripts/test`), never passed. Not part of a plain `cargo test` (`test = false`): it needs
//! the cluster.
#![cfg(unix)]

#[path = "support/tiny_llama.rs"]
mod tiny_llama;
#[path = "support/tiny_study.rs"]
mod tiny_study;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tiny_study::{study, study_json, succeed, write_config};
use trainer::run::faults::PAUSE_AT_VAR;

/// Set by `scripts/test-slurm` when the cluster could not start: the reason.
const UNAVAILABLE_VAR: &str = "INSCL_SLURM_UNAVAILABLE";

/// How long a round may take before the test gives up.
const ROUND_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Why Slurm cannot be used here, if it cannot.
fn unavailable() -> Option<String> {
    if let Ok(reason) = std::env::var(UNAVAILABLE_VAR) {
        return Some(reason);
    }
    match Command::new("scontrol").arg("ping").output() {
        Err(error) => Some(format!(
            "scontrol: {error}; scripts/test-slurm installs Slurm and starts a cluster"
        )),
        Ok(output) if !String::from_utf8_lossy(&output.stdout).contains("is UP") => Some(format!(
            "no Slurm controller answers `scontrol ping`: {}{}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(_) => None,
    }
}

/// `trainer study submit --config CONFIG`: the array and summary job ids it reports.
fn submit(config: &Path) -> (String, String, String) {
    let output = succeed(&mut study(&[
        "submit",
        "--config",
        config.to_str().unwrap(),
    ]));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let id_after = |words: &str| -> String {
        let start = stdout.find(words).unwrap_or_else(|| panic!("{stdout}")) + words.len();
        stdout[start..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect()
    };
    (id_after("array job "), id_after("summary job "), stdout)
}

/// Waits until no job of `ids` (array tasks included) is queued or running.
fn wait_for_jobs(ids: &[&str]) {
    let started = Instant::now();
    loop {
        let output = succeed(Command::new("squeue").args(["--noheader", "--format=%i"]));
        let listed = String::from_utf8_lossy(&output.stdout).into_owned();
        let ours = listed.lines().any(|line| {
            let job = line.trim().split('_').next().unwrap_or_default();
            ids.contains(&job)
        });
        if !ours {
            return;
        }
        assert!(
            started.elapsed() < ROUND_LIMIT,
            "jobs {ids:?} still queued after {ROUND_LIMIT:?}:\n{listed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `file` exists and contains `text`.
fn wait_for_text(file: &Path, text: &str) {
    let started = Instant::now();
    while !std::fs::read_to_string(file).is_ok_and(|content| content.contains(text)) {
        assert!(
            started.elapsed() < ROUND_LIMIT,
            "{} never said {text:?}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

#[test]
fn a_grid_through_slurm_equals_the_local_study_also_after_a_cancelled_task() {
    if let Some(reason) = unavailable() {
        // Straight to the process's stderr (not captured by the test harness), so that
        // `scripts/test` counts it.
        writeln!(
            std::io::stderr(),
            "skipped: study_slurm::a_grid_through_slurm_equals_the_local_study_also_after_a_cancelled_task \
             ({reason})"
        )
        .unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(dir.path());
    let slurm = "[slurm]\nconcurrency = 2\ncpus = 1\n";

    let local_out = dir.path().join("local");
    let local = write_config(dir.path(), "local", &model, &local_out, "");
    let started = Instant::now();
    succeed(&mut study(&["--config", local.to_str().unwrap()]));
    let local_seconds = started.elapsed().as_secs_f64();
    let reference = study_json(&local_out);

    // Round 1: the whole grid through sbatch.
    let first_out = dir.path().join("round1");
    let first = write_config(dir.path(), "round1", &model, &first_out, slurm);
    let started = Instant::now();
    let (array, summary, stdout) = submit(&first);
    assert!(stdout.contains("(cells 0,1,2,3,"), "{stdout}");
    wait_for_jobs(&[&array, &summary]);
    let slurm_seconds = started.elapsed().as_secs_f64();
    assert_eq!(study_json(&first_out), reference, "round 1, byte for byte");
    let logs = first_out.join("tiny/slurm/logs");
    assert!(read(&logs.join("cell-3.log")).contains("inscl-curriculum-s1 (starting)"));
    assert!(read(&logs.join("summary.log")).contains("study: "));
    writeln!(
        std::io::stderr(),
        "study_slurm: the 2 × 2 tiny grid took {local_seconds:.1} s locally (sequential) and \
         {slurm_seconds:.1} s through Slurm (%2, submission to the summary's end)"
    )
    .unwrap();

    // Round 2: the last cell's array task paused on its first arrival at the second stage's
    // checkpoint (stage 1 written; a one-time marker, so the resubmitted task runs through),
    // then cancelled there. The pause waits on stdin, here a pipe nobody writes to.
    let second_out = dir.path().join("round2");
    let marker = dir.path().join("paused-once");
    let pause = format!(
        "if [ \"${{SLURM_ARRAY_TASK_ID:-}}\" = 3 ] && mkdir {} 2>/dev/null; then \
         export {PAUSE_AT_VAR}=checkpoint-write:2; exec 0< <(sleep 3600); fi",
        marker.display()
    );
    let pausing = format!(
        "{slurm}setup = [{}]\n",
        serde_json::to_string(&pause).unwrap()
    );
    let second = write_config(dir.path(), "round2", &model, &second_out, &pausing);
    let (array, summary, _) = submit(&second);
    let cell = second_out.join("tiny/runs/inscl-curriculum-s1");
    let logs = second_out.join("tiny/slurm/logs");
    wait_for_text(&logs.join("cell-3.log"), "paused at checkpoint-write:2");
    succeed(Command::new("scancel").arg(format!("{array}_3")));
    wait_for_jobs(&[&array, &summary]);
    assert!(cell.join("stages/stage-01.json").exists());
    assert!(
        !cell.join("stages/stage-02.json").exists(),
        "the cancelled cell was stopped in its second stage"
    );
    let summary_log = read(&logs.join("summary.log"));
    assert!(
        summary_log.contains("1 of 4 cells missing from study.json: 3 inscl-curriculum-s1"),
        "{summary_log}"
    );
    let status = succeed(&mut study(&[
        "status",
        "--config",
        second.to_str().unwrap(),
    ]));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("3 done, 0 running, 1 failed, 0 pending")
            && status.contains("killed or crashed"),
        "{status}"
    );
    let (array, summary, stdout) = submit(&second);
    assert!(
        stdout.contains("(cells 3,"),
        "only the cancelled cell: {stdout}"
    );
    wait_for_jobs(&[&array, &summary]);
    assert_eq!(study_json(&second_out), reference, "round 2, byte for byte");
    assert!(read(&logs.join("cell-3.log")).contains("inscl-curriculum-s1 (resuming)"));
}
