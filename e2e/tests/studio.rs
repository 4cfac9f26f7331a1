//! The studio in headless Chromium against the release build (`dist/`): drop a run's
//! artifacts, read the heatmap, recompute with another α and compare with `trainer plan`,
//! drop broken files and a fuzzed set of malformed artifacts, load the example run, take a
//! screenshot.
//!
//! Needs `trunk build --release` and chromedriver; `scripts/test-studio` does both and runs
//! `cargo test -p e2e --test studio -- --test-threads=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::{Driver, browser, chromedriver, dist_dir, output_dir, plan_args, serve, trainer_plan};
use fantoccini::{Client, Locator};
use inscl::artifact::Artifact;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::Value;

#[path = "../../shared/tests/support/fuzz.rs"]
mod fuzz;

/// The run dropped by the tests: the example run shipped with the studio (a `trainer run`
/// output folder listed in `files.json`).
fn example_files() -> Vec<PathBuf> {
    let dir = e2e::repo_root().join("public/example-run");
    let list: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("files.json")).unwrap()).unwrap();
    list.iter().map(|f| dir.join(f)).collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The artifact of the example run with the given `kind`.
fn artifact(kind: &str) -> (PathBuf, Value) {
    example_files()
        .into_iter()
        .map(|p| {
            let v = read_json(&p);
            (p, v)
        })
        .find(|(_, v)| v["kind"] == kind)
        .unwrap_or_else(|| panic!("the example run has no {kind} artifact"))
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

/// Drops files through the file picker (what a drop does, minus the drag gesture).
async fn drop_files(client: &Client, files: &[PathBuf]) {
    let input = client.find(Locator::Css("#file-input")).await.unwrap();
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    input.send_keys(&paths.join("\n")).await.unwrap();
}

async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in client.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// Saves a screenshot of the whole page as `name` in the e2e output folder.
async fn screenshot(client: &Client, name: &str) {
    let height = client
        .execute("return document.body.scrollHeight", Vec::new())
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(3000)
        .min(8000) as u32;
    client.set_window_size(1400, height + 100).await.unwrap();
    client
        .execute("window.scrollTo(0, 0)", Vec::new())
        .await
        .unwrap();
    let png = client.screenshot().await.unwrap();
    let shot = output_dir().join(name);
    std::fs::write(&shot, png).unwrap();
    println!("screenshot: {}", shot.display());
}

/// A browser on a fresh server of `dist/`, the studio loaded; keep the driver alive while the
/// client is used.
async fn open_studio() -> (Driver, Client) {
    let url = serve(dist_dir());
    let driver = chromedriver();
    let client = browser(&driver).await;
    client.goto(&url).await.unwrap();
    wait_for(&client, "#file-input").await;
    (driver, client)
}

/// The run `name` is still the one run listed and its heatmap still drawn.
async fn assert_run_stays(client: &Client, name: &str) {
    assert_eq!(
        texts(client, "tr.run-row td:nth-child(2)").await,
        [name],
        "the run stays"
    );
    assert!(
        client
            .find(Locator::Css("#score-heatmap g.cell"))
            .await
            .is_ok()
    );
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

#[tokio::test]
async fn dropped_run_heatmap_recompute_errors_and_screenshot() {
    let (_driver, client) = open_studio().await;

    // Drop the whole run.
    let (_, manifest) = artifact("run");
    drop_files(&client, &example_files()).await;
    wait_for(&client, "tr.run-row").await;
    let name = manifest["name"].as_str().unwrap();
    assert_eq!(texts(&client, "tr.run-row td:nth-child(2)").await, [name]);
    // The method column, after the strategy: the example run predates `[method]`, so `seq`.
    assert_eq!(texts(&client, "tr.run-row td:nth-child(4)").await, ["seq"]);

    // The heatmap shows every score of results.json.
    let (_, results) = artifact("results");
    let rows = results["scores"].as_array().unwrap();
    for (i, row) in rows.iter().enumerate() {
        for (j, value) in row.as_array().unwrap().iter().enumerate() {
            let want = value.as_f64().unwrap();
            let cell = client
                .find(Locator::Css(&format!(
                    "#score-heatmap g.cell[data-row='{i}'][data-col='{j}']"
                )))
                .await
                .unwrap_or_else(|_| panic!("no heatmap cell R[{i}][{j}]"));
            let shown: f64 = cell
                .attr("data-value")
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(shown, want, "R[{i}][{j}]");
            assert_eq!(
                cell.text().await.unwrap(),
                format!("{want:.1}"),
                "R[{i}][{j}] as text"
            );
        }
    }
    let cells = client
        .find_all(Locator::Css("#score-heatmap g.cell"))
        .await
        .unwrap();
    assert_eq!(
        cells.len(),
        rows.len() * (rows.len() + 1) / 2,
        "only the lower triangle"
    );

    // Recompute with another α: the quotas equal `trainer plan --alpha` on the same inputs.
    let alpha = manifest["replay"]["alpha"].as_u64().unwrap() as usize + 37;
    let alpha_input = client.find(Locator::Css("#rc-alpha")).await.unwrap();
    alpha_input.clear().await.unwrap();
    alpha_input.send_keys(&alpha.to_string()).await.unwrap();
    click(&client, "#rc-run").await;
    let time = wait_for(&client, "#rc-time").await;
    // The transport problems ran on the distance workers, not on the page as a fallback.
    let workers: usize = time
        .attr("data-workers")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        workers >= 1,
        "distances solved on {workers} workers: {}",
        time.text().await.unwrap()
    );
    let mut shown: BTreeMap<(u64, String), u64> = BTreeMap::new();
    for cell in client.find_all(Locator::Css("td.new-quota")).await.unwrap() {
        let stage = cell
            .attr("data-stage")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let task = cell.attr("data-task").await.unwrap().unwrap();
        shown.insert((stage, task), cell.text().await.unwrap().parse().unwrap());
    }
    let (embeddings, _) = artifact("embeddings");
    let expected = trainer_plan(&plan_args(&embeddings, &manifest["replay"], alpha));
    let mut want = BTreeMap::new();
    for stage in expected["stages"].as_array().unwrap() {
        for prev in stage["previous"].as_array().unwrap() {
            let key = (
                stage["stage"].as_u64().unwrap(),
                prev["task"].as_str().unwrap().to_owned(),
            );
            want.insert(key, prev["quota"].as_u64().unwrap());
        }
    }
    assert!(!want.is_empty());
    assert_eq!(
        shown, want,
        "recomputed quotas vs trainer plan --alpha {alpha}"
    );
    let changed = client
        .find_all(Locator::Css("#rc-table tr.changed"))
        .await
        .unwrap();
    assert_eq!(
        changed.len(),
        want.len(),
        "every quota changes with α and is marked"
    );

    // Broken files get messages; the loaded run stays.
    let scratch = output_dir().join("broken");
    std::fs::create_dir_all(&scratch).unwrap();
    let truncated = scratch.join("truncated.json");
    let text = std::fs::read_to_string(artifact("results").0).unwrap();
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let not_json = scratch.join("notes.json");
    std::fs::write(&not_json, "these are notes, not JSON").unwrap();
    let future = scratch.join("future.json");
    std::fs::write(
        &future,
        text.replacen("\"schema_version\": 1", "\"schema_version\": 99", 1),
    )
    .unwrap();
    let huge = scratch.join("huge.json");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(201 * 1024 * 1024)
        .unwrap();
    drop_files(&client, &[truncated, not_json, future, huge]).await;
    wait_for(&client, "#errors li").await;
    let errors = texts(&client, "#errors li").await;
    let find = |file: &str| {
        errors
            .iter()
            .find(|e| e.contains(file))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        find("truncated.json").starts_with("truncated.json: truncated JSON"),
        "{errors:?}"
    );
    assert!(
        find("notes.json").starts_with("notes.json: not valid JSON"),
        "{errors:?}"
    );
    assert!(
        find("future.json").contains("schema_version 99 is not supported"),
        "{errors:?}"
    );
    assert!(find("huge.json").contains("too large"), "{errors:?}");
    assert_run_stays(&client, name).await;
    assert_eq!(
        client
            .find_all(Locator::Css("td.new-quota"))
            .await
            .unwrap()
            .len(),
        want.len(),
        "the recomputed plan stays on screen"
    );

    screenshot(&client, "studio.png").await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn example_run_loads_from_the_site() {
    let (_driver, client) = open_studio().await;
    click(&client, "#load-example").await;
    wait_for(&client, "#score-heatmap g.cell").await;
    let (_, manifest) = artifact("run");
    assert_eq!(
        texts(&client, "tr.run-row td:nth-child(2)").await,
        [manifest["name"].as_str().unwrap()]
    );
    for id in [
        "#wasserstein-heatmap",
        "#plan-bars",
        "#loss-chart",
        "#final-scores",
        "#rc-run",
    ] {
        assert!(client.find(Locator::Css(id)).await.is_ok(), "{id} is shown");
    }
    assert!(
        client.find(Locator::Css("#errors")).await.is_err(),
        "no load errors"
    );

    // Clicking an instruction of the InsInfo chart shows its text and tags.
    let bar = client
        .find(Locator::Css("#insinfo-bars rect.instruction"))
        .await
        .unwrap();
    let id = bar.attr("data-id").await.unwrap().unwrap();
    bar.click().await.unwrap();
    let detail = wait_for(&client, ".instruction-detail")
        .await
        .text()
        .await
        .unwrap();
    // The chart opens on the last stage's first previous task: the run's first task.
    let (_, embeddings) = artifact("embeddings");
    let instruction = embeddings["tasks"][0]["instructions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == id.as_str())
        .unwrap();
    // The browser renders runs of whitespace as one space.
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let detail = squash(&detail);
    assert!(detail.starts_with(&id), "{detail}");
    let text = squash(instruction["text"].as_str().unwrap());
    assert!(detail.contains(&text), "{detail}");
    let tags: Vec<&str> = instruction["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let tags = squash(&tags.join(", "));
    assert!(detail.contains(&format!("tags: {tags}")), "{detail}");

    // A real drop event (a script-made DataTransfer) goes through the same loading.
    client
        .execute(
            r#"const transfer = new DataTransfer();
               transfer.items.add(new File(['{"schema_version": 1,'], 'dropped.json'));
               document.querySelector('.drop-zone').dispatchEvent(
                   new DragEvent('drop', {dataTransfer: transfer, bubbles: true, cancelable: true}));"#,
            Vec::new(),
        )
        .await
        .unwrap();
    let error = wait_for(&client, "#errors li[data-file='dropped.json']").await;
    assert!(
        error
            .text()
            .await
            .unwrap()
            .starts_with("dropped.json: truncated JSON")
    );
    assert_eq!(
        texts(&client, "tr.run-row").await.len(),
        1,
        "the example run stays"
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn picked_run_folder_groups_into_one_run() {
    let (_driver, client) = open_studio().await;
    let folder = e2e::repo_root().join("public/example-run");
    let input = client.find(Locator::Css("#folder-input")).await.unwrap();
    input
        .send_keys(&folder.display().to_string())
        .await
        .unwrap();
    wait_for(&client, "tr.run-row").await;
    let (_, manifest) = artifact("run");
    assert_eq!(
        texts(&client, "tr.run-row td:nth-child(2)").await,
        [manifest["name"].as_str().unwrap()],
        "run.json, stages/*.json, results.json and embeddings.json form one run"
    );
    let stages = manifest["tasks"].as_array().unwrap().len();
    let bars = client
        .find_all(Locator::Css("#plan-bars g.bar"))
        .await
        .unwrap();
    assert_eq!(
        bars.len(),
        stages - 1,
        "every stage with replay, from stages/"
    );
    assert!(
        client.find(Locator::Css("#rc-run")).await.is_ok(),
        "embeddings.json loaded"
    );
    client.close().await.unwrap();
}

/// `count` malformed artifacts made from the example run's files by the readers' fuzzer
/// (`shared/tests/support/fuzz.rs`, seeded), written to `dir` as `hostile-NN.json`: only files that
/// the studio's parser refuses, each with the message it must show.
fn hostile_files(dir: &Path, count: usize) -> Vec<(PathBuf, String)> {
    let seeds = example_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let strategy = fuzz::mutated(seeds);
    let mut runner = TestRunner::deterministic();
    let mut files = Vec::new();
    while files.len() < count {
        let bytes = strategy.new_tree(&mut runner).unwrap().current();
        let name = format!("hostile-{:02}.json", files.len());
        let text = String::from_utf8_lossy(&bytes);
        // Text with `log_history` is read as a Hugging Face log instead.
        if text.contains("\"log_history\"") {
            continue;
        }
        if let Err(e) = Artifact::from_json(&name, &text) {
            let path = dir.join(&name);
            std::fs::write(&path, &bytes).unwrap();
            files.push((path, e.to_string()));
        }
    }
    files
}

#[tokio::test]
async fn hostile_drops_leave_the_app_alive_and_every_error_shown() {
    let (_driver, client) = open_studio().await;
    let (_, manifest) = artifact("run");
    let name = manifest["name"].as_str().unwrap();
    drop_files(&client, &example_files()).await;
    wait_for(&client, "tr.run-row").await;

    let scratch = output_dir().join("hostile");
    std::fs::create_dir_all(&scratch).unwrap();
    let files = hostile_files(&scratch, 64);
    // The browser renders runs of whitespace as one space.
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (i, batch) in files.chunks(8).enumerate() {
        let paths: Vec<PathBuf> = batch.iter().map(|(p, _)| p.clone()).collect();
        drop_files(&client, &paths).await;
        for (path, expected) in batch {
            let file = path.file_name().unwrap().to_str().unwrap();
            let shown = wait_for(&client, &format!("#errors li[data-file='{file}']"))
                .await
                .text()
                .await
                .unwrap();
            let shown = squash(&shown);
            assert!(shown.starts_with(&format!("{file}: ")), "{shown}");
            // Bytes that are not UTF-8 are decoded by the browser, not by `from_utf8_lossy`.
            let utf8 = std::str::from_utf8(&std::fs::read(path).unwrap())
                .is_ok_and(|t| !t.starts_with('\u{feff}'));
            if utf8 {
                assert_eq!(shown, squash(expected), "{file}");
            }
        }
        // A drop after the batch is still read: the app did not die (a Rust panic in wasm
        // stops it); the example run is still loaded.
        let canary = scratch.join(format!("canary-{i}.json"));
        std::fs::write(&canary, "{\"schema_version\": 1,").unwrap();
        drop_files(&client, &[canary]).await;
        wait_for(&client, &format!("#errors li[data-file='canary-{i}.json']")).await;
        assert_run_stays(&client, name).await;
    }
    println!("hostile drops: {} malformed files", files.len());
    client.close().await.unwrap();
}

/// The example study shipped with the studio: its folder and `study.json`.
fn example_study() -> (PathBuf, Value) {
    let dir = e2e::repo_root().join("public/example-study");
    let study = read_json(&dir.join("study.json"));
    (dir, study)
}

/// The run names of the example study's run folders (their `run.json` files).
fn example_study_runs() -> Vec<String> {
    let (dir, _) = example_study();
    let list: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("files.json")).unwrap()).unwrap();
    let mut names: Vec<String> = list
        .iter()
        .filter(|f| f.ends_with("/run.json"))
        .map(|f| read_json(&dir.join(f))["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The number in attribute `name` of the element at `css`.
async fn number_at(client: &Client, css: &str, name: &str) -> f64 {
    let element = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("no {css}"));
    let text = element.attr(name).await.unwrap();
    let text = text.unwrap_or_else(|| panic!("{css} has no {name}"));
    text.parse()
        .unwrap_or_else(|_| panic!("{css} {name}={text}"))
}

/// The loaded runs' names, sorted.
async fn run_names(client: &Client) -> Vec<String> {
    let mut names = texts(client, "tr.run-row td:nth-child(2)").await;
    names.sort();
    names
}

/// The label of a study arm (a summary, cell or curve of `study.json`): the strategy, with
/// `+method` when the method is not the default `seq` (absent).
fn arm_label(item: &Value) -> String {
    let strategy = item["strategy"].as_str().unwrap();
    match item["method"].as_str() {
        Some(method) if method != "seq" => format!("{strategy}+{method}"),
        _ => strategy.to_owned(),
    }
}

/// Every arm's bar of every metric: mean, CI ends, n and one dot per run, as in `study.json`.
async fn check_metric_bars(client: &Client, study: &Value) {
    for summary in study["summaries"].as_array().unwrap() {
        let strategy = arm_label(summary);
        for (metric, described) in summary["metrics"].as_object().unwrap() {
            let bar = format!(
                "#study-bars-{metric} g.arm[data-arm='{strategy}'][data-metric='{metric}']"
            );
            let n = described["n"].as_u64().unwrap() as usize;
            assert_eq!(
                texts(client, &format!("{bar} text.n")).await,
                [format!("n = {n}")]
            );
            if let Some(mean) = described["mean"].as_f64() {
                let shown = number_at(client, &format!("{bar} rect.mean"), "data-value").await;
                assert_eq!(shown, mean, "{strategy} {metric} mean");
            }
            if let Some(ci) = described["ci95"].as_array() {
                let error_bar = format!("{bar} g.ci");
                let low = number_at(client, &error_bar, "data-low").await;
                let high = number_at(client, &error_bar, "data-high").await;
                assert_eq!(
                    [low, high],
                    [ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap()],
                    "{strategy} {metric} 95% CI"
                );
            }
            let mut want: Vec<(String, f64)> = study["cells"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| arm_label(c) == strategy)
                .filter_map(|c| {
                    let value = c["metrics"][metric].as_f64()?;
                    Some((c["run"].as_str().unwrap().to_owned(), value))
                })
                .collect();
            let mut dots = Vec::new();
            for dot in client
                .find_all(Locator::Css(&format!("{bar} circle.run")))
                .await
                .unwrap()
            {
                let run = dot.attr("data-run").await.unwrap().unwrap();
                let value: f64 = dot
                    .attr("data-value")
                    .await
                    .unwrap()
                    .unwrap()
                    .parse()
                    .unwrap();
                dots.push((run, value));
            }
            want.sort_by(|a, b| a.0.cmp(&b.0));
            dots.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(dots.len(), n, "{strategy} {metric}: one dot per run");
            assert_eq!(dots, want, "{strategy} {metric} runs");
        }
    }
}

/// Every comparison of every metric in the paired table and the forest plots: mean
/// difference, bootstrap CI, p-value and n, as in `study.json`.
async fn check_paired(client: &Client, study: &Value) {
    let mut rows = 0;
    for comparison in study["comparisons"].as_array().unwrap() {
        let (a, b) = (
            comparison["a"].as_str().unwrap(),
            comparison["b"].as_str().unwrap(),
        );
        for (metric, paired) in comparison["metrics"].as_object().unwrap() {
            rows += 1;
            let pair = format!("[data-a='{a}'][data-b='{b}'][data-metric='{metric}']");
            let row = format!("#study-paired tr.pair{pair}");
            let difference = &paired["difference"];
            assert_eq!(
                texts(client, &format!("{row} td.n")).await,
                [difference["n"].to_string()]
            );
            if let Some(mean) = difference["mean"].as_f64() {
                let shown = number_at(client, &format!("{row} td.mean"), "data-value").await;
                assert_eq!(shown, mean, "{a} − {b} {metric}");
                let forest = format!("#study-forest-{metric} g.pair{pair} rect.mean");
                assert_eq!(number_at(client, &forest, "data-value").await, mean);
            }
            if let Some(p) = paired["p_value"].as_f64() {
                let shown = number_at(client, &format!("{row} td.p"), "data-value").await;
                assert_eq!(shown, p, "{a} − {b} {metric} p-value");
            }
            if let Some(ci) = paired["bootstrap_ci95"].as_array() {
                let want = [ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap()];
                for at in [
                    format!("{row} td.ci"),
                    format!("#study-forest-{metric} g.pair{pair} line.ci"),
                ] {
                    let shown = [
                        number_at(client, &at, "data-low").await,
                        number_at(client, &at, "data-high").await,
                    ];
                    assert_eq!(shown, want, "{at}");
                }
            }
        }
    }
    assert!(rows > 0, "the study compares strategies");
    assert_eq!(texts(client, "#study-paired tr.pair").await.len(), rows);
}

/// The curves of the last order's second task (or only task), after picking them: one line per
/// strategy, each point the seeds' mean with the band mean ± sd, as in `study.json`.
async fn check_curves(client: &Client, study: &Value) {
    let order = study["orders"].as_array().unwrap().last().unwrap();
    let order = order.as_str().unwrap();
    client
        .find(Locator::Css("#study-order"))
        .await
        .unwrap()
        .select_by_value(order)
        .await
        .unwrap();
    let curves: Vec<&Value> = study["curves"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["order"] == order)
        .collect();
    assert!(!curves.is_empty(), "curves of order {order}");
    let tasks = curves[0]["tasks"].as_array().unwrap();
    let j = 1.min(tasks.len() - 1);
    let task = tasks[j].as_str().unwrap();
    wait_for(client, &format!("#study-task option[value='{task}']")).await;
    client
        .find(Locator::Css("#study-task"))
        .await
        .unwrap()
        .select_by_value(task)
        .await
        .unwrap();
    wait_for(client, "#study-curves figcaption").await;
    let caption = texts(client, "#study-curves figcaption").await.concat();
    assert!(
        caption.contains(task) && caption.contains(order),
        "{caption}"
    );
    for curve in curves {
        let strategy = arm_label(curve);
        let series = format!("#study-curves g.series[data-name='{strategy}']");
        let points = client
            .find_all(Locator::Css(&format!("{series} circle")))
            .await
            .unwrap();
        let mean = curve["mean"].as_array().unwrap();
        let sd = curve["sd"].as_array().unwrap();
        assert_eq!(
            points.len(),
            mean.len() - j,
            "{strategy}: stages from task {j}'s"
        );
        for (point, i) in points.iter().zip(j..) {
            let attr = |name: &'static str| async move {
                let text = point.attr(name).await.unwrap().unwrap();
                text.parse::<f64>().unwrap()
            };
            let (m, s) = (mean[i][j].as_f64().unwrap(), sd[i][j].as_f64().unwrap());
            assert_eq!(attr("data-x").await, (i + 1) as f64, "{strategy} stage");
            assert_eq!(attr("data-y").await, m, "{strategy} stage {}", i + 1);
            assert_eq!(
                [attr("data-low").await, attr("data-high").await],
                [m - s, m + s],
                "{strategy} stage {} band",
                i + 1
            );
        }
    }
    assert_eq!(
        client
            .find_all(Locator::Css("#study-curves polygon.band"))
            .await
            .unwrap()
            .len(),
        texts(client, "#study-curves g.series").await.len(),
        "one band per strategy"
    );
}

#[tokio::test]
async fn example_study_shows_bars_comparisons_and_curves() {
    let (_driver, client) = open_studio().await;
    click(&client, "#load-example-study").await;
    let (_, study) = example_study();
    wait_for(&client, "#study-bars-ap g.arm").await;
    let name = study["name"].as_str().unwrap();
    let section = client.find(Locator::Css("#study")).await.unwrap();
    assert_eq!(
        section.attr("data-study").await.unwrap().as_deref(),
        Some(name)
    );
    // The runs load with the study, one per run folder (the `single` references included).
    let runs = example_study_runs();
    assert_eq!(run_names(&client).await, runs);
    assert!(
        client.find(Locator::Css("#errors")).await.is_err(),
        "no load errors"
    );
    let arms = study["summaries"].as_array().unwrap().len();
    assert_eq!(
        texts(&client, "figure.metric-bars g.arm").await.len(),
        arms * 5,
        "a bar per arm and metric"
    );
    check_metric_bars(&client, &study).await;
    check_paired(&client, &study).await;
    check_curves(&client, &study).await;
    screenshot(&client, "study.png").await;
    client.close().await.unwrap();
}

#[tokio::test]
async fn picked_study_folder_loads_the_study_and_its_runs() {
    let (_driver, client) = open_studio().await;
    let (folder, study) = example_study();
    let input = client.find(Locator::Css("#folder-input")).await.unwrap();
    input
        .send_keys(&folder.display().to_string())
        .await
        .unwrap();
    let section = wait_for(&client, "#study").await;
    assert_eq!(
        section.attr("data-study").await.unwrap().as_deref(),
        study["name"].as_str()
    );
    wait_for(&client, "tr.run-row").await;
    assert_eq!(
        run_names(&client).await,
        example_study_runs(),
        "one run per folder under runs/, and study.json is none of them"
    );
    client.close().await.unwrap();
}
