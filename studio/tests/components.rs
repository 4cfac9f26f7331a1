//! Components mounted into a real page in headless Chromium: the heatmap shows the matrix,
//! the runs table and the error list follow the state, the study view shows the chosen study.
#![cfg(target_arch = "wasm32")]

use std::sync::Arc;

use inscl::artifact::{ArtifactBody, StudyFile};

use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use studio::components::heatmap::Heatmap;
use studio::components::runs_table::RunsTable;
use studio::components::study_view::StudyView;
use studio::load::{Loaded, group, parse};
use studio::run::Run;
use studio::state::AppState;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A fresh element in the page body to mount into.
fn container() -> web_sys::HtmlElement {
    let document = web_sys::window().unwrap().document().unwrap();
    let div = document.create_element("div").unwrap();
    document.body().unwrap().append_child(&div).unwrap();
    div.dyn_into().unwrap()
}

fn texts(root: &web_sys::HtmlElement, selector: &str) -> Vec<String> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .map(|i| list.item(i).unwrap().text_content().unwrap_or_default())
        .collect()
}

#[wasm_bindgen_test]
async fn heatmap_shows_every_present_value() {
    let root = container();
    let handle = leptos::mount::mount_to(root.clone(), || {
        view! {
            <Heatmap id="h".to_owned() title="R".to_owned() rows=vec!["s1".into(), "s2".into()]
                cols=vec!["a".into(), "b".into()]
                values=vec![vec![Some(50.26), None], vec![Some(40.0), Some(61.5)]] />
        }
    });
    TimeoutFuture::new(0).await;
    assert_eq!(texts(&root, "g.cell text"), ["50.3", "40.0", "61.5"]);
    let cell = root
        .query_selector("g.cell[data-row='1'][data-col='1']")
        .unwrap()
        .unwrap();
    assert_eq!(cell.get_attribute("data-value").as_deref(), Some("61.5"));
    assert_eq!(texts(&root, "g.cell title")[0], "s1 / a: 50.2600");
    drop(handle);
}

#[wasm_bindgen_test]
async fn runs_table_lists_runs_and_keeps_them_after_a_bad_file() {
    let root = container();
    let state = AppState::new();
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        provide_context(state);
        view! { <RunsTable /> }
    });
    let results = r#"{"schema_version": 1, "kind": "results", "tasks": ["a"], "scores": [[70.0]],
        "zero_shot": null, "upper_bounds": null,
        "summary": {"ap": 70.0, "forgetting": 0.0, "bwt": 0.0, "fwt": null, "relative_gain": null}}"#;
    let parsed = parse("run-x/results.json", results).unwrap();
    state.add(
        group(vec![("run-x/results.json".into(), parsed)]),
        Vec::new(),
    );
    TimeoutFuture::new(0).await;
    assert_eq!(texts(&root, "tr.run-row td:nth-child(2)"), ["run-x"]);
    // Without run.json the method is unknown; AP follows run, strategy, method, model, order,
    // α and seed.
    assert_eq!(
        texts(&root, "tr.run-row td:nth-child(4)"),
        ["–"],
        "method column"
    );
    assert_eq!(
        texts(&root, "tr.run-row td:nth-child(9)"),
        ["70.00"],
        "AP column"
    );

    let bad = parse("broken.json", "{\"schema_version\": 1,").unwrap_err();
    state.add(Loaded::default(), vec![bad]);
    state.add(
        Loaded {
            runs: vec![Run {
                name: "run-y".into(),
                ..Run::default()
            }],
            ..Loaded::default()
        },
        Vec::new(),
    );
    TimeoutFuture::new(0).await;
    assert_eq!(
        texts(&root, "tr.run-row td:nth-child(2)"),
        ["run-x", "run-y"]
    );
    assert_eq!(state.errors.get_untracked()[0].file, "broken.json");
    assert_eq!(state.selected.get_untracked(), [0, 1]);
    assert_eq!(state.focus.get_untracked(), Some(0));
    let ids: Vec<usize> = state
        .runs
        .get_untracked()
        .iter()
        .map(|r: &Arc<Run>| r.id)
        .collect();
    assert_eq!(ids, [0, 1]);
}

