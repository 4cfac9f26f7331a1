//! The replay plan of a whole task sequence: what `trainer plan` prints, what `trainer run`
//! replays before each stage, and what the studio recomputes in the browser.
//!
//! For stage t (1-based) with current task t and previous tasks j < t (InsCL, Algorithm 1):
//! 1. budget = α × (t − 1) ([`replay::stage_budget`]);
//! 2. quotas: by the Wasserstein distances W(t, j) ([`replay::allocate_dynamic`]) or evenly
//!    ([`replay::allocate_uniform`]), depending on the [`Strategy`];
//! 3. InsInfo of every instruction, with tag statistics over all instructions of tasks
//!    1..=t, normalised within each previous task ([`TagStatistics`]);
//! 4. inside each previous task, instances by InsInfo ([`replay::sample_insinfo`]) or
//!    uniformly ([`replay::sample_random`]), from an independent seeded stream per
//!    (stage, task) ([`replay::replay_rng`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::insinfo::{TagNormalizer, TagStatistics};
use crate::ot::{CostKind, OtError};
use crate::replay::{self, Strategy};
use crate::similarity::{self, InstructionCloud, SimilarityConfig};

/// One task's instructions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEmbeddings {
    /// Task name.
    pub name: String,
    /// The task's distinct instructions.
    pub instructions: Vec<InstructionEmbedding>,
}

/// One distinct instruction of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructionEmbedding {
    /// Id, unique within the task.
    pub id: String,
    /// Instruction text.
    #[serde(default)]
    pub text: String,
    /// Number of training instances that use this instruction (its weight under `real`).
    pub count: u32,
    /// Tags for InsInfo, as given (normalised by the planner).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Embedding vector (all instructions share one dimension).
    pub embedding: Vec<f32>,
}

/// Everything besides the embeddings that determines a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanConfig {
    /// Replay budget per stage step α (instances). InsCL default: 200.
    pub alpha: usize,
    /// Allocation and sampling strategy.
    pub strategy: Strategy,
    /// Seed of all sampling.
    pub seed: u64,
    /// Cost, weights and solver of the task distances.
    pub similarity: SimilarityConfig,
    /// Tag normalisation for InsInfo.
    pub tags: TagNormalizer,
}

impl Default for PlanConfig {
    /// InsCL's defaults: α = 200, InsCL strategy, cosine cost, real distribution, exact OT.
    fn default() -> Self {
        PlanConfig {
            alpha: replay::DEFAULT_ALPHA,
            strategy: Strategy::InsCL,
            seed: 0,
            similarity: SimilarityConfig::default(),
            tags: TagNormalizer::default(),
        }
    }
}

/// The plan of every stage of a sequence, plus the full distance matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequencePlan {
    /// Task names in sequence order.
    pub tasks: Vec<String>,
    /// Full pairwise Wasserstein matrix W (T × T, symmetric, zero diagonal).
    pub distances: Vec<Vec<f64>>,
    /// One plan per stage, stage 1 first (stage 1 replays nothing).
    pub stages: Vec<StagePlan>,
}

/// What to replay while training one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagePlan {
    /// 1-based stage number.
    pub stage: usize,
    /// The task trained at this stage.
    pub task: String,
    /// Total replayed instances (α × (stage − 1); 0 for [`Strategy::None`]).
    pub budget: usize,
    /// One entry per previous task, in sequence order.
    pub previous: Vec<TaskReplay>,
}

/// Replay from one previous task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReplay {
    /// Previous task name.
    pub task: String,
    /// Wasserstein distance W(current, this task).
    pub distance: f64,
    /// Instances replayed from this task (sums to the stage budget over tasks).
    pub quota: usize,
    /// Every instruction of the task, with its InsInfo and what is replayed of it.
    pub instructions: Vec<InstructionReplay>,
}

/// Replay from one instruction of a previous task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstructionReplay {
    /// Instruction id.
    pub id: String,
    /// InsInfo normalised to sum to 1 within the task at this stage.
    pub insinfo: f64,
    /// How many instances are replayed (= `instances.len()`; sums to the task's quota).
    pub replay: usize,
    /// Chosen instances as 0-based indices into the instruction's instances, in data order,
    /// ascending; an index repeats when the quota exceeds the available instances.
    pub instances: Vec<u32>,
}

