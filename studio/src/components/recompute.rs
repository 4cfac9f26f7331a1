//! The recompute panel: the focused run's replay plan recomputed in the browser with other
//! settings by [`inscl::plan::plan_sequence`] (the code of `trainer plan`), beside the
//! recorded plan with the differences marked, and the time it took.

use std::rc::Rc;
use std::sync::Arc;

use inscl::artifact::{EmbeddingsFile, TaskEmbeddings};
use inscl::insinfo::TagNormalizer;
use inscl::ot::{CostKind, CostPrecision};
use inscl::plan::{
    PlanConfig, SequencePlan, StagePlan, instruction_clouds, plan_sequence_with_distances,
};
use inscl::replay::Strategy;
use inscl::similarity::{
    InstructionCloud, SimilarityConfig, Solver, WeightScheme, distance_matrix,
};
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::plan_view::quota_bars;
use super::stacked_bars::StackedBars;
use super::{ExportCsv, fmt};
use crate::distance_workers::{DistanceWorkers, Failure};
use crate::run::Run;
use crate::state::AppState;

/// Quotas of one (stage, previous task) in the recorded and the recomputed plan.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaRow {
    /// 1-based stage.
    pub stage: usize,
    /// Previous task.
    pub task: String,
    /// Recorded distance and quota, if the run has that stage record.
    pub recorded: Option<(f64, usize)>,
    /// Recomputed distance and quota.
    pub recomputed: (f64, usize),
    /// Instructions whose replayed instances differ (all of them when not recorded).
    pub changed_instructions: usize,
}

impl QuotaRow {
    /// Whether the quota differs from the recorded one (or nothing was recorded).
    pub fn quota_changed(&self) -> bool {
        self.recorded.map(|r| r.1) != Some(self.recomputed.1)
    }
}

/// Pairs every (stage, previous task) of `new` with the recorded plan's.
pub fn compare(recorded: &[&StagePlan], new: &SequencePlan) -> Vec<QuotaRow> {
    new.stages
        .iter()
        .flat_map(|stage| {
            let old = recorded.iter().find(|p| p.stage == stage.stage);
            stage.previous.iter().enumerate().map(move |(j, r)| {
                let before = old
                    .and_then(|p| p.previous.get(j))
                    .filter(|b| b.task == r.task);
                let changed_instructions = match before {
                    Some(b) => r
                        .instructions
                        .iter()
                        .filter(|q| {
                            !b.instructions
                                .iter()
                                .any(|o| o.id == q.id && o.instances == q.instances)
                        })
                        .count(),
                    None => r.instructions.len(),
                };
                QuotaRow {
                    stage: stage.stage,
                    task: r.task.clone(),
                    recorded: before.map(|b| (b.distance, b.quota)),
                    recomputed: (r.distance, r.quota),
                    changed_instructions,
                }
            })
        })
        .collect()
}

/// The settings of the panel, initialised from the run's manifest.
#[derive(Debug, Clone, Copy)]
struct Controls {
    alpha: RwSignal<String>,
    weights: RwSignal<String>,
    cost: RwSignal<String>,
    solver: RwSignal<String>,
    precision: RwSignal<String>,
    epsilon: RwSignal<String>,
    strategy: RwSignal<String>,
    seed: RwSignal<String>,
}

impl Controls {
    fn new(run: &Run) -> Self {
        let config = run
            .manifest
            .as_ref()
            .map(|m| PlanConfig {
                alpha: m.replay.alpha,
                strategy: m.replay.replay_strategy().unwrap_or(Strategy::InsCL),
                seed: m.replay.seed,
                similarity: m.replay.similarity,
                tags: m.replay.tags,
            })
            .unwrap_or_default();
        let (solver, epsilon) = match config.similarity.solver {
            Solver::Exact => ("exact", 0.05),
            Solver::Sinkhorn { epsilon } => ("sinkhorn", epsilon),
        };
        Controls {
            alpha: RwSignal::new(config.alpha.to_string()),
            weights: RwSignal::new(config.similarity.weights.to_string()),
            cost: RwSignal::new(config.similarity.cost.to_string()),
            solver: RwSignal::new(solver.to_owned()),
            // Float32 products, whatever the run used: cost matrices in half the time, and the
            // float64 distances (to rounding) whenever both find the same transport plans
            // (CostPrecision::Float32, tools/bench/RESULTS.md).
            precision: RwSignal::new(CostPrecision::Float32.to_string()),
            epsilon: RwSignal::new(epsilon.to_string()),
            strategy: RwSignal::new(config.strategy.to_string()),
            seed: RwSignal::new(config.seed.to_string()),
        }
    }

