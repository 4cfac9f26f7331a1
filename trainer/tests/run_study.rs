//! `trainer study` with the deterministic test double: the grid runs into ordinary run
//! folders, `study.json` holds the statistics, a study killed during a cell and started again
//! ends with the same `study.json`, a finished study only recomputes, and a cell folder of
//! another configuration is refused.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/double.rs"]
mod double;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use double::MemorisingDouble;
use inscl::artifact::{self, ArtifactBody, StudyFile};
use trainer::config::Config;
use trainer::learner::Learner;
use trainer::progress::Progress;
use trainer::run::RunError;
use trainer::study::{StudyConfig, StudyError, StudyOptions, run_study};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni")
}

/// none / random / inscl × seeds 0, 1 × both orders of the three fixture categories, with RG.
fn study(out: &Path) -> StudyConfig {
    StudyConfig {
        name: "small".into(),
        strategies: ["none", "random", "inscl"]
            .map(|s| s.parse().unwrap())
            .to_vec(),
        seeds: vec![0, 1],
        orders: vec!["curriculum".into(), "reverse".into()],
        relative_gain: true,
        set: vec![
            "data.path=\"inscl/categories.json\"".into(),
            "strategy.alpha=6".into(),
            "training.batch_size=4".into(),
        ],
        output: out.display().to_string(),
    }
}

/// Runs `study`; the learner opened for cell number `interrupt_cell` (0-based, counting only
/// the cells that run) raises the interrupt flag at its stage 2.
fn run(
    study: &StudyConfig,
    interrupt_cell: Option<usize>,
    opened: &mut usize,
) -> Result<StudyFile, StudyError> {
    let flag = Arc::new(AtomicBool::new(false));
    let mut open = |_: &Config| -> anyhow::Result<Box<dyn Learner>> {
        let mut learner = MemorisingDouble::new(20);
        if interrupt_cell == Some(*opened) {
            learner.interrupt_at_stage = Some((2, flag.clone()));
        }
        *opened += 1;
        Ok(Box::new(learner))
    };
    let mut progress = Progress::quiet;
    let mut lines = Vec::new();
    let mut report = |line: &str| lines.push(line.to_owned());
    run_study(
        study,
        &mut StudyOptions {
            root: fixtures(),
            interrupt: flag.clone(),
            open_learner: &mut open,
            progress: &mut progress,
            report: &mut report,
        },
    )
}

#[test]
fn a_study_summarises_its_grid_and_survives_an_interrupt() {
    let out = tempfile::tempdir().unwrap();
    let plain_out = out.path().join("plain");
    let mut opened = 0;
    let plain = run(&study(&plain_out), None, &mut opened).unwrap();
    assert_eq!(opened, 2 + 3 * 2 * 2, "two single runs, then the grid");
    assert_eq!(plain.cells.len(), 12);
    // The file is the summary, byte for byte (parsing it back may move a float by one ulp).
    let written = std::fs::read_to_string(plain_out.join("small/study.json")).unwrap();
    assert_eq!(written, plain.to_json());
    let parsed: StudyFile = artifact::read(&plain_out.join("small/study.json")).unwrap();
    assert_eq!(parsed.cells.len(), 12);
    for summary in &plain.summaries {
        let ap = &summary.metrics["ap"];
        assert_eq!(ap.n, 4, "{}", summary.strategy);
        let [low, high] = ap.ci95.unwrap();
        assert!(low <= ap.mean && ap.mean <= high);
        assert_eq!(summary.metrics["relative_gain"].n, 4);
    }
    assert_eq!(plain.comparisons.len(), 3);
    let none_vs_inscl = &plain.comparisons[1];
    assert_eq!(
        (none_vs_inscl.a.as_str(), none_vs_inscl.b.as_str()),
        ("none", "inscl")
    );
    let ap = &none_vs_inscl.metrics["ap"];
    assert_eq!(ap.difference.n, 4);
    // Four cells: p-values are multiples of 2/16.
    let p = ap.p_value.unwrap();
    assert!((p * 8.0 - (p * 8.0).round()).abs() < 1e-12, "{p}");
    assert_eq!(plain.curves.len(), 3 * 2);
    assert!(plain.curves.iter().all(|c| c.n == 2 && c.mean.len() == 3));
    let table = trainer::study::format_study(&plain);
    assert!(
        table.contains("none - inscl") && table.contains("95% CI"),
        "{table}"
    );

    // Interrupted in the fifth cell that runs, then started again.
    let resumed_out = out.path().join("resumed");
    let mut opened = 0;
    let err = run(&study(&resumed_out), Some(4), &mut opened).unwrap_err();
    assert!(
        matches!(
            &err,
            StudyError::Run { source, .. }
                if matches!(**source, RunError::Interrupted { stage: 2, .. })
        ),
        "{err}"
    );
    assert!(!resumed_out.join("small/study.json").exists());
    let mut reopened = 0;
    let resumed = run(&study(&resumed_out), None, &mut reopened).unwrap();
    assert_eq!(
        reopened,
        14 - 4,
        "finished cells are skipped, the interrupted one resumed"
    );
    assert_eq!(resumed, plain);

    // A finished study only recomputes.
    let mut none_opened = 0;
    assert_eq!(
        run(&study(&resumed_out), None, &mut none_opened).unwrap(),
        plain
    );
    assert_eq!(none_opened, 0);
}

#[test]
fn a_cell_folder_of_another_configuration_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let mut small = study(out.path());
    small.strategies.truncate(1);
    small.seeds.truncate(1);
    small.orders.truncate(1);
    small.relative_gain = false;
    let mut opened = 0;
    run(&small, None, &mut opened).unwrap();
    small.set.push("strategy.alpha=7".into());
    let err = run(&small, None, &mut opened).unwrap_err().to_string();
    assert!(
        err.contains("none-curriculum-s0") && err.contains("strategy.alpha"),
        "{err}"
    );
    let bad = StudyConfig {
        strategies: vec!["single".parse().unwrap()],
        ..small
    };
    assert!(
        run(&bad, None, &mut opened)
            .unwrap_err()
            .to_string()
            .contains("relative_gain")
    );
}

/// `trainer study` on the shipped study config recomputes the committed `study.json` from the
/// committed run folders, byte for byte.
#[test]
fn the_committed_study_reproduces_from_its_run_folders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let study = StudyConfig::read(&root.join("trainer/configs/study-inscl16-small.toml")).unwrap();
    let folder = study.folder(&root);
    let summary = trainer::study::summarize(&study, &folder).unwrap();
    assert_eq!(
        summary.cells.len(),
        3 * 3 * 2,
        "every cell is committed and finished"
    );
    let committed = std::fs::read_to_string(folder.join("study.json")).unwrap();
    assert_eq!(committed, summary.to_json());
}
