//! Task distances spread over Web Workers: one distance worker
//! (`src/bin/distance_worker.rs`, built by trunk as `distance_worker_loader.js`) per logical
//! core, each holding the focused run's tasks. A recompute hands every worker a batch of task
//! pairs ([`inscl::similarity::prepared_pair_distances`], the code of `trainer plan`) and
//! assembles the matrix, so the values do not depend on how many workers there are.
//!
//! Messages and answers alternate strictly per worker: the recompute button is disabled while
//! one runs, and a recompute awaits every worker's answer, failed or not, before it returns.
//! So each worker owes at most one answer at a time: a JS promise whose resolve and reject
//! functions its `message` and `error` handlers call.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use inscl::similarity::{InstructionCloud, SimilarityConfig};
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Event, MessageEvent, Worker};

use crate::distance_job::{job_message, read_answer, tasks_message};

/// The worker script trunk writes for `data-type="worker" data-loader-shim`, resolved against
/// the page's URL.
const WORKER_SCRIPT: &str = "distance_worker_loader.js";

/// At most this many workers, whatever the core count: each holds the tasks three times
/// (the float32 embeddings, float64 unit rows and float32 unit rows: about 30 MB for 16
/// tasks × 200 instructions of dimension 576).
const MAX_WORKERS: usize = 8;

/// How long the page waits for the workers to load and take the tasks. A worker whose wasm
/// fails to instantiate fails silently (the loader's promise rejects inside the worker), so
/// without a limit the panel would wait forever.
const STARTUP_TIMEOUT_MS: i32 = 30_000;

/// The resolve and reject functions of the answer a worker owes.
type Pending = Rc<RefCell<Option<(Function, Function)>>>;

/// One worker and its pending answer.
struct Slot {
    worker: Worker,
    pending: Pending,
    /// Set when the pool is dropped: the worker is terminated and answers nothing.
    stopped: Cell<bool>,
    _on_message: Closure<dyn Fn(MessageEvent)>,
    _on_error: Closure<dyn Fn(Event)>,
}