/// Why a plan could not be made. Names the task and instruction at fault.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The sequence has no tasks.
    #[error("the task sequence is empty")]
    NoTasks,
    /// A task without instructions.
    #[error("task \"{task}\" has no instructions")]
    EmptyTask {
        /// The task's name.
        task: String,
    },
    /// Two tasks with the same name.
    #[error("task name \"{task}\" appears twice")]
    DuplicateTask {
        /// The task's name.
        task: String,
    },
    /// Two instructions of a task with the same id.
    #[error("task \"{task}\": instruction id \"{instruction}\" appears twice")]
    DuplicateInstruction {
        /// The task's name.
        task: String,
        /// The instruction's id.
        instruction: String,
    },
    /// An instruction used by no instance.
    #[error("task \"{task}\", instruction \"{instruction}\": count must be at least 1, got 0")]
    ZeroCount {
        /// The task's name.
        task: String,
        /// The instruction's id.
        instruction: String,
    },
    /// An embedding whose length differs from the first one's.
    #[error(
        "task \"{task}\", instruction \"{instruction}\": embedding has {got} values, expected {expected} (ragged embeddings)"
    )]
    Ragged {
        /// The task's name.
        task: String,
        /// The instruction's id.
        instruction: String,
        /// The first embedding's length.
        expected: usize,
        /// This embedding's length.
        got: usize,
    },
    /// An empty embedding.
    #[error("task \"{task}\", instruction \"{instruction}\": embedding is empty")]
    EmptyEmbedding {
        /// The task's name.
        task: String,
        /// The instruction's id.
        instruction: String,
    },
    /// A NaN or infinite embedding value.
    #[error("task \"{task}\", instruction \"{instruction}\": embedding[{index}] is {value}")]
    NonFinite {
        /// The task's name.
        task: String,
        /// The instruction's id.
        instruction: String,
        /// Index of the value in the embedding.
        index: usize,
        /// The NaN or infinite value.
        value: f32,
    },
    /// An all-zero embedding, which has no direction under the cosine cost.
    #[error(
        "task \"{task}\", instruction \"{instruction}\": embedding is all zeros, which the cosine cost cannot compare"
    )]
    ZeroNorm {
        /// The task's name.
        task: String,
        /// The instruction's id.
        instruction: String,
    },
    /// A given distance matrix that is not T × T with finite, non-negative entries.
    #[error("the distance matrix must be {tasks} × {tasks} with finite, non-negative entries")]
    DistanceShape {
        /// Tasks in the sequence.
        tasks: usize,
    },
    /// The optimal-transport layer failed.
    #[error(transparent)]
    Ot(#[from] OtError),
}

/// Plans every stage of `tasks` (in sequence order).
///
/// # Errors
/// [`PlanError`] for malformed input (naming task and instruction) or an OT failure.
pub fn plan_sequence(
    tasks: &[TaskEmbeddings],
    config: &PlanConfig,
) -> Result<SequencePlan, PlanError> {
    let distances = task_distances(tasks, &config.similarity)?;
    plan_sequence_with_distances(tasks, distances, config)
}

/// The full pairwise Wasserstein matrix of `tasks` (T × T, symmetric, zero diagonal) under
/// `similarity`, after validating the tasks — the expensive part of [`plan_sequence`], which
/// depends only on the embeddings and `similarity`, so callers may cache it.
///
/// # Errors
/// As [`plan_sequence`].
pub fn task_distances(
    tasks: &[TaskEmbeddings],
    similarity: &SimilarityConfig,
) -> Result<Vec<Vec<f64>>, PlanError> {
    let clouds = instruction_clouds(tasks, similarity.cost)?;
    Ok(similarity::distance_matrix(&clouds, similarity)?)
}