#[wasm_bindgen_test]
async fn study_view_shows_the_latest_study_and_switches_on_pick() {
    let root = container();
    let state = AppState::new();
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        provide_context(state);
        view! { <StudyView /> }
    });
    TimeoutFuture::new(0).await;
    assert!(
        texts(&root, "#study").is_empty(),
        "nothing before a study loads"
    );
    let first = StudyFile::from_json(
        "study.json",
        include_str!("../../public/example-study/study.json"),
    )
    .unwrap();
    let second = StudyFile {
        name: format!("{}-2", first.name),
        strategies: first.strategies[..1].to_vec(),
        ..first.clone()
    };
    state.add(
        Loaded {
            studies: vec![first.clone(), second.clone()],
            ..Loaded::default()
        },
        Vec::new(),
    );
    TimeoutFuture::new(0).await;
    let shown = |attribute: &str| {
        let section = root.query_selector("#study").unwrap().unwrap();
        section.get_attribute(attribute)
    };
    assert_eq!(shown("data-study"), Some(second.name.clone()));
    let bars = || texts(&root, "#study-bars-ap g.arm").len();
    assert_eq!(bars(), 1, "one bar per arm of the shown study");

    let select: web_sys::HtmlSelectElement = root
        .query_selector("#study-select")
        .unwrap()
        .unwrap()
        .dyn_into()
        .unwrap();
    select.set_value(&first.name);
    select
        .dispatch_event(&web_sys::Event::new("change").unwrap())
        .unwrap();
    TimeoutFuture::new(0).await;
    assert_eq!(shown("data-study"), Some(first.name.clone()));
    assert_eq!(bars(), first.strategies.len());

    // A methods axis: one bar per (method, strategy), named by the arm.
    let methods = StudyFile {
        name: format!("{}-methods", first.name),
        methods: vec!["seq".into(), "ewc".into()],
        ..first.clone()
    };
    state.add(
        Loaded {
            studies: vec![methods.clone()],
            ..Loaded::default()
        },
        Vec::new(),
    );
    TimeoutFuture::new(0).await;
    assert_eq!(shown("data-study"), Some(methods.name.clone()));
    assert_eq!(bars(), 2 * first.strategies.len());
    let ewc_bar = format!(
        "#study-bars-ap g.arm[data-arm='{}+ewc'] text.n",
        first.strategies[0]
    );
    assert_eq!(
        texts(&root, &ewc_bar),
        ["n = 0"],
        "no ewc cells: an empty bar"
    );
    assert!(
        texts(&root, ".study-grid")
            .concat()
            .contains("2 methods (seq, ewc) × ")
    );
}

