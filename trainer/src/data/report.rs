//! Duplicates and train/test overlap of a task ([`DataReport`]), and their optional removal
//! (`data.dedup`). Two instances are the same when their instruction and input are equal.

use std::collections::HashSet;

use inscl::artifact::DataReport;

use super::{Example, TaskData};

/// Counts `task`'s repeats within each split and its test instances that are training
/// instances into `task.report`; with `dedup` removes them, keeping first occurrences (so
/// every kept test instance is unseen in training).
pub fn check(task: &mut TaskData, dedup: bool) {
    let key = |e: &Example| (e.instruction.clone(), e.input.clone());
    let repeats = |examples: &[Example]| {
        let mut seen = HashSet::new();
        examples
            .iter()
            .map(|e| !seen.insert(key(e)))
            .collect::<Vec<bool>>()
    };
    let train_repeats = repeats(&task.train);
    let test_repeats = repeats(&task.test);
    let in_train: HashSet<(String, String)> = task.train.iter().map(key).collect();
    let overlaps: Vec<bool> = task
        .test
        .iter()
        .map(|e| in_train.contains(&key(e)))
        .collect();
    let count = |flags: &[bool]| flags.iter().filter(|&&f| f).count();
    task.report = DataReport {
        train_duplicates: count(&train_repeats),
        test_duplicates: count(&test_repeats),
        overlap: count(&overlaps),
        ..task.report.clone()
    };
    if dedup {
        let before = task.train.len() + task.test.len();
        let keep = |examples: Vec<Example>, drop: Vec<bool>| {
            examples
                .into_iter()
                .zip(drop)
                .filter_map(|(e, drop)| (!drop).then_some(e))
                .collect()
        };
        let test_drop = test_repeats
            .iter()
            .zip(&overlaps)
            .map(|(repeat, overlap)| repeat | overlap)
            .collect();
        task.train = keep(std::mem::take(&mut task.train), train_repeats);
        task.test = keep(std::mem::take(&mut task.test), test_drop);
        task.report.removed = before - task.train.len() - task.test.len();
    }
}