/// [`plan_sequence`] with the distance matrix given (from [`task_distances`] with
/// `config.similarity`, possibly cached): allocation and sampling only.
///
/// # Errors
/// [`PlanError::DistanceShape`] unless `distances` is T × T with finite, non-negative entries.
pub fn plan_sequence_with_distances(
    tasks: &[TaskEmbeddings],
    distances: Vec<Vec<f64>>,
    config: &PlanConfig,
) -> Result<SequencePlan, PlanError> {
    let t = tasks.len();
    if distances.len() != t
        || distances
            .iter()
            .any(|row| row.len() != t || row.iter().any(|w| !w.is_finite() || *w < 0.0))
    {
        return Err(PlanError::DistanceShape { tasks: t });
    }
    // Normalising is per instruction, so it is done once; merging depends on the tasks seen
    // by each stage, so it is done per stage.
    let normalized = normalized_tags(tasks, &config.tags);
    // Without merging, earlier sets never change: the statistics grow by a task per stage.
    let mut unmerged = TagStatistics::default();
    let mut stages = Vec::with_capacity(t);
    for current in 0..t {
        let (seen, distances) = (&normalized[..=current], &distances[current][..current]);
        stages.push(if config.tags.merge_threshold.is_some() {
            let (tag_sets, statistics) = seen_tags(seen, &config.tags);
            plan_stage(
                &tasks[..=current],
                &tag_sets,
                &statistics,
                distances,
                config,
            )
        } else {
            unmerged.add_instructions(normalized[current].iter().map(Vec::as_slice));
            plan_stage(&tasks[..=current], seen, &unmerged, distances, config)
        });
    }
    Ok(SequencePlan {
        tasks: tasks.iter().map(|t| t.name.clone()).collect(),
        distances,
        stages,
    })
}

/// Plans only the last stage of `tasks`: the one that trains `tasks[T - 1]` after tasks
/// `0..T - 1`. Equals `plan_sequence(tasks, config)?.stages[T - 1]` but solves only the
/// T − 1 transport problems of that stage (what `trainer run` needs before each stage).
///
/// # Errors
/// As [`plan_sequence`].
pub fn plan_last_stage(
    tasks: &[TaskEmbeddings],
    config: &PlanConfig,
) -> Result<StagePlan, PlanError> {
    let clouds = instruction_clouds(tasks, config.similarity.cost)?;
    let current = clouds.len() - 1;
    let distances = similarity::distance_row(&clouds, current, &config.similarity)?;
    let normalized = normalized_tags(tasks, &config.tags);
    let (tag_sets, statistics) = seen_tags(&normalized, &config.tags);
    Ok(plan_stage(
        tasks,
        &tag_sets,
        &statistics,
        &distances,
        config,
    ))
}

/// Normalised tag sets, `[task][instruction] -> tags` (not merged: see [`merged_tags`]).
fn normalized_tags(tasks: &[TaskEmbeddings], normalizer: &TagNormalizer) -> Vec<Vec<Vec<String>>> {
    tasks
        .iter()
        .map(|task| {
            task.instructions
                .iter()
                .map(|q| normalizer.normalize_set(&q.tags))
                .collect()
        })
        .collect()
}

/// The normalised `tag_sets` of the tasks a stage has seen, with near-duplicate tags merged
/// if configured. Merging looks only at the tasks given, i.e. at what has been seen by that
/// stage.
fn merged_tags<'a>(
    tag_sets: &'a [Vec<Vec<String>>],
    normalizer: &TagNormalizer,
) -> Cow<'a, [Vec<Vec<String>>]> {
    if normalizer.merge_threshold.is_none() {
        return Cow::Borrowed(tag_sets);
    }
    let mut merged_sets = tag_sets.to_vec();
    let mut flat: Vec<Vec<String>> = merged_sets.iter().flatten().cloned().collect();
    normalizer.merge_near_duplicates(&mut flat);
    let mut merged = flat.into_iter();
    for set in merged_sets.iter_mut().flatten() {
        *set = merged.next().expect("one merged set per instruction");
    }
    Cow::Owned(merged_sets)
}

/// The tag sets of the tasks a stage has seen (`seen`, normalised), merged if configured
/// ([`merged_tags`]), and their InsInfo statistics: every instruction seen so far, the
/// current task's included.
fn seen_tags<'a>(
    seen: &'a [Vec<Vec<String>>],
    normalizer: &TagNormalizer,
) -> (Cow<'a, [Vec<Vec<String>>]>, TagStatistics) {
    let tag_sets = merged_tags(seen, normalizer);
    let statistics = TagStatistics::from_instructions(tag_sets.iter().flatten().map(Vec::as_slice));
    (tag_sets, statistics)
}

