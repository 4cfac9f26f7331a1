//! Named task orders: `orders.json` of a folder source, a source's own `file` order, and the
//! resolution of `data.order` / `data.tasks` against them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{DataError, FETCH_DATA_HINT};
use crate::config::DataConfig;

#[derive(Deserialize)]
struct OrdersFile {
    orders: BTreeMap<String, Vec<String>>,
}

/// The orders of a folder source (`benchmark`, `superni`): `orders.json`'s, and `file`, its
/// tasks in name order (task folders with a `train.json`, or task files `<task>.json`).
pub(super) fn folder_orders(
    folder: &Path,
    source_kind: &str,
) -> Result<(String, BTreeMap<String, Vec<String>>), DataError> {
    let (file, mut orders) = read_orders(&folder.join("orders.json"))?;
    let entries = std::fs::read_dir(folder).map_err(|error| DataError::Io {
        file: folder.display().to_string(),
        error,
    })?;
    let mut tasks: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter_map(|path| match source_kind {
            "benchmark" => path
                .join("train.json")
                .is_file()
                .then(|| path.file_name()?.to_str().map(str::to_owned))?,
            _ => (path.extension()? == "json" && path.file_stem()? != "orders")
                .then(|| path.file_stem()?.to_str().map(str::to_owned))?,
        })
        .collect();
    tasks.sort();
    orders.entry("file".to_owned()).or_insert(tasks);
    Ok((file, orders))
}

/// Named orders of `file`, or an empty map when it does not exist.
pub(super) fn read_orders(
    file: &Path,
) -> Result<(String, BTreeMap<String, Vec<String>>), DataError> {
    let name = file.display().to_string();
    if !file.exists() {
        return Ok((name, BTreeMap::new()));
    }
    let text = std::fs::read_to_string(file).map_err(|error| DataError::Io {
        file: name.clone(),
        error,
    })?;
    let parsed: OrdersFile = serde_json::from_str(&text).map_err(|error| DataError::Json {
        file: name.clone(),
        error,
    })?;
    Ok((name, parsed.orders))
}

/// The order name a run records for an explicit `data.tasks` list.
pub(super) const CUSTOM_ORDER: &str = "custom";

/// The task list: `config.tasks` if given, else the named order; then the first
/// `config.first` tasks. Rejects duplicates and an empty result. A selection inherited from
/// the embedded default ([`DataConfig::selection_inherited`]) that the source lacks (an order
/// it does not define, a task it does not have) falls back to its `file` order, with a notice.
// Long: each way of naming the selection (tasks, order, inherited default) with its errors.
pub(super) fn resolve_order(
    config: &DataConfig,
    path: &Path,
    (orders_file, orders): (String, BTreeMap<String, Vec<String>>),
    source_kind: &'static str,
    notices: &mut Vec<String>,
) -> Result<(String, Vec<String>), DataError> {
    let missing_default_task = config
        .tasks
        .iter()
        .find(|task| orders.get("file").is_some_and(|all| !all.contains(task)));
    let file_order;
    let config = match missing_default_task {
        Some(task) if config.selection_inherited => {
            notices.push(format!(
                "data.tasks = {:?} comes from the embedded default and {} has no task {task:?}; \
                 the tasks run in file order (set data.order or data.tasks to choose)",
                config.tasks,
                path.display()
            ));
            file_order = DataConfig {
                tasks: Vec::new(),
                order: Some("file".to_owned()),
                ..config.clone()
            };
            &file_order
        }
        _ => config,
    };
    let (name, mut tasks, list) = if !config.tasks.is_empty() {
        (
            CUSTOM_ORDER.to_owned(),
            config.tasks.clone(),
            "data.tasks".to_owned(),
        )
    } else {
        let mut order = config.order.as_deref().ok_or_else(|| DataError::NoOrder {
            source_kind,
            path: path.display().to_string(),
        })?;
        if config.selection_inherited && !orders.contains_key(order) && orders.contains_key("file")
        {
            let defined: Vec<&str> = orders
                .keys()
                .map(String::as_str)
                .filter(|o| *o != "file")
                .collect();
            notices.push(format!(
                "data.order = {order:?} comes from the embedded default and {} defines no such order ({}); \
                 the tasks run in file order (set data.order or data.tasks to choose)",
                path.display(),
                if defined.is_empty() {
                    "it defines none".to_owned()
                } else {
                    format!("it defines {}", defined.join(", "))
                }
            ));
            order = "file";
        }
        let tasks = orders.get(order).ok_or_else(|| DataError::UnknownOrder {
            order: order.to_owned(),
            file: orders_file.clone(),
            known: if orders.is_empty() {
                format!("none ({orders_file} is missing; run {FETCH_DATA_HINT})")
            } else {
                orders.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        })?;
        let list = format!("order \"{order}\" of {orders_file}");
        (order.to_owned(), tasks.clone(), list)
    };
    if let Some(first) = config.first {
        tasks.truncate(first);
    }
    if tasks.is_empty() {
        return Err(DataError::NoTasks);
    }
    for (i, task) in tasks.iter().enumerate() {
        if tasks[..i].contains(task) {
            return Err(DataError::DuplicateTask {
                task: task.clone(),
                list,
            });
        }
    }
    Ok((name, tasks))
}

/// As [`resolve_order`], with the order `file` (the source's own task order) when neither
/// `data.order` nor `data.tasks` is given.
pub(super) fn resolve_order_or_file(
    config: &DataConfig,
    path: &Path,
    orders: (String, BTreeMap<String, Vec<String>>),
    source_kind: &'static str,
    notices: &mut Vec<String>,
) -> Result<(String, Vec<String>), DataError> {
    let defaulted = DataConfig {
        order: config.order.clone().or_else(|| Some("file".to_owned())),
        ..config.clone()
    };
    resolve_order(&defaulted, path, orders, source_kind, notices)
}
