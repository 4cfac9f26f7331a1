//! The messages between the page and its distance workers (`src/bin/distance_worker.rs`,
//! driven by [`crate::distance_workers`]), as plain JS objects with typed arrays, which
//! `postMessage` copies without a serialisation format:
//!
//! - tasks, once per worker: `{dim, sizes: Uint32Array, counts: Uint32Array, points:
//!   Float32Array, similarity: string}`, every task's instruction counts and embeddings
//!   concatenated in task order, `sizes[t]` instructions for task `t`, and the setting the
//!   panel opened with (as JSON), which the worker prepares the tasks for;
//! - a job: `{pairs: Uint32Array, similarity: string}`, the pairs `(i, j)` flattened and the
//!   [`SimilarityConfig`] as JSON;
//! - the answer to each message: `{}` for tasks stored, `{distances: Float64Array}` in the
//!   job's pair order, or `{error: string}`.

use inscl::similarity::{
    InstructionCloud, PreparedTasks, SimilarityConfig, Solver, WeightScheme,
    prepared_pair_distances,
};
use js_sys::{Float32Array, Float64Array, Object, Reflect, Uint32Array};
use wasm_bindgen::{JsCast, JsValue};

/// Sets `object[key] = value` (on a fresh plain object, which cannot fail).
fn set(object: &Object, key: &str, value: &JsValue) {
    Reflect::set(object, &key.into(), value).expect("a plain object takes any key");
}

/// `object[key]` as the typed array `T`, or an error naming the key.
fn get<T: JsCast>(object: &JsValue, key: &str) -> Result<T, String> {
    Reflect::get(object, &key.into())
        .ok()
        .and_then(|v| v.dyn_into::<T>().ok())
        .ok_or_else(|| format!("distance worker message: field {key:?} is missing or mistyped"))
}

/// The tasks' clouds and the panel's opening `similarity` as a message (one copy of every
/// embedding into a JS typed array).
pub fn tasks_message(clouds: &[InstructionCloud], similarity: &SimilarityConfig) -> JsValue {
    let dim = clouds.first().map_or(0, InstructionCloud::dim);
    let total: usize = clouds.iter().map(InstructionCloud::len).sum();
    let points = Float32Array::new_with_length((total * dim) as u32);
    let mut offset = 0;
    for cloud in clouds {
        let values = cloud.points().as_slice();
        let end = offset + values.len() as u32;
        points.subarray(offset, end).copy_from(values);
        offset = end;
    }
    let sizes: Vec<u32> = clouds.iter().map(|c| c.len() as u32).collect();
    let counts: Vec<u32> = clouds
        .iter()
        .flat_map(|c| c.counts().iter().copied())
        .collect();
    let message = Object::new();
    set(&message, "dim", &JsValue::from(dim as u32));
    set(&message, "sizes", &Uint32Array::from(&sizes[..]));
    set(&message, "counts", &Uint32Array::from(&counts[..]));
    set(&message, "points", &points);
    set_similarity(&message, similarity);
    message.into()
}

/// Sets `message.similarity` to `similarity` as JSON.
fn set_similarity(message: &Object, similarity: &SimilarityConfig) {
    let json = serde_json::to_string(similarity).expect("a similarity config serialises");
    set(message, "similarity", &JsValue::from(json));
}

/// `message.similarity`, parsed.
///
/// # Errors
/// A missing field or JSON that is not a [`SimilarityConfig`].
fn read_similarity(message: &JsValue) -> Result<SimilarityConfig, String> {
    let json = Reflect::get(message, &"similarity".into())
        .ok()
        .and_then(|v| v.as_string())
        .ok_or("distance worker message: field \"similarity\" is missing")?;
    serde_json::from_str(&json)
        .map_err(|e| format!("distance worker message: similarity {json:?}: {e}"))
}