impl Slot {
    /// Starts a worker; the returned future resolves with its first message (it listens).
    fn spawn() -> Result<(Self, JsFuture), String> {
        let worker = Worker::new(WORKER_SCRIPT).map_err(|e| describe(&e))?;
        let pending: Pending = Rc::default();
        let answered = pending.clone();
        let on_message = Closure::<dyn Fn(MessageEvent)>::new(move |event: MessageEvent| {
            if let Some((resolve, _)) = answered.borrow_mut().take() {
                let _ = resolve.call1(&JsValue::NULL, &event.data());
            }
        });
        let failed = pending.clone();
        // A plain `Event` when the script fails to load, an `ErrorEvent` (with a message)
        // when the worker's code throws or traps.
        let on_error = Closure::<dyn Fn(Event)>::new(move |event: Event| {
            let text = Reflect::get(&event, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
                .unwrap_or_else(|| format!("{WORKER_SCRIPT} did not load"));
            if let Some((_, reject)) = failed.borrow_mut().take() {
                let _ = reject.call1(&JsValue::NULL, &JsValue::from(text));
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let slot = Slot {
            worker,
            pending,
            stopped: Cell::new(false),
            _on_message: on_message,
            _on_error: on_error,
        };
        let listening = slot.next_answer();
        Ok((slot, listening))
    }

    /// The future of the worker's next message; call it before posting what it answers.
    fn next_answer(&self) -> JsFuture {
        let pending = self.pending.clone();
        let promise = Promise::new(&mut |resolve, reject| {
            *pending.borrow_mut() = Some((resolve, reject));
        });
        JsFuture::from(promise)
    }

    /// Posts `message`; the returned future resolves with the answer's distances.
    ///
    /// # Errors
    /// [`Failure::Worker`] when the worker is stopped, refuses the message or fails (it will
    /// not answer again), otherwise [`Failure::Job`] with the worker's error text.
    fn post(
        &self,
        message: &JsValue,
    ) -> Result<impl Future<Output = Result<Vec<f64>, Failure>> + use<>, Failure> {
        if self.stopped.get() {
            return Err(Failure::Worker("the distance workers were stopped".into()));
        }
        let answer = self.next_answer();
        self.worker
            .post_message(message)
            .map_err(|e| Failure::Worker(describe(&e)))?;
        Ok(async move {
            let answer = answer.await.map_err(|e| Failure::Worker(describe(&e)))?;
            read_answer(&answer).map_err(Failure::Job)
        })
    }

    /// Terminates the worker and fails the answer it owes.
    fn stop(&self) {
        self.stopped.set(true);
        self.worker.terminate();
        if let Some((_, reject)) = self.pending.borrow_mut().take() {
            let _ = reject.call1(&JsValue::NULL, &"the distance workers were stopped".into());
        }
    }
}

/// Why a batch of distances did not come back.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// A worker could not start, stopped or answered nonsense: compute on the page instead.
    Worker(String),
    /// A worker's distances failed (an OT error, as text); the page's own solve reports the
    /// error of the first failing pair, as `trainer plan` does.
    Job(String),
}

/// The text of a JS error value.
fn describe(error: &JsValue) -> String {
    error
        .as_string()
        .or_else(|| {
            error
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{error:?}"))
}

/// The pool of distance workers of one run's tasks; dropping it terminates them.
pub struct DistanceWorkers {
    slots: Rc<Vec<Slot>>,
    /// Sizes of the tasks (instructions), for balancing the pairs.
    sizes: Vec<usize>,
    /// Resolves once every worker listens and holds the tasks; rejects if one failed or the
    /// startup took longer than [`STARTUP_TIMEOUT_MS`].
    started: Promise,
}

impl DistanceWorkers {
    /// Starts one worker per logical core (`navigator.hardwareConcurrency`, at most
    /// [`MAX_WORKERS`] and at most one per task pair) and sends each the tasks and `opening`,
    /// the setting the panel opened with, which they prepare and warm up for; returns at
    /// once, the workers start in the background ([`DistanceWorkers::started`]).
    ///
    /// # Errors
    /// The browser's reason when a worker cannot be created (no `Worker`, a refused script).
    ///
    /// # Panics
    /// Never: a promise executor runs before `Promise::new` returns.
    pub fn spawn(clouds: &[InstructionCloud], opening: &SimilarityConfig) -> Result<Self, String> {
        let cores = web_sys::window().map_or(1.0, |w| w.navigator().hardware_concurrency());
        let pairs = clouds.len() * clouds.len().saturating_sub(1) / 2;
        let count = (cores as usize).clamp(1, MAX_WORKERS).min(pairs.max(1));
        let (slots, listening): (Vec<Slot>, Vec<JsFuture>) = (0..count)
            .map(|_| Slot::spawn())
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .unzip();
        let slots = Rc::new(slots);
        let mut settle = None;
        let started = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        let (resolve, reject) = settle.expect("the promise executor runs at once");
        if let Some(window) = web_sys::window() {
            let late = format!(
                "the distance workers did not start within {} s",
                STARTUP_TIMEOUT_MS / 1000
            );
            // Settling a settled promise does nothing, so this only acts on a stalled start.
            let give_up: Function = reject.bind1(&JsValue::NULL, &late.into()).unchecked_into();
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                &give_up,
                STARTUP_TIMEOUT_MS,
            );
        }
        let tasks = tasks_message(clouds, opening);
        let starting = slots.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let outcome = async {
                for listening in listening {
                    listening.await.map_err(|e| Failure::Worker(describe(&e)))?;
                }
                // Every worker gets the tasks before any is awaited: they load side by side.
                let stored = starting
                    .iter()
                    .map(|slot| slot.post(&tasks))
                    .collect::<Result<Vec<_>, _>>()?;
                for answer in stored {
                    answer.await?;
                }
                Ok(())
            };
            let _ = match outcome.await {
                Ok(()) => resolve.call0(&JsValue::NULL),
                Err(Failure::Worker(text) | Failure::Job(text)) => {
                    reject.call1(&JsValue::NULL, &JsValue::from(text))
                }
            };
        });
        Ok(DistanceWorkers {
            slots,
            sizes: clouds.iter().map(InstructionCloud::len).collect(),
            started,
        })
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: a pool has at least one worker (kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Resolves once every worker listens and holds the tasks; the future does not hold the
    /// pool, so waiting on it does not keep the workers alive.
    ///
    /// # Errors
    /// Why a worker did not start, or that the startup timed out.
    pub fn started(&self) -> impl Future<Output = Result<(), String>> + use<> {
        let started = JsFuture::from(self.started.clone());
        async move { started.await.map(|_| ()).map_err(|e| describe(&e)) }
    }

    /// Terminates the workers and fails the answers they owe (a recompute in flight then
    /// returns [`Failure::Worker`]). Dropping the pool does the same.
    pub fn stop(&self) {
        self.slots.iter().for_each(Slot::stop);
    }

    /// The full `T × T` distance matrix under `similarity` (as
    /// [`inscl::similarity::distance_matrix`]), the pairs spread over the workers. Every
    /// worker's answer is awaited, even after one failed, so that none is left owing one.
    ///
    /// # Errors
    /// [`Failure::Worker`] when a worker did not start, failed or answered the wrong number
    /// of distances (before any [`Failure::Job`]); otherwise [`Failure::Job`] for an OT
    /// error.
    pub async fn distance_matrix(
        &self,
        similarity: &SimilarityConfig,
    ) -> Result<Vec<Vec<f64>>, Failure> {
        self.started().await.map_err(Failure::Worker)?;
        let t = self.sizes.len();
        let pairs: Vec<(usize, usize)> = (0..t)
            .flat_map(|i| (i + 1..t).map(move |j| (i, j)))
            .collect();
        let batches = balance_pairs(&pairs, &self.sizes, self.slots.len());
        // Every job is posted before any answer is awaited, so the workers run side by side.
        let mut answers = Vec::new();
        let mut failures = Vec::new();
        for (slot, batch) in self.slots.iter().zip(&batches) {
            if !batch.is_empty() {
                match slot.post(&job_message(batch, similarity)) {
                    Ok(answer) => answers.push((batch, answer)),
                    Err(failure) => failures.push(failure),
                }
            }
        }
        let mut d = vec![vec![0.0; t]; t];
        for (batch, answer) in answers {
            match answer.await {
                Ok(values) if values.len() == batch.len() => {
                    for (&(i, j), w) in batch.iter().zip(values) {
                        d[i][j] = w;
                        d[j][i] = w;
                    }
                }
                Ok(values) => failures.push(Failure::Worker(format!(
                    "a distance worker answered {} distances for {} pairs",
                    values.len(),
                    batch.len()
                ))),
                Err(failure) => failures.push(failure),
            }
        }
        let worker_failure = failures
            .iter()
            .position(|f| matches!(f, Failure::Worker(_)));
        match worker_failure.or((!failures.is_empty()).then_some(0)) {
            Some(k) => Err(failures.swap_remove(k)),
            None => Ok(d),
        }
    }
}

impl Drop for DistanceWorkers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Splits `pairs` into `workers` batches of about equal work (`n_i · n_j` cost entries per
/// pair, `sizes` instructions per task): longest first, each to the least loaded batch (ties:
/// the lowest index), then each batch in the pairs' order. Deterministic.
///
/// # Panics
/// When `workers` is 0 and there are pairs, or a pair names a task past `sizes`.
pub fn balance_pairs(
    pairs: &[(usize, usize)],
    sizes: &[usize],
    workers: usize,
) -> Vec<Vec<(usize, usize)>> {
    let work = |&(i, j): &(usize, usize)| sizes[i] * sizes[j];
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(work(&pairs[k])));
    let mut load = vec![0usize; workers];
    let mut assigned: Vec<Vec<usize>> = vec![Vec::new(); workers];
    for k in order {
        let lightest = (0..workers)
            .min_by_key(|&w| load[w])
            .expect("at least one worker");
        load[lightest] += work(&pairs[k]);
        assigned[lightest].push(k);
    }
    assigned
        .into_iter()
        .map(|mut ks| {
            ks.sort_unstable();
            ks.into_iter().map(|k| pairs[k]).collect()
        })
        .collect()
}
