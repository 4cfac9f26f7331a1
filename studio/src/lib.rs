//! # studio — compare InsCL runs and recompute replay plans in the browser
//!
//! A leptos (client-side rendered) app served by trunk. People drop the artifacts that
//! `trainer run` writes (`run.json`, `stages/stage-NN.json`, `results.json`,
//! `embeddings.json`, see [`inscl::artifact`]) or logs of other tools ([`import`]), and get
//! tables and SVG charts of scores, task distances, replay plans and loss curves. The
//! recompute panel runs [`inscl::plan::plan_sequence`] — the code behind `trainer plan` —
//! compiled to wasm on the run's embeddings.
//!
//! Layout: [`load`] turns dropped files into [`run::Run`]s, [`state`] holds the loaded
//! runs as signals, [`components`] render them, [`export`] writes CSV/SVG downloads.
//! [`distance_workers`] spreads the recompute's transport problems over Web Workers (the
//! `distance_worker` binary), with [`distance_job`] as their messages.

pub mod app;
pub mod components;
pub mod distance_job;
pub mod distance_workers;
pub mod dropped_folders;
pub mod export;
pub mod import;
pub mod load;
pub mod run;
pub mod state;

/// Mounts the app on the page body (the wasm entry point of `main.rs`).
pub fn start() {
    leptos::mount::mount_to_body(app::App);
}