    /// The plan configuration, or a message naming the bad field.
    fn config(&self, tags: TagNormalizer) -> Result<PlanConfig, String> {
        let alpha = self.alpha.get_untracked();
        let alpha = alpha
            .trim()
            .parse()
            .map_err(|_| format!("α must be a whole number ≥ 0, got \"{alpha}\""))?;
        let seed = self.seed.get_untracked();
        let seed = seed
            .trim()
            .parse()
            .map_err(|_| format!("seed must be a whole number ≥ 0, got \"{seed}\""))?;
        let solver = if self.solver.get_untracked() == "sinkhorn" {
            let eps = self.epsilon.get_untracked();
            match eps.trim().parse::<f64>() {
                Ok(epsilon) if epsilon.is_finite() && epsilon > 0.0 => Solver::Sinkhorn { epsilon },
                _ => return Err(format!("ε must be a positive number, got \"{eps}\"")),
            }
        } else {
            Solver::Exact
        };
        Ok(PlanConfig {
            alpha,
            strategy: self
                .strategy
                .get_untracked()
                .parse()
                .map_err(|e: inscl::replay::UnknownStrategy| e.to_string())?,
            seed,
            similarity: SimilarityConfig {
                cost: self
                    .cost
                    .get_untracked()
                    .parse::<CostKind>()
                    .map_err(|e| e.to_string())?,
                weights: self
                    .weights
                    .get_untracked()
                    .parse::<WeightScheme>()
                    .map_err(|e| e.to_string())?,
                solver,
                precision: self
                    .precision
                    .get_untracked()
                    .parse::<CostPrecision>()
                    .map_err(|e| e.to_string())?,
            },
            tags,
        })
    }
}

/// Milliseconds since page load (`performance.now()`), 0 where there is no `window`.
fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Task distances solved for one similarity setting, kept so that changing only α, strategy
/// or seed replans without solving the transport problems again.
type DistanceCache = StoredValue<Option<(SimilarityConfig, Vec<Vec<f64>>)>>;

/// The run's distance workers, or why there are none (the page then solves the problems).
type Workers = StoredValue<Result<Rc<DistanceWorkers>, String>, LocalStorage>;

/// The run's tasks validated once, when the panel opens, rather than on every recompute.
struct ValidatedTasks {
    /// The instruction clouds (valid under any cost), or the first problem, by task and
    /// instruction.
    clouds: Result<Vec<InstructionCloud>, String>,
    /// The first problem under the cosine cost, which also rejects zero embeddings.
    cosine: Result<(), String>,
}

impl ValidatedTasks {
    fn new(tasks: &[TaskEmbeddings]) -> Self {
        let validate = |cost| instruction_clouds(tasks, cost).map_err(|e| e.to_string());
        // Clouds valid under the cosine cost are valid under every cost; only when they are
        // not is the pass without the zero-norm check needed (a zero embedding may come
        // before another problem).
        match validate(CostKind::Cosine) {
            Ok(clouds) => Self {
                clouds: Ok(clouds),
                cosine: Ok(()),
            },
            Err(error) => Self {
                clouds: validate(CostKind::SqEuclidean),
                cosine: Err(error),
            },
        }
    }

    /// The clouds for `cost`, or the error `trainer plan` reports for these tasks.
    fn clouds(&self, cost: CostKind) -> Result<&[InstructionCloud], String> {
        if cost == CostKind::Cosine {
            self.cosine.clone()?;
        }
        self.clouds.as_deref().map_err(Clone::clone)
    }
}

