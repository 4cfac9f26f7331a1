//! `trainer study cell`, `status` and `summarize` through the binary, on a 2 × 2 grid of the
//! tiny random LLaMA (`support/tiny_study.rs`): the cells run two at a time (as GNU parallel
//! `-j2` runs them) and summarised give the `study.json` of a sequential `trainer study` byte
//! for byte; a second process on a running cell is refused naming the holder's pid, and
//! `status` shows it running; `summarize` with cells missing writes what is finished and
//! fails naming the missing cells.
#![cfg(unix)]

#[path = "support/tiny_llama.rs"]
mod tiny_llama;
#[path = "support/tiny_study.rs"]
mod tiny_study;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use tiny_study::{study, study_json, succeed, write_config};
use trainer::run::faults::PAUSE_AT_VAR;

#[test]
fn cells_two_at_a_time_give_the_sequential_study_and_a_held_cell_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_llama::tiny_model(dir.path());

    // The reference: the whole study in one process.
    let sequential = write_config(
        dir.path(),
        "sequential",
        &model,
        &dir.path().join("sequential"),
        "",
    );
    succeed(&mut study(&["--config", sequential.to_str().unwrap()]));
    let reference = study_json(&dir.path().join("sequential"));

    // The four cells, two processes at a time, then the summary.
    let parallel_out = dir.path().join("parallel");
    let parallel = write_config(dir.path(), "parallel", &model, &parallel_out, "");
    let config = parallel.to_str().unwrap();
    let unfinished = succeed(&mut study(&["status", "--config", config, "--unfinished"]));
    assert_eq!(String::from_utf8_lossy(&unfinished.stdout), "0 1 2 3\n");
    for pair in [["0", "1"], ["2", "3"]] {
        let children: Vec<_> = pair
            .map(|index| {
                study(&["cell", "--config", config, "--index", index])
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .into_iter()
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    succeed(&mut study(&["summarize", "--config", config]));
    assert_eq!(study_json(&parallel_out), reference, "byte for byte");
    let again = succeed(&mut study(&["cell", "--config", config, "--index", "2"]));
    assert!(String::from_utf8_lossy(&again.stderr).contains("(finished, skipped)"));

    // A cell held by a process paused in its first training step.
    let held_out = dir.path().join("held");
    let held = write_config(dir.path(), "held", &model, &held_out, "");
    let config = held.to_str().unwrap();
    let mut holder = study(&["cell", "--config", config, "--index", "0"])
        .env(PAUSE_AT_VAR, "train-step:1")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut holder_stderr = BufReader::new(holder.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("paused at train-step:1") {
        let mut line = String::new();
        assert_ne!(
            holder_stderr.read_line(&mut line).unwrap(),
            0,
            "the holder ended before its first step:\n{seen}"
        );
        seen.push_str(&line);
    }
    let refused = study(&["cell", "--config", config, "--index", "0"])
        .output()
        .unwrap();
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        message.contains(&format!(
            "none-curriculum-s0 is being run by pid {} on ",
            holder.id()
        )),
        "{message}"
    );
    let status = succeed(&mut study(&["status", "--config", config]));
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("4 cells: 0 done, 1 running, 0 failed, 3 pending")
            && status.contains(&format!("running  by pid {}", holder.id())),
        "{status}"
    );
    holder.stdin.take().unwrap().write_all(b"\n").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut holder_stderr, &mut rest).unwrap();
    assert!(holder.wait().unwrap().success(), "{seen}{rest}");

    // Three cells missing: study.json of the one finished, and an error naming the others.
    let summary = study(&["summarize", "--config", config]).output().unwrap();
    let message = String::from_utf8_lossy(&summary.stderr);
    assert!(!summary.status.success());
    assert!(
        message.contains(
            "3 of 4 cells missing from study.json: 1 inscl-curriculum-s0, \
             2 none-curriculum-s1, 3 inscl-curriculum-s1"
        ),
        "{message}"
    );
    let partial: inscl::artifact::StudyFile =
        inscl::artifact::read(&held_out.join("tiny/study.json")).unwrap();
    assert_eq!(partial.cells.len(), 1);
}
