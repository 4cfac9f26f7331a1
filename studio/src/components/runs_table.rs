//! The runs table: settings and summary metrics of every loaded run, selection for
//! comparison, focus for the per-run views, and the configuration fields that differ.

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::*;
use serde_json::Value;

use super::{ExportCsv, fmt};
use crate::run::Run;
use crate::state::AppState;

/// The fixed columns of the table.
const HEADER: [&str; 12] = [
    "run",
    "strategy",
    "method",
    "model",
    "order",
    "α",
    "seed",
    "AP",
    "F.Ra",
    "BWT",
    "FWT",
    "Relative Gain",
];

/// A JSON configuration flattened to `dotted.key → value` (arrays indexed as `key.0`).
pub fn flatten_config(value: &Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
        let key = |k: &str| {
            if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match value {
            Value::Object(map) => map.iter().for_each(|(k, v)| walk(&key(k), v, out)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(&key(&i.to_string()), v, out)),
            Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

/// The keys of `configs` whose values are not the same in all of them (a key missing from
/// some configuration counts as differing).
pub fn differing_keys(configs: &[BTreeMap<String, String>]) -> Vec<String> {
    let mut keys: Vec<&String> = configs.iter().flat_map(|c| c.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| {
            let first = configs.first().and_then(|c| c.get(*k));
            configs.iter().any(|c| c.get(*k) != first)
        })
        .cloned()
        .collect()
}

/// The fixed cells of a run's row, in [`HEADER`] order.
pub fn row_cells(run: &Run) -> Vec<String> {
    let m = run.manifest.as_ref();
    let s = run.results.as_ref().map(|r| r.summary);
    let text = |v: Option<String>| v.unwrap_or_else(|| "–".to_owned());
    vec![
        run.name.clone(),
        text(m.map(|m| m.replay.strategy.clone())),
        text(m.map(|m| m.method().to_owned())),
        text(m.map(|m| m.model.clone())),
        text(m.map(|m| m.order.clone())),
        text(m.map(|m| m.replay.alpha.to_string())),
        text(m.map(|m| m.replay.seed.to_string())),
        fmt(s.map(|s| s.ap), 2),
        fmt(s.map(|s| s.forgetting), 2),
        fmt(s.map(|s| s.bwt), 2),
        fmt(s.and_then(|s| s.fwt), 2),
        fmt(s.and_then(|s| s.relative_gain), 2),
    ]
}

/// The configuration columns to show: all keys, or only those differing among `runs`.
fn config_columns(
    runs: &[Arc<Run>],
    only_differing: bool,
) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let configs: Vec<_> = runs
        .iter()
        .map(|r| {
            r.manifest
                .as_ref()
                .map(|m| flatten_config(&m.config))
                .unwrap_or_default()
        })
        .collect();
    let keys = if only_differing {
        differing_keys(&configs)
    } else {
        let mut keys: Vec<String> = configs.iter().flat_map(|c| c.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        keys
    };
    (keys, configs)
}

/// The table of loaded runs.
#[component]
pub fn RunsTable() -> impl IntoView {
    let state = AppState::from_context();
    let only_differing = RwSignal::new(true);
    let table = move || {
        let runs = state.runs.get();
        let (keys, configs) = config_columns(&runs, only_differing.get());
        let selected = state.selected.get();
        let focus = state.focus.get();
        let rows = runs
            .iter()
            .zip(&configs)
            .map(|(run, config)| {
                let id = run.id;
                let cells = row_cells(run).into_iter().map(|c| view! { <td>{c}</td> }).collect_view();
                let extra = keys
                    .iter()
                    .map(|k| view! { <td>{config.get(k).cloned().unwrap_or_default()}</td> })
                    .collect_view();
                view! {
                    <tr class="run-row" data-run=run.name.clone()>
                        <td>
                            <input type="checkbox" title="compare" prop:checked=selected.contains(&id)
                                on:change=move |_| state.selected.update(|s| {
                                    if let Some(p) = s.iter().position(|&x| x == id) {
                                        s.remove(p);
                                    } else {
                                        s.push(id);
                                    }
                                }) />
                            <input type="radio" name="focus" title="show in the per-run views"
                                prop:checked=focus == Some(id)
                                on:change=move |_| state.focus.set(Some(id)) />
                        </td>
                        {cells}
                        {extra}
                    </tr>
                }
            })
            .collect_view();
        let extra_head = keys
            .iter()
            .map(|k| view! { <th class="config">{k.clone()}</th> })
            .collect_view();
        view! {
            <table id="runs-table">
                <thead><tr>
                    <th>"compare / focus"</th>
                    {HEADER.iter().map(|h| view! { <th>{*h}</th> }).collect_view()}
                    {extra_head}
                </tr></thead>
                <tbody>{rows}</tbody>
            </table>
        }
    };
    let csv = Callback::new(move |()| {
        let runs = state.runs.get_untracked();
        let (keys, configs) = config_columns(&runs, only_differing.get_untracked());
        let mut header: Vec<&str> = HEADER.to_vec();
        header.extend(keys.iter().map(String::as_str));
        let rows: Vec<Vec<String>> = runs
            .iter()
            .zip(&configs)
            .map(|(run, config)| {
                let mut row = row_cells(run);
                row.extend(
                    keys.iter()
                        .map(|k| config.get(k).cloned().unwrap_or_default()),
                );
                row
            })
            .collect();
        crate::export::csv(&header, &rows)
    });
    view! {
        <section class="runs">
            <h2>"Runs"</h2>
            <label>
                <input type="checkbox" prop:checked=move || only_differing.get()
                    on:change=move |_| only_differing.update(|v| *v = !*v) />
                " only configuration fields that differ"
            </label>
            " " <ExportCsv filename="runs.csv".to_owned() make=csv />
            {table}
        </section>
    }
}