/// The distance workers as the panel shows them.
#[derive(Debug, Clone, PartialEq)]
enum WorkerState {
    /// Loading their code and the tasks.
    Starting,
    /// This many, holding the tasks.
    Ready(usize),
    /// None (why): the page solves the transport problems itself.
    Unavailable(String),
}

impl WorkerState {
    /// `data-state` of `#rc-workers`.
    fn name(&self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready(_) => "ready",
            WorkerState::Unavailable(_) => "unavailable",
        }
    }

    fn text(&self) -> String {
        match self {
            WorkerState::Starting => "starting the distance workers".to_owned(),
            WorkerState::Ready(n) => format!("{n} distance workers ready"),
            WorkerState::Unavailable(reason) => {
                format!("no distance workers ({reason}): the page solves the transport problems")
            }
        }
    }
}

/// Where the task distances of a recompute came from.
#[derive(Debug, Clone, PartialEq)]
enum Solved {
    /// The cache: the similarity setting did not change.
    Reused,
    /// This many Web Workers.
    Workers(usize),
    /// The page's own thread, and why not the workers.
    Page(String),
}

/// A recomputed plan, how long it took (ms) and where its distances came from.
type Recomputed = (SequencePlan, f64, Solved);

/// Recomputes the plan and times it, reusing `cache` when the similarity setting is unchanged
/// and otherwise solving the transport problems on `workers` (on the page if they failed).
async fn recompute(
    embeddings: Arc<EmbeddingsFile>,
    validated: Arc<ValidatedTasks>,
    config: PlanConfig,
    cache: DistanceCache,
    workers: Workers,
    worker_state: RwSignal<WorkerState>,
) -> Result<Recomputed, String> {
    let start = now_ms();
    let cached = cache.with_value(|c| {
        c.as_ref()
            .filter(|(similarity, _)| *similarity == config.similarity)
            .map(|(_, distances)| distances.clone())
    });
    let (distances, solved) = match cached {
        Some(distances) => (distances, Solved::Reused),
        None => {
            // Validated on the page, so that bad input is named by task and instruction.
            let clouds = validated.clouds(config.similarity.cost)?;
            let on_workers = match workers.get_value() {
                Ok(pool) => match pool.distance_matrix(&config.similarity).await {
                    Ok(distances) => Ok((distances, Solved::Workers(pool.len()))),
                    // Solved again on the page, pair by pair in order, which reports the
                    // first failing pair's error, as `trainer plan` does.
                    Err(Failure::Job(error)) => Err(format!("a distance worker failed: {error}")),
                    // The panel closed: nobody waits for the page to solve them.
                    Err(Failure::Worker(_)) if workers.is_disposed() => {
                        return Err("the panel was closed".to_owned());
                    }
                    Err(Failure::Worker(reason)) => {
                        workers.set_value(Err(reason.clone()));
                        worker_state.set(WorkerState::Unavailable(reason.clone()));
                        Err(reason)
                    }
                },
                Err(reason) => Err(reason),
            };
            let (distances, solved) = match on_workers {
                Ok(solved) => solved,
                Err(reason) => (
                    distance_matrix(clouds, &config.similarity).map_err(|e| e.to_string())?,
                    Solved::Page(reason),
                ),
            };
            cache.set_value(Some((config.similarity, distances.clone())));
            (distances, solved)
        }
    };
    let plan = plan_sequence_with_distances(&embeddings.tasks, distances, &config)
        .map_err(|e| e.to_string())?;
    Ok((plan, now_ms() - start, solved))
}

/// A `<select>` bound to `value` with the given options.
#[component]
fn Choice(
    id: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    options: &'static [&'static str],
) -> impl IntoView {
    view! {
        <label>{label} " "
            <select id=id on:change=move |ev| value.set(event_target_value(&ev))>
                {options.iter().map(|o| view! { <option value=*o selected=move || value.get() == *o>{*o}</option> }).collect_view()}
            </select>
        </label>
    }
}