/// The messages of the distance workers carry the tasks and a job intact, and the job's
/// answer is `pair_distances` on those tasks (what a worker computes).
#[wasm_bindgen_test]
fn distance_worker_messages_round_trip() {
    use inscl::ot::CostPrecision;
    use inscl::similarity::{InstructionCloud, SimilarityConfig, WeightScheme, pair_distances};
    use studio::distance_job::{
        WorkerTasks, answer_message, is_job, job_message, read_answer, read_tasks, tasks_message,
    };
    let clouds = vec![
        InstructionCloud::new(3, vec![1.0, 0.0, 0.5, 0.0, 2.0, 1.0], vec![2, 1]).unwrap(),
        InstructionCloud::new(3, vec![0.5, 0.5, 0.5], vec![4]).unwrap(),
        InstructionCloud::new(
            3,
            vec![0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 3.0, 0.0, 1.0],
            vec![1, 1, 5],
        )
        .unwrap(),
    ];
    let similarity = SimilarityConfig {
        weights: WeightScheme::Uniform,
        precision: CostPrecision::Float32,
        ..SimilarityConfig::default()
    };
    let tasks = tasks_message(&clouds, &similarity);
    assert!(!is_job(&tasks));
    assert_eq!(read_tasks(&tasks).unwrap(), (clouds.clone(), similarity));
    let pairs = [(1, 2), (0, 2)];
    let job = job_message(&pairs, &similarity);
    assert!(is_job(&job));
    let mut worker = WorkerTasks::new(clouds.clone(), similarity);
    worker.warm_up();
    let distances = worker.solve(&job).unwrap();
    assert_eq!(
        distances,
        pair_distances(&clouds, &pairs, &similarity).unwrap()
    );
    // Another cost prepares the tasks again.
    let euclidean = SimilarityConfig {
        cost: inscl::ot::CostKind::Euclidean,
        ..similarity
    };
    assert_eq!(
        worker.solve(&job_message(&pairs, &euclidean)).unwrap(),
        pair_distances(&clouds, &pairs, &euclidean).unwrap()
    );
    assert_eq!(
        read_answer(&answer_message(Ok(Some(distances.clone())))).unwrap(),
        distances
    );
    assert_eq!(
        read_answer(&answer_message(Ok(None))).unwrap(),
        Vec::<f64>::new()
    );
    assert_eq!(
        read_answer(&answer_message(Err("boom".into()))).unwrap_err(),
        "boom"
    );
    let out_of_range = job_message(&[(0, 3)], &similarity);
    assert_eq!(
        worker.solve(&out_of_range).unwrap_err(),
        "task index 3 is out of range for 3 tasks"
    );
}

/// Where the worker script is missing (this test page serves no `distance_worker_loader.js`),
/// the panel says the workers are unavailable and why, and the page solves the transport
/// problems itself: the recompute still answers, with `data-workers` 0.
#[wasm_bindgen_test]
async fn recompute_falls_back_to_the_page_without_workers() {
    use studio::components::recompute::RecomputePanel;
    let root = container();
    let state = AppState::new();
    let _handle = leptos::mount::mount_to(root.clone(), move || {
        provide_context(state);
        view! { <RecomputePanel /> }
    });
    let files = [
        (
            "ex/run.json",
            include_str!("../../public/example-run/run.json"),
        ),
        (
            "ex/embeddings.json",
            include_str!("../../public/example-run/embeddings.json"),
        ),
    ];
    let parsed = files
        .iter()
        .map(|(path, text)| ((*path).to_owned(), parse(path, text).unwrap()))
        .collect();
    state.add(group(parsed), Vec::new());
    let attribute = |selector: &str, name: &str| {
        root.query_selector(selector)
            .unwrap()
            .and_then(|e| e.get_attribute(name))
    };
    // The missing script fails the workers' start (an error event, or the startup timeout).
    for _ in 0..600 {
        if attribute("#rc-workers", "data-state").as_deref() == Some("unavailable") {
            break;
        }
        TimeoutFuture::new(50).await;
    }
    assert_eq!(
        attribute("#rc-workers", "data-state").as_deref(),
        Some("unavailable"),
        "{:?}",
        texts(&root, "#rc-workers")
    );
    root.query_selector("#rc-run")
        .unwrap()
        .unwrap()
        .dyn_into::<web_sys::HtmlElement>()
        .unwrap()
        .click();
    for _ in 0..200 {
        if attribute("#rc-time", "data-workers").is_some() {
            break;
        }
        TimeoutFuture::new(50).await;
    }
    assert_eq!(attribute("#rc-time", "data-workers").as_deref(), Some("0"));
    assert_eq!(
        attribute("#rc-time", "data-distances").as_deref(),
        Some("solved")
    );
    let shown = texts(&root, "#rc-time").concat();
    assert!(shown.contains("solved on the page"), "{shown}");
    assert!(
        !texts(&root, "td.new-quota").is_empty(),
        "the recomputed quotas are shown"
    );
}
