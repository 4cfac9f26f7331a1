//! `trainer study` with the deterministic test double: the grid runs into ordinary run
//! folders, `study.json` holds the statistics, a study killed during a cell and started again
//! ends with the same `study.json`, a finished study only recomputes, and a cell folder of
//! another configuration is refused. A methods axis gives one arm per (method, strategy);
//! study-defined task orders run as task lists; cells run one by one by index (in any order)
//! give the same `study.json`; a cell's lock refuses a second holder, and `status` tells done,
//! running, failed and pending cells apart; `submit --dry-run` writes the sbatch scripts.
#![cfg(not(target_arch = "wasm32"))]

#[path = "support/double.rs"]
mod double;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use double::MemorisingDouble;
use inscl::artifact::{self, ArtifactBody, RunManifest, StudyFile};
use trainer::config::Config;
use trainer::learner::ContinualLearner;
use trainer::method::MethodName;
use trainer::progress::Progress;
use trainer::run::RunError;
use trainer::study::lock::{CellLock, CellOutcome, lock_file};
use trainer::study::slurm::{SlurmConfig, SubmitOptions, Submitted, submit};
use trainer::study::status::{CellProgress, study_status};
use trainer::study::{StudyConfig, StudyError, StudyOptions, run_cell, run_study, summarize};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/superni")
}

/// none / random / inscl × seeds 0, 1 × both orders of the three fixture categories, with RG.
fn study(out: &Path) -> StudyConfig {
    StudyConfig {
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
        ..StudyConfig::new("small")
    }
}

/// The test double of a cell: EWC cells remember less, so that methods differ.
fn double(config: &Config) -> MemorisingDouble {
    MemorisingDouble::new(if config.method.method_name() == MethodName::Ewc {
        8
    } else {
        20
    })
}

