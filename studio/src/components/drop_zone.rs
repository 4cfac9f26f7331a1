//! Where files come in: drag-and-drop, file and folder pickers, and the examples (a run and a
//! study).

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::load::{LoadError, Loaded};
use crate::state::AppState;
use crate::{dropped_folders, load};

/// Folders under the site root holding the example run and the example study. Each lists
/// its files (paths relative to the folder) in its `files.json`, so that swapping an example
/// is copying a folder.
const EXAMPLE_RUN: &str = "example-run";
const EXAMPLE_STUDY: &str = "example-study";

/// A file's path as the studio groups it: the path inside a picked folder, else its name.
fn file_path(file: &web_sys::File) -> String {
    // `webkitRelativePath` (set by folder pickers) is not in web-sys's `File` bindings.
    let relative = js_sys::Reflect::get(file, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default();
    if relative.is_empty() {
        file.name()
    } else {
        relative
    }
}

/// The files of a `FileList` (from a picker or a plain drop) with their paths.
fn files_of(list: Option<web_sys::FileList>) -> Vec<(String, web_sys::File)> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length())
        .filter_map(|i| list.get(i))
        .map(|f| (file_path(&f), f))
        .collect()
}

/// Reads, parses and groups `files` (`(path, file)`), then adds the runs and errors to the
/// state.
async fn load_files(state: AppState, files: Vec<(String, web_sys::File)>) {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for (path, file) in files {
        if let Err(e) = load::check_size(&path, file.size() as u64) {
            errors.push(e);
            continue;
        }
        let text = match gloo_file::futures::read_as_text(&gloo_file::File::from(file)).await {
            Ok(text) => text,
            Err(e) => {
                errors.push(LoadError {
                    message: format!("{path}: could not be read: {e}"),
                    file: path,
                });
                continue;
            }
        };
        match load::parse(&path, &text) {
            Ok(p) => parsed.push((path, p)),
            Err(e) => errors.push(e),
        }
    }
    state.add(load::group(parsed), errors);
}

/// Loads a drop: folders are walked (their files keep their paths), plain files as picked.
async fn load_drop(
    state: AppState,
    entries: Vec<web_sys::FileSystemEntry>,
    fallback: Vec<(String, web_sys::File)>,
) {
    if entries.is_empty() {
        return load_files(state, fallback).await;
    }
    match dropped_folders::files(entries).await {
        Ok(files) => load_files(state, files).await,
        Err(message) => state.add(
            Loaded::default(),
            vec![LoadError {
                file: "dropped folder".to_owned(),
                message,
            }],
        ),
    }
}

/// Fetches the example in folder `dir` (the files listed in its `files.json`) and loads it
/// like dropped files.
async fn load_example(state: AppState, dir: &'static str) {
    let list_path = format!("{dir}/files.json");
    let fail = |message: String| {
        state.add(
            Loaded::default(),
            vec![LoadError {
                file: list_path.clone(),
                message,
            }],
        );
    };
    let list: Vec<String> = match fetch_text(&list_path).await {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(list) => list,
            Err(e) => return fail(format!("{list_path}: not a list of file names: {e}")),
        },
        Err(message) => return fail(message),
    };
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for name in list {
        let path = format!("{dir}/{name}");
        match fetch_text(&path).await {
            Ok(text) => match load::parse(&path, &text) {
                Ok(p) => parsed.push((path, p)),
                Err(e) => errors.push(e),
            },
            Err(message) => errors.push(LoadError {
                file: path,
                message,
            }),
        }
    }
    state.add(load::group(parsed), errors);
}

/// GETs `url` (relative to the page) as text.
async fn fetch_text(url: &str) -> Result<String, String> {
    let response = gloo_net::http::Request::get(url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    response.text().await.map_err(|e| format!("{url}: {e}"))
}

/// The drop target with the pickers and the "Load example run" / "Load example study"
/// buttons.
#[component]
pub fn DropZone() -> impl IntoView {
    let state = AppState::from_context();
    let dragging = RwSignal::new(false);
    // `webkitdirectory` (pick a folder) is not among leptos' typed input attributes.
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });
    let on_pick = move |ev: leptos::ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&ev);
        let files = files_of(input.files());
        input.set_value("");
        spawn_local(load_files(state, files));
    };
    view! {
        <section class="drop-zone" class:dragging=move || dragging.get()
            on:dragover=move |ev| {
                ev.prevent_default();
                dragging.set(true);
            }
            on:dragleave=move |_| dragging.set(false)
            on:drop=move |ev| {
                ev.prevent_default();
                dragging.set(false);
                let Some(transfer) = ev.data_transfer() else { return };
                let entries = dropped_folders::entries(&transfer);
                let files = files_of(transfer.files());
                spawn_local(load_drop(state, entries, files));
            }>
            <p>
                "Drop run artifacts here — " <code>"run.json"</code> ", " <code>"stages/*.json"</code>
                ", " <code>"results.json"</code> ", " <code>"embeddings.json"</code>
                ", a study folder (" <code>"study.json"</code>
                " and its " <code>"runs/"</code> ") — or InsCL " <code>"output_state.jsonl"</code> " / HF " <code>"trainer_state.json"</code>
                ". Several runs at once; add more any time."
            </p>
            <label class="button">"Choose files"
                <input type="file" id="file-input" multiple on:change=on_pick />
            </label>
            <label class="button">"Choose run folders"
                <input type="file" id="folder-input" multiple node_ref=folder_input on:change=on_pick />
            </label>
            <button id="load-example" on:click=move |_| spawn_local(load_example(state, EXAMPLE_RUN))>
                "Load example run"
            </button>
            <button id="load-example-study"
                on:click=move |_| spawn_local(load_example(state, EXAMPLE_STUDY))>
                "Load example study"
            </button>
        </section>
    }
}
