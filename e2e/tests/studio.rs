//! The studio in headless Chromium against the release build (`dist/`): drop a run's
//! artifacts, read the heatmap, recompute with another α and compare with `trainer plan`,
//! drop broken files, load the example run, take a screenshot.
//!
//! Needs `trunk build --release` and chromedriver; `scripts/test-studio` does both and runs
//! `cargo test -p e2e --test studio -- --test-threads=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::{browser, chromedriver, dist_dir, output_dir, plan_args, serve, trainer_plan};
use fantoccini::{Client, Locator};
use serde_json::Value;

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

async fn open_studio(client: &Client, url: &str) {
    client.goto(url).await.unwrap();
    wait_for(client, "#file-input").await;
}

#[tokio::test]
async fn dropped_run_heatmap_recompute_errors_and_screenshot() {
    let url = serve(dist_dir());
    let driver = chromedriver();
    let client = browser(&driver).await;
    open_studio(&client, &url).await;

    // Drop the whole run.
    let (_, manifest) = artifact("run");
    drop_files(&client, &example_files()).await;
    wait_for(&client, "tr.run-row").await;
    let name = manifest["name"].as_str().unwrap();
    assert_eq!(texts(&client, "tr.run-row td:nth-child(2)").await, [name]);

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
    client
        .find(Locator::Css("#rc-run"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, "#rc-time").await;
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
    assert_eq!(
        texts(&client, "tr.run-row td:nth-child(2)").await,
        [name],
        "the run stays"
    );
    assert!(
        client
            .find(Locator::Css("#score-heatmap g.cell"))
            .await
            .is_ok()
    );
    assert_eq!(
        client
            .find_all(Locator::Css("td.new-quota"))
            .await
            .unwrap()
            .len(),
        want.len(),
        "the recomputed plan stays on screen"
    );

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
    let shot = output_dir().join("studio.png");
    std::fs::write(&shot, png).unwrap();
    println!("screenshot: {}", shot.display());
    client.close().await.unwrap();
}

#[tokio::test]
async fn example_run_loads_from_the_site() {
    let url = serve(dist_dir());
    let driver = chromedriver();
    let client = browser(&driver).await;
    open_studio(&client, &url).await;
    client
        .find(Locator::Css("#load-example"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
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
    let url = serve(dist_dir());
    let driver = chromedriver();
    let client = browser(&driver).await;
    open_studio(&client, &url).await;
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