/// Runs `body` with study options whose learners are test doubles; the learner opened for
/// cell number `interrupt_cell` (0-based, counting only the cells that run) raises the
/// interrupt flag at its stage 2.
fn with_doubles<T>(
    interrupt_cell: Option<usize>,
    opened: &mut usize,
    body: impl FnOnce(&mut StudyOptions<'_>) -> T,
) -> T {
    let flag = Arc::new(AtomicBool::new(false));
    let mut open = |config: &Config| -> anyhow::Result<Box<dyn ContinualLearner>> {
        let mut learner = double(config);
        if interrupt_cell == Some(*opened) {
            learner.interrupt_at_stage = Some((2, flag.clone()));
        }
        *opened += 1;
        Ok(Box::new(learner))
    };
    let mut progress = Progress::quiet;
    let mut lines = Vec::new();
    let mut report = |line: &str| lines.push(line.to_owned());
    body(&mut StudyOptions {
        root: fixtures(),
        interrupt: flag.clone(),
        open_learner: &mut open,
        progress: &mut progress,
        report: &mut report,
    })
}

/// Runs `study` whole (see [`with_doubles`]).
fn run(
    study: &StudyConfig,
    interrupt_cell: Option<usize>,
    opened: &mut usize,
) -> Result<StudyFile, StudyError> {
    with_doubles(interrupt_cell, opened, |options| run_study(study, options))
}

/// Runs cell `index` of `study` alone (see [`with_doubles`]).
fn run_one(
    study: &StudyConfig,
    index: usize,
    interrupt: bool,
    opened: &mut usize,
) -> Result<(), StudyError> {
    let interrupt_cell = interrupt.then_some(*opened);
    with_doubles(interrupt_cell, opened, |options| {
        run_cell(study, index, None, options)
    })
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

/// none and inscl with `seq` and EWC, 2 seeds, one order: four arms.
fn methods_study(out: &Path) -> StudyConfig {
    let mut grid = study(out);
    grid.strategies = ["none", "inscl"].map(|s| s.parse().unwrap()).to_vec();
    grid.methods = vec![MethodName::Seq, MethodName::Ewc];
    grid.orders.truncate(1);
    grid.relative_gain = false;
    grid
}

#[test]
fn a_methods_axis_gives_one_arm_per_method_and_strategy() {
    let out = tempfile::tempdir().unwrap();
    let grid = methods_study(out.path());
    let mut opened = 0;
    let file = run(&grid, None, &mut opened).unwrap();
    assert_eq!(opened, 2 * 2 * 2);
    assert_eq!(file.methods, ["seq", "ewc"]);
    let arms: Vec<String> = file.summaries.iter().map(|s| s.arm().label()).collect();
    assert_eq!(arms, ["none", "inscl", "none+ewc", "inscl+ewc"]);
    assert!(file.summaries.iter().all(|s| s.metrics["ap"].n == 2));
    // Pairs that differ in one factor only: not none vs inscl+ewc, nor inscl vs none+ewc.
    let pairs: Vec<(&str, &str)> = file
        .comparisons
        .iter()
        .map(|c| (c.a.as_str(), c.b.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("none", "inscl"),
            ("none", "none+ewc"),
            ("inscl", "inscl+ewc"),
            ("none+ewc", "inscl+ewc")
        ]
    );
    // An EWC cell is a run of EWC in a folder named by its arm.
    let folder = grid.folder(&fixtures());
    let cell = |method: &str, seed: u64| {
        file.cells
            .iter()
            .find(|c| c.method == method && c.strategy == "inscl" && c.seed == seed)
            .unwrap()
    };
    assert_eq!(cell("ewc", 1).run, "runs/inscl+ewc-curriculum-s1");
    assert_eq!(cell("seq", 1).run, "runs/inscl-curriculum-s1");
    let manifest: RunManifest =
        artifact::read(&folder.join("runs/inscl+ewc-curriculum-s1/run.json")).unwrap();
    assert_eq!(manifest.config["method"]["name"], "ewc");
    // The paired difference inscl − inscl+ewc is over the matched seeds (the EWC double
    // remembers less, so they differ).
    let differences: Vec<f64> = [0, 1]
        .map(|seed| cell("seq", seed).metrics["ap"] - cell("ewc", seed).metrics["ap"])
        .to_vec();
    let paired = &file.comparisons[2].metrics["ap"];
    assert_eq!(paired.difference.n, 2);
    assert!((paired.difference.mean - (differences[0] + differences[1]) / 2.0).abs() < 1e-12);
    assert!(differences.iter().any(|d| *d != 0.0), "{differences:?}");
    assert_eq!(file.curves.len(), 4);
    assert_eq!(
        (
            file.curves[3].strategy.as_str(),
            file.curves[3].method.as_str()
        ),
        ("inscl", "ewc")
    );
    // study.json names the method where it is not seq, and reads back equal.
    let written = std::fs::read_to_string(folder.join("study.json")).unwrap();
    assert_eq!(written, file.to_json());
    assert!(written.contains("\"method\": \"ewc\""));
    let parsed: StudyFile = artifact::read(&folder.join("study.json")).unwrap();
    assert_eq!(parsed.arms(), file.arms());
    assert_eq!(parsed.cells.len(), 8);
    let table = trainer::study::format_study(&file);
    assert!(
        table.contains("2 methods × 2 strategies") && table.contains("inscl - inscl+ewc"),
        "{table}"
    );

    // Without the axis the study is the seq arms, in the same cell folders: all finished.
    let mut seq_only = grid.clone();
    seq_only.methods.clear();
    let mut reopened = 0;
    let seq_file = run(&seq_only, None, &mut reopened).unwrap();
    assert_eq!(reopened, 0);
    assert_eq!(seq_file.methods, ["seq"]);
    assert!(!seq_file.to_json().contains("\"method"), "no method fields");
    assert_eq!(seq_file.cells.len(), 4);
}

#[test]
fn a_study_defined_order_runs_its_task_list_across_seeds() {
    let out = tempfile::tempdir().unwrap();
    let mut grid = study(out.path());
    grid.strategies.truncate(1);
    grid.relative_gain = false;
    let mixed = ["Rewriting", "Extraction", "Mathematics"].map(String::from);
    grid.orders = vec!["curriculum".into(), "mixed".into()];
    grid.task_orders.insert("mixed".into(), mixed.to_vec());
    let mut opened = 0;
    let file = run(&grid, None, &mut opened).unwrap();
    assert_eq!(opened, 2 * 2);
    let folder = grid.folder(&fixtures());
    for seed in [0, 1] {
        let manifest: RunManifest =
            artifact::read(&folder.join(format!("runs/none-mixed-s{seed}/run.json"))).unwrap();
        let tasks: Vec<&str> = manifest.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tasks, mixed);
    }
    assert_eq!(file.task_orders["mixed"], mixed);
    let curves = file.curves.iter().find(|c| c.order == "mixed").unwrap();
    assert_eq!((curves.tasks.as_slice(), curves.n), (mixed.as_slice(), 2));

    grid.task_orders.insert("mixed".into(), Vec::new());
    let err = grid.cells().unwrap_err().to_string();
    assert!(err.contains("task_orders.mixed lists no task"), "{err}");
}

#[test]
fn cells_run_one_by_one_in_any_order_give_the_same_study() {
    let out = tempfile::tempdir().unwrap();
    let mut opened = 0;
    let whole = run(&study(&out.path().join("whole")), None, &mut opened).unwrap();
    let grid = study(&out.path().join("cells"));
    let count = grid.cells().unwrap().len();
    assert_eq!(count, 2 + 3 * 2 * 2);
    let mut opened = 0;
    for index in (0..count).rev() {
        run_one(&grid, index, false, &mut opened).unwrap();
    }
    assert_eq!(opened, count);
    // Finished cells do nothing.
    run_one(&grid, 3, false, &mut opened).unwrap();
    assert_eq!(opened, count);
    let folder = grid.folder(&fixtures());
    let summary = summarize(&grid, &folder).unwrap();
    assert_eq!(summary.to_json(), whole.to_json());

    let err = run_one(&grid, count, false, &mut opened).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("no cell {count}; the grid has {count} cells")),
        "{err}"
    );
    let moved = with_doubles(None, &mut opened, |options| {
        run_cell(&grid, 2, Some("inscl-curriculum-s0"), options)
    })
    .unwrap_err()
    .to_string();
    assert!(
        moved.contains("cell 2 is none-curriculum-s0, not inscl-curriculum-s0"),
        "{moved}"
    );
}

