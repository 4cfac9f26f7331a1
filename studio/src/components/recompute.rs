//! The recompute panel: the focused run's replay plan recomputed in the browser with other
//! settings by [`inscl::plan::plan_sequence`] (the code of `trainer plan`), beside the
//! recorded plan with the differences marked, and the time it took.

use std::sync::Arc;

use inscl::artifact::EmbeddingsFile;
use inscl::insinfo::TagNormalizer;
use inscl::ot::CostKind;
use inscl::plan::{
    PlanConfig, SequencePlan, StagePlan, plan_sequence_with_distances, task_distances,
};
use inscl::replay::Strategy;
use inscl::similarity::{SimilarityConfig, Solver, WeightScheme};
use leptos::prelude::*;

use super::plan_view::quota_bars;
use super::stacked_bars::StackedBars;
use super::{ExportCsv, fmt};
use crate::state::{AppState, Run};

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

/// A recomputed plan, how long it took (ms) and whether the cached distances were reused.
type Recomputed = (SequencePlan, f64, bool);

/// Recomputes the plan and times it, reusing `cache` when the similarity setting is unchanged.
fn recompute(
    embeddings: &EmbeddingsFile,
    config: &PlanConfig,
    cache: DistanceCache,
) -> Result<Recomputed, String> {
    let start = now_ms();
    let cached = cache.with_value(|c| {
        c.as_ref()
            .filter(|(similarity, _)| *similarity == config.similarity)
            .map(|(_, distances)| distances.clone())
    });
    let reused = cached.is_some();
    let distances = match cached {
        Some(distances) => distances,
        None => {
            let distances =
                task_distances(&embeddings.tasks, &config.similarity).map_err(|e| e.to_string())?;
            cache.set_value(Some((config.similarity, distances.clone())));
            distances
        }
    };
    let plan = plan_sequence_with_distances(&embeddings.tasks, distances, config)
        .map_err(|e| e.to_string())?;
    Ok((plan, now_ms() - start, reused))
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
    // Counts recomputations so that a reader (and the benchmark) can tell results apart.
    let count = RwSignal::new(0_usize);
    let run_it = move |_| {
        let result = controls
            .config(tags)
            .and_then(|config| recompute(&embeddings, &config, cache));
        count.update(|c| *c += 1);
        outcome.set(Some(result));
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
        let (plan, ms, reused) = match outcome {
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
                    data-distances=if reused { "reused" } else { "solved" }>
                    {format!(
                        "recomputed {} stages in {ms:.1} ms ({}); {changed} quotas differ from the recorded plan",
                        plan.stages.len(),
                        if reused { "task distances reused" } else { "task distances solved" },
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
            {text_input("rc-epsilon", "Sinkhorn ε", controls.epsilon)}
            <Choice id="rc-strategy" label="strategy" value=controls.strategy options=&["inscl", "dynamic", "insinfo", "random", "none"] />
            {text_input("rc-seed", "seed", controls.seed)}
            <button id="rc-run" on:click=run_it>"Recompute"</button>
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
    let state = AppState::expect();
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