/// Plans the stage that trains the last of `tasks` given its distances to the others, the
/// tasks' tag sets as the stage sees them and their statistics ([`seen_tags`]).
fn plan_stage(
    tasks: &[TaskEmbeddings],
    tag_sets: &[Vec<Vec<String>>],
    statistics: &TagStatistics,
    distances: &[f64],
    config: &PlanConfig,
) -> StagePlan {
    let current = tasks.len() - 1;
    let stage = current + 1;
    let strategy = config.strategy;
    let budget = if strategy.replays() {
        replay::stage_budget(stage, config.alpha)
    } else {
        0
    };
    let quotas = if strategy.uses_distance_allocation() {
        replay::allocate_dynamic(distances, budget)
    } else {
        replay::allocate_uniform(current, budget)
    };
    let previous = (0..current)
        .map(|j| {
            let task = &tasks[j];
            let counts: Vec<u32> = task.instructions.iter().map(|q| q.count).collect();
            let scores = statistics.normalized_scores(&tag_sets[j]);
            let mut rng = replay::replay_rng(config.seed, stage, j);
            let chosen = if strategy.uses_insinfo_sampling() {
                replay::sample_insinfo(&counts, &scores, quotas[j], &mut rng)
            } else {
                replay::sample_random(&counts, quotas[j], &mut rng)
            };
            let instructions = task
                .instructions
                .iter()
                .zip(scores)
                .zip(chosen)
                .map(|((q, insinfo), instances)| InstructionReplay {
                    id: q.id.clone(),
                    insinfo,
                    replay: instances.len(),
                    instances,
                })
                .collect();
            TaskReplay {
                task: task.name.clone(),
                distance: distances[j],
                quota: quotas[j],
                instructions,
            }
        })
        .collect();
    StagePlan {
        stage,
        task: tasks[current].name.clone(),
        budget,
        previous,
    }
}

/// Validates the tasks and turns them into weighted instruction clouds.
///
/// # Errors
/// The first malformed task or instruction, by name (see [`PlanError`]).
pub fn instruction_clouds(
    tasks: &[TaskEmbeddings],
    cost: CostKind,
) -> Result<Vec<InstructionCloud>, PlanError> {
    let dim = tasks
        .first()
        .ok_or(PlanError::NoTasks)?
        .instructions
        .first()
        .map_or(0, |q| q.embedding.len());
    let mut names = std::collections::BTreeSet::new();
    tasks
        .iter()
        .map(|task| {
            let name = || task.name.clone();
            if !names.insert(task.name.as_str()) {
                return Err(PlanError::DuplicateTask { task: name() });
            }
            if task.instructions.is_empty() {
                return Err(PlanError::EmptyTask { task: name() });
            }
            let mut ids = std::collections::BTreeSet::new();
            let mut points = Vec::with_capacity(task.instructions.len() * dim);
            for q in &task.instructions {
                let instruction = || q.id.clone();
                if !ids.insert(q.id.as_str()) {
                    return Err(PlanError::DuplicateInstruction {
                        task: name(),
                        instruction: instruction(),
                    });
                }
                if q.count == 0 {
                    return Err(PlanError::ZeroCount {
                        task: name(),
                        instruction: instruction(),
                    });
                }
                if q.embedding.is_empty() {
                    return Err(PlanError::EmptyEmbedding {
                        task: name(),
                        instruction: instruction(),
                    });
                }
                if q.embedding.len() != dim {
                    return Err(PlanError::Ragged {
                        task: name(),
                        instruction: instruction(),
                        expected: dim,
                        got: q.embedding.len(),
                    });
                }
                if let Some((index, &value)) =
                    q.embedding.iter().enumerate().find(|(_, v)| !v.is_finite())
                {
                    return Err(PlanError::NonFinite {
                        task: name(),
                        instruction: instruction(),
                        index,
                        value,
                    });
                }
                if cost == CostKind::Cosine && q.embedding.iter().all(|&v| v == 0.0) {
                    return Err(PlanError::ZeroNorm {
                        task: name(),
                        instruction: instruction(),
                    });
                }
                points.extend_from_slice(&q.embedding);
            }
            let counts = task.instructions.iter().map(|q| q.count).collect();
            Ok(InstructionCloud::new(dim, points, counts)?)
        })
        .collect()
}