#[test]
fn a_held_cell_is_refused_naming_its_holder_and_status_tells_where_cells_stand() {
    let out = tempfile::tempdir().unwrap();
    let mut grid = study(out.path());
    grid.strategies = ["none", "inscl"].map(|s| s.parse().unwrap()).to_vec();
    grid.seeds.truncate(1);
    grid.orders.truncate(1);
    grid.relative_gain = false;
    let folder = grid.folder(&fixtures());
    let progress = || -> Vec<CellProgress> {
        study_status(&grid, &fixtures())
            .unwrap()
            .into_iter()
            .map(|s| s.progress)
            .collect()
    };
    assert_eq!(progress(), [CellProgress::Pending, CellProgress::Pending]);

    let name = "none-curriculum-s0";
    let held = CellLock::acquire(&lock_file(&folder, name), name).unwrap();
    let mut opened = 0;
    let err = run_one(&grid, 0, false, &mut opened).unwrap_err();
    assert!(matches!(err, StudyError::Busy { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "{name} is being run by pid {} on ",
            std::process::id()
        )),
        "{message}"
    );
    assert_eq!(opened, 0, "the refused cell opens no model");
    assert!(matches!(progress()[0], CellProgress::Running { .. }));
    assert!(
        run(&grid, None, &mut opened).is_err(),
        "the whole study too"
    );

    held.release(CellOutcome::Failed("out of memory".into()))
        .unwrap();
    assert_eq!(
        progress()[0],
        CellProgress::Failed {
            reason: "out of memory".into()
        }
    );
    // A holder that dies without recording an end (its lock goes with it).
    drop(CellLock::acquire(&lock_file(&folder, name), name).unwrap());
    let CellProgress::Failed { reason } = &progress()[0] else {
        panic!("{:?}", progress());
    };
    assert!(reason.contains("killed or crashed"), "{reason}");

    // Interrupted at stage 2: pending, one of three stages done; then run to the end.
    let err = run_one(&grid, 0, true, &mut opened).unwrap_err();
    assert!(err.to_string().contains("interrupt"), "{err}");
    let status = study_status(&grid, &fixtures()).unwrap();
    assert_eq!(status[0].progress, CellProgress::Pending);
    assert_eq!(status[0].stages, Some((1, 3)));
    run(&grid, None, &mut opened).unwrap();
    assert_eq!(progress(), [CellProgress::Done, CellProgress::Done]);
}