/// The panel for one run with embeddings.
#[component]
fn RecomputeRun(run: Arc<Run>, embeddings: Arc<EmbeddingsFile>) -> impl IntoView {
    let controls = Controls::new(&run);
    let tags = run
        .manifest
        .as_ref()
        .map(|m| m.replay.tags)
        .unwrap_or_default();
    let outcome = RwSignal::new(None::<Result<Recomputed, String>>);
    let cache: DistanceCache = StoredValue::new(None);
    let validated = Arc::new(ValidatedTasks::new(&embeddings.tasks));
    // Started with the panel, so that they are ready by the first click.
    let opening = controls
        .config(tags)
        .map(|config| config.similarity)
        .unwrap_or_default();
    let workers: Workers = StoredValue::new_local(
        validated
            .clouds
            .as_deref()
            .map_err(Clone::clone)
            .and_then(|clouds| DistanceWorkers::spawn(clouds, &opening))
            .map(Rc::new),
    );
    let worker_state = RwSignal::new(WorkerState::Starting);
    match workers.get_value() {
        Ok(pool) => {
            let (started, count) = (pool.started(), pool.len());
            spawn_local(async move {
                match started.await {
                    Ok(()) => worker_state.set(WorkerState::Ready(count)),
                    Err(reason) => {
                        // Drops the pool: its workers, loaded or not, are terminated.
                        workers.set_value(Err(reason.clone()));
                        worker_state.set(WorkerState::Unavailable(reason));
                    }
                }
            });
        }
        Err(reason) => worker_state.set(WorkerState::Unavailable(reason)),
    }
    // A recompute in flight holds the pool: stop its workers with the panel.
    on_cleanup(move || {
        workers.try_with_value(|w| {
            if let Ok(pool) = w {
                pool.stop();
            }
        });
    });
    // Counts recomputations so that a reader (and the benchmark) can tell results apart.
    let count = RwSignal::new(0_usize);
    // One recompute at a time: each worker answers one message at a time.
    let busy = RwSignal::new(false);
    let run_it = move |_| {
        let config = controls.config(tags);
        let (embeddings, validated) = (embeddings.clone(), validated.clone());
        busy.set(true);
        spawn_local(async move {
            let result = match config {
                Ok(config) => {
                    recompute(embeddings, validated, config, cache, workers, worker_state).await
                }
                Err(message) => Err(message),
            };
            count.update(|c| *c += 1);
            outcome.set(Some(result));
            busy.set(false);
        });
    };
    let text_input = |id: &'static str, label: &'static str, value: RwSignal<String>| {
        view! {
            <label>{label} " "
                <input id=id size="6" prop:value=move || value.get()
                    on:input=move |ev| value.set(event_target_value(&ev)) />
            </label>
        }
    };
    let result_view = move || {
        let outcome = outcome.get()?;
        let (plan, ms, solved) = match outcome {
            Ok(ok) => ok,
            Err(message) => {
                return Some(view! { <p class="error" id="rc-error">{message}</p> }.into_any());
            }
        };
        let rows = compare(&run.recorded_plan(), &plan);
        let changed = rows.iter().filter(|r| r.quota_changed()).count();
        let table = rows
            .iter()
            .map(|r| {
                view! {
                    <tr class:changed=r.quota_changed()>
                        <td>{r.stage}</td>
                        <td>{r.task.clone()}</td>
                        <td>{fmt(r.recorded.map(|x| x.0), 4)}</td>
                        <td>{fmt(Some(r.recomputed.0), 4)}</td>
                        <td>{r.recorded.map_or_else(|| "–".to_owned(), |x| x.1.to_string())}</td>
                        <td class="new-quota" data-stage=r.stage data-task=r.task.clone()>{r.recomputed.1}</td>
                        <td>{r.changed_instructions}</td>
                    </tr>
                }
            })
            .collect_view();
        let csv_rows = rows.clone();
        let csv = Callback::new(move |()| {
            let rows: Vec<Vec<String>> = csv_rows
                .iter()
                .map(|r| {
                    vec![
                        r.stage.to_string(),
                        r.task.clone(),
                        r.recorded.map(|x| x.0.to_string()).unwrap_or_default(),
                        r.recomputed.0.to_string(),
                        r.recorded.map(|x| x.1.to_string()).unwrap_or_default(),
                        r.recomputed.1.to_string(),
                        r.changed_instructions.to_string(),
                    ]
                })
                .collect();
            crate::export::csv(
                &[
                    "stage",
                    "previous task",
                    "recorded W",
                    "recomputed W",
                    "recorded quota",
                    "recomputed quota",
                    "changed instructions",
                ],
                &rows,
            )
        });
        Some(view! {
            <div>
                <p id="rc-time" data-ms=ms.to_string() data-run=count.get_untracked()
                    data-distances=if solved == Solved::Reused { "reused" } else { "solved" }
                    data-workers=match solved { Solved::Workers(n) => n, _ => 0 }>
                    {format!(
                        "recomputed {} stages in {ms:.1} ms ({}); {changed} quotas differ from the recorded plan",
                        plan.stages.len(),
                        match &solved {
                            Solved::Reused => "task distances reused".to_owned(),
                            Solved::Workers(n) => format!("task distances solved on {n} Web Workers"),
                            Solved::Page(reason) => format!("task distances solved on the page: {reason}"),
                        },
                    )}
                </p>
                <div class="row">
                    <StackedBars id="recorded-bars".to_owned() title="recorded".to_owned()
                        bars=quota_bars(run.recorded_plan()) />
                    <StackedBars id="recomputed-bars".to_owned() title="recomputed".to_owned()
                        bars=quota_bars(&plan.stages) />
                </div>
                <ExportCsv filename=format!("{}-recomputed.csv", run.name) make=csv />
                <table id="rc-table">
                    <thead><tr><th>"stage"</th><th>"previous task"</th><th>"recorded W"</th><th>"recomputed W"</th>
                        <th>"recorded quota"</th><th>"recomputed quota"</th><th>"instructions changed"</th></tr></thead>
                    <tbody>{table}</tbody>
                </table>
            </div>
        }.into_any())
    };
    view! {
        <div class="controls">
            {text_input("rc-alpha", "α", controls.alpha)}
            <Choice id="rc-weights" label="weights" value=controls.weights options=&["real", "uniform"] />
            <Choice id="rc-cost" label="cost" value=controls.cost options=&["cosine", "sqeuclidean", "euclidean"] />
            <Choice id="rc-solver" label="solver" value=controls.solver options=&["exact", "sinkhorn"] />
            <Choice id="rc-precision" label="cost precision" value=controls.precision options=&["float32", "float64"] />
            {text_input("rc-epsilon", "Sinkhorn ε", controls.epsilon)}
            <Choice id="rc-strategy" label="strategy" value=controls.strategy options=&["inscl", "dynamic", "insinfo", "random", "none"] />
            {text_input("rc-seed", "seed", controls.seed)}
            <button id="rc-run" on:click=run_it disabled=move || busy.get()>"Recompute"</button>
            <span id="rc-workers" data-state=move || worker_state.with(WorkerState::name)>
                {move || worker_state.with(WorkerState::text)}
            </span>
        </div>
        {result_view}
    }
}

/// A run compared by identity: a merge replaces the run's `Arc`, loading others does not.
#[derive(Debug, Clone)]
struct Focused(Arc<Run>);

impl PartialEq for Focused {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The recompute section (for the focused run, when it has embeddings).
#[component]
pub fn RecomputePanel() -> impl IntoView {
    let state = AppState::from_context();
    // Rebuilt (controls reset to the run's settings) only when the focused run itself
    // changes, not when other runs are loaded.
    let focused = Memo::new(move |_| state.focused_run().map(Focused));
    let body = move || match focused.get() {
        Some(Focused(run)) if run.embeddings.is_some() => {
            let embeddings = run.embeddings.clone().expect("checked above");
            view! { <RecomputeRun run=run embeddings=embeddings /> }.into_any()
        }
        _ => view! { <p>"Focus a run with embeddings.json to recompute its plan."</p> }.into_any(),
    };
    view! {
        <section class="recompute">
            <h2>"Recompute the replay plan"</h2>
            {body}
        </section>
    }
}
