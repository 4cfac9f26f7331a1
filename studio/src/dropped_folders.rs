//! Folders dropped on the page: the browser hands them over as file-system entries
//! (`DataTransferItem.webkitGetAsEntry`), which are walked here into `(path, file)` pairs so
//! that a dropped run folder groups like a picked one.

use js_sys::{Array, Function, Promise};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{DataTransfer, FileSystemDirectoryEntry, FileSystemEntry, FileSystemFileEntry};

/// The entries of a drop. Must be called inside the drop event: the browser empties the
/// `DataTransfer` once the handler returns.
pub fn entries(transfer: &DataTransfer) -> Vec<FileSystemEntry> {
    let items = transfer.items();
    (0..items.length())
        .filter_map(|i| items.get(i))
        .filter(|item| item.kind() == "file")
        .filter_map(|item| item.webkit_get_as_entry().ok().flatten())
        .collect()
}

/// Awaits a callback-style browser API: `call(success, error)`.
async fn callback(call: impl FnOnce(&Function, &Function)) -> Result<JsValue, JsValue> {
    let mut call = Some(call);
    let promise = Promise::new(&mut |resolve, reject| {
        if let Some(call) = call.take() {
            call(&resolve, &reject);
        }
    });
    JsFuture::from(promise).await
}

/// Every file under `entries` (folders walked recursively) with its path inside the drop,
/// e.g. `run-a/stages/stage-01.json`.
///
/// # Errors
/// The browser's message when a folder or file cannot be read.
pub async fn files(entries: Vec<FileSystemEntry>) -> Result<Vec<(String, web_sys::File)>, String> {
    let describe = |e: JsValue| format!("{e:?}");
    let mut stack = entries;
    let mut out = Vec::new();
    while let Some(entry) = stack.pop() {
        let path = entry.full_path().trim_start_matches('/').to_owned();
        if entry.is_directory() {
            let reader = entry
                .unchecked_into::<FileSystemDirectoryEntry>()
                .create_reader();
            // readEntries returns the folder in batches; an empty batch ends it.
            loop {
                let batch = callback(|ok, err| {
                    let _ = reader.read_entries_with_callback_and_callback(ok, err);
                })
                .await
                .map_err(|e| format!("{path}: {}", describe(e)))?;
                let batch: Array = batch.unchecked_into();
                if batch.length() == 0 {
                    break;
                }
                stack.extend(
                    batch
                        .iter()
                        .map(wasm_bindgen::JsCast::unchecked_into::<FileSystemEntry>),
                );
            }
        } else if entry.is_file() {
            let entry: FileSystemFileEntry = entry.unchecked_into();
            let file = callback(|ok, err| entry.file_with_callback_and_callback(ok, err))
                .await
                .map_err(|e| format!("{path}: {}", describe(e)))?;
            out.push((path, file.unchecked_into()));
        }
    }
    Ok(out)
}