#[test]
fn submit_dry_run_writes_an_array_of_the_unfinished_cells() {
    let out = tempfile::tempdir().unwrap();
    let mut grid = methods_study(out.path());
    grid.methods.clear();
    grid.slurm = SlurmConfig {
        partition: Some("cpu".into()),
        time: Some("01:00:00".into()),
        cpus: Some(2),
        mem: Some("8G".into()),
        gres: Some("gpu:1".into()),
        concurrency: Some(3),
        options: vec!["--account=proj".into()],
        setup: vec!["module load rust".into()],
        trainer: Some("/opt/inscl/bin/trainer".into()),
    };
    let mut opened = 0;
    run_one(&grid, 1, false, &mut opened).unwrap();
    let submitted = submit(
        &grid,
        &SubmitOptions {
            root: fixtures(),
            concurrency: Some(2),
            dry_run: true,
        },
    )
    .unwrap();
    let folder = grid.folder(&fixtures());
    let slurm = folder.join("slurm");
    assert_eq!(
        submitted,
        Submitted::Written {
            cells: vec![0, 2, 3],
            script: slurm.join("cells.sbatch")
        }
    );
    let cells = std::fs::read_to_string(slurm.join("cells.sbatch")).unwrap();
    let root = fixtures().canonicalize().unwrap();
    let config = slurm.join("study.toml");
    for line in [
        "#SBATCH --job-name=inscl-small".to_owned(),
        "#SBATCH --array=0,2,3%2".to_owned(),
        format!("#SBATCH --chdir={}", root.display()),
        // Quoted: `%` is outside shlex's safe set; sbatch's parser takes single quotes.
        format!(
            "#SBATCH --output='{}'",
            slurm.join("logs/cell-%a.log").display()
        ),
        "#SBATCH --open-mode=append".to_owned(),
        "#SBATCH --partition=cpu".to_owned(),
        "#SBATCH --account=proj".to_owned(),
        "#SBATCH --time=01:00:00".to_owned(),
        "#SBATCH --cpus-per-task=2".to_owned(),
        "#SBATCH --mem=8G".to_owned(),
        "#SBATCH --gres=gpu:1".to_owned(),
        "module load rust".to_owned(),
        "cells=([0]=none-curriculum-s0 [2]=none-curriculum-s1 [3]=inscl-curriculum-s1)".to_owned(),
        format!(
            "exec /opt/inscl/bin/trainer study cell --config {} --index \"$SLURM_ARRAY_TASK_ID\" \
             --cell \"${{cells[$SLURM_ARRAY_TASK_ID]}}\"",
            config.display()
        ),
    ] {
        assert!(cells.lines().any(|l| l == line), "{line}\nnot in\n{cells}");
    }
    let summary = std::fs::read_to_string(slurm.join("summary.sbatch")).unwrap();
    assert!(
        summary.contains("#SBATCH --job-name=inscl-small-summary")
            && summary.contains(&format!(
                "exec /opt/inscl/bin/trainer study summarize --config {}",
                config.display()
            ))
            && !summary.contains("--array"),
        "{summary}"
    );
    // The jobs read the study as submitted.
    assert_eq!(StudyConfig::read(&config).unwrap(), grid);
    for script in ["cells.sbatch", "summary.sbatch"] {
        let checked = std::process::Command::new("bash")
            .arg("-n")
            .arg(slurm.join(script))
            .status()
            .unwrap();
        assert!(checked.success(), "{script} is valid bash");
    }
}