/// The clouds of a tasks message, validated by [`InstructionCloud::new`], and its setting.
///
/// # Errors
/// A missing or mistyped field, arrays that do not add up, or an invalid cloud (by task index).
pub fn read_tasks(message: &JsValue) -> Result<(Vec<InstructionCloud>, SimilarityConfig), String> {
    let dim = Reflect::get(message, &"dim".into())
        .ok()
        .and_then(|v| v.as_f64())
        .ok_or("distance worker message: field \"dim\" is missing")? as usize;
    let sizes = get::<Uint32Array>(message, "sizes")?.to_vec();
    let counts = get::<Uint32Array>(message, "counts")?.to_vec();
    let points = get::<Float32Array>(message, "points")?.to_vec();
    let total: usize = sizes.iter().map(|&n| n as usize).sum();
    if counts.len() != total || points.len() != total * dim {
        return Err(format!(
            "distance worker message: {total} instructions, {} counts, {} coordinates of dim {dim}",
            counts.len(),
            points.len()
        ));
    }
    let similarity = read_similarity(message)?;
    let mut start = 0;
    let clouds = sizes
        .iter()
        .enumerate()
        .map(|(task, &n)| {
            let (from, to) = (start, start + n as usize);
            start = to;
            InstructionCloud::new(
                dim,
                points[from * dim..to * dim].to_vec(),
                counts[from..to].to_vec(),
            )
            .map_err(|e| format!("task {task}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    Ok((clouds, similarity))
}

/// A job: the pairs to solve under `similarity`.
pub fn job_message(pairs: &[(usize, usize)], similarity: &SimilarityConfig) -> JsValue {
    let flat: Vec<u32> = pairs
        .iter()
        .flat_map(|&(i, j)| [i as u32, j as u32])
        .collect();
    let message = Object::new();
    set(&message, "pairs", &Uint32Array::from(&flat[..]));
    set_similarity(&message, similarity);
    message.into()
}

/// Whether `message` is a job (otherwise it carries tasks).
pub fn is_job(message: &JsValue) -> bool {
    Reflect::has(message, &"pairs".into()).unwrap_or(false)
}

/// What a worker keeps between messages: the tasks, and their coordinates prepared for the
/// cost and precision of the latest job (each job would otherwise prepare every task again).
pub struct WorkerTasks {
    clouds: Vec<InstructionCloud>,
    /// The setting the panel opened with, which [`WorkerTasks::warm_up`] solves under.
    opening: SimilarityConfig,
    prepared: PreparedTasks,
}

impl WorkerTasks {
    /// Keeps `clouds`, prepared for `opening`, the setting the panel opened with.
    pub fn new(clouds: Vec<InstructionCloud>, opening: SimilarityConfig) -> Self {
        let prepared = PreparedTasks::new(&clouds, opening.cost, opening.precision);
        Self {
            clouds,
            opening,
            prepared,
        }
    }

    /// Solves the first pair under the opening setting with both weightings and drops the
    /// values: the browser compiles wasm functions with a baseline compiler first and with
    /// its optimising one once they have run for a while, so this runs while the page is
    /// idle, and the first recompute runs optimised code.
    pub fn warm_up(&mut self) {
        if self.clouds.len() < 2 {
            return;
        }
        for weights in [WeightScheme::Uniform, WeightScheme::Real] {
            let similarity = SimilarityConfig {
                weights,
                ..self.opening
            };
            let _ = prepared_pair_distances(&self.clouds, &self.prepared, &[(0, 1)], &similarity);
        }
    }

    /// Solves a job with [`prepared_pair_distances`], preparing the tasks again only when an
    /// exact job's cost or precision differs from the preparation's.
    ///
    /// # Errors
    /// A malformed message or the first OT error, as text.
    pub fn solve(&mut self, message: &JsValue) -> Result<Vec<f64>, String> {
        let flat = get::<Uint32Array>(message, "pairs")?.to_vec();
        if flat.len() % 2 != 0 {
            return Err(format!(
                "distance worker message: {} task indices do not make pairs",
                flat.len()
            ));
        }
        let pairs: Vec<(usize, usize)> = flat
            .chunks_exact(2)
            .map(|p| (p[0] as usize, p[1] as usize))
            .collect();
        let similarity = read_similarity(message)?;
        if similarity.solver == Solver::Exact && !self.prepared.is_for(&similarity) {
            self.prepared = PreparedTasks::new(&self.clouds, similarity.cost, similarity.precision);
        }
        prepared_pair_distances(&self.clouds, &self.prepared, &pairs, &similarity)
            .map_err(|e| e.to_string())
    }
}

/// The answer to a message: `{}`, `{distances}` or `{error}`.
pub fn answer_message(answer: Result<Option<Vec<f64>>, String>) -> JsValue {
    let message = Object::new();
    match answer {
        Ok(None) => {}
        Ok(Some(distances)) => set(&message, "distances", &Float64Array::from(&distances[..])),
        Err(error) => set(&message, "error", &JsValue::from(error)),
    }
    message.into()
}

/// The distances of an answer (empty for `{}`).
///
/// # Errors
/// The worker's error text.
pub fn read_answer(message: &JsValue) -> Result<Vec<f64>, String> {
    if let Some(error) = Reflect::get(message, &"error".into())
        .ok()
        .and_then(|v| v.as_string())
    {
        return Err(error);
    }
    Ok(get::<Float64Array>(message, "distances")
        .map(|d| d.to_vec())
        .unwrap_or_default())
}
