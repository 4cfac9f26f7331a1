//! The state of a run between stages, and the stage loop over it (see the module docs of
//! [`super`]).

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use inscl::artifact::{
    self, ReplayedInstances, SCHEMA_VERSION, StageRecord, TaskEmbeddings, TaskEval,
};
use inscl::plan::{PlanConfig, StagePlan, plan_last_stage};
use inscl::replay::Strategy;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::error::io_error;
use super::{RunError, RunFolder, RunOutcome, eval, faults};
use crate::config::{Config, RunStrategy};
use crate::data::{Dataset, Example, InstructionGroup};
use crate::learner::{ContinualLearner, StageTraining, StepReport};
use crate::progress::{Event, Progress};
use crate::tags::Tagger;

/// The state of a run between stages.
pub(super) struct RunState<'a> {
    pub(super) config: &'a Config,
    pub(super) dataset: &'a Dataset,
    pub(super) groups: &'a [Vec<InstructionGroup>],
    pub(super) tagger: &'a Tagger,
    pub(super) folder: &'a RunFolder,
    /// Folder that the configuration's relative paths start from.
    pub(super) root: &'a Path,
    pub(super) interrupt: Arc<AtomicBool>,
    /// Raw tags of every instruction of every task (`[task][instruction]`), made before
    /// stage 1.
    pub(super) tags: Vec<Vec<Vec<String>>>,
    /// Generation budget of every task (tokens).
    pub(super) budgets: Vec<usize>,
    /// For `embedding.source = base | file`: the vector of every instruction of every task,
    /// one space for the whole run. `None` for `current`, which embeds at every stage.
    pub(super) fixed_space: Option<Vec<Vec<Vec<f32>>>>,
    /// ROUGE-L of every evaluated task after each finished stage.
    pub(super) rows: Vec<Vec<f64>>,
    pub(super) zero_shot: Option<Vec<f64>>,
    pub(super) upper_bounds: Option<Vec<f64>>,
}

impl RunState<'_> {
    pub(super) fn total_stages(&self) -> usize {
        match self.config.strategy.name {
            RunStrategy::Multitask => 1,
            _ => self.dataset.tasks.len(),
        }
    }

    /// Tasks trained at `stage` (all of them in the one `multitask` stage).
    pub(super) fn trained_tasks(&self, stage: usize) -> std::ops::Range<usize> {
        match self.config.strategy.name {
            RunStrategy::Multitask => 0..self.dataset.tasks.len(),
            _ => stage - 1..stage,
        }
    }

    /// Tasks evaluated (and planned over) after `stage`: the first `seen_tasks(stage)`.
    pub(super) fn seen_tasks(&self, stage: usize) -> usize {
        self.trained_tasks(stage).end
    }

    pub(super) fn interrupted(&self, stage: usize) -> Result<(), RunError> {
        if self.interrupt.load(Ordering::SeqCst) {
            Err(RunError::Interrupted {
                stage,
                folder: self.folder.root().display().to_string(),
            })
        } else {
            Ok(())
        }
    }

    pub(super) fn run(
        &mut self,
        learner: &mut dyn ContinualLearner,
        tag_model: Option<&mut dyn ContinualLearner>,
        progress: &mut Progress,
    ) -> Result<RunOutcome, RunError> {
        let total = self.total_stages();
        let finished = self.folder.finished_stages().min(total);
        progress.event(&Event::RunStarted {
            folder: self.folder.root().display().to_string(),
            strategy: self.config.strategy.name.name().into(),
            stages: total,
            finished,
            device: learner.device(),
        });
        self.restore(learner, finished)?;
        self.tag_instructions(learner, tag_model, progress)?;
        self.budgets = self.generation_budgets(learner)?;
        self.fixed_space = self.fixed_space(learner)?;
        if self.config.eval.zero_shot && self.zero_shot.is_none() {
            self.zero_shot_pass(learner, progress)?;
        }
        for stage in finished + 1..=total {
            self.interrupted(stage)?;
            self.stage(learner, progress, stage)?;
        }
        let results = self.results()?;
        // Written again: a run killed between its last stage file and these writes is
        // finished, but its `results.json` may be stale and an old checkpoint left.
        artifact::write_atomic(&self.folder.results(), &results)?;
        self.folder
            .prune_checkpoints(total, self.config.output.keep_checkpoints)
            .map_err(io_error(self.folder.root()))?;
        progress.event(&Event::RunFinished {
            folder: self.folder.root().display().to_string(),
            ap: results.summary.ap,
            forgetting: results.summary.forgetting,
            bwt: results.summary.bwt,
            fwt: results.summary.fwt,
        });
        Ok(RunOutcome {
            folder: self.folder.root().to_path_buf(),
            results,
        })
    }

    /// Reloads what the first `finished` stages left: scores, zero-shot scores and the
    /// learner's checkpoint.
    pub(super) fn restore(
        &mut self,
        learner: &mut dyn ContinualLearner,
        finished: usize,
    ) -> Result<(), RunError> {
        let zero_path = self.folder.stage(0);
        if zero_path.is_file() {
            let record: StageRecord = artifact::read(&zero_path)?;
            self.zero_shot = Some(record.eval.iter().map(|e| e.rouge_l).collect());
        }
        if finished == 0 {
            return Ok(());
        }
        for stage in 1..=finished {
            let record: StageRecord = artifact::read(&self.folder.stage(stage))?;
            self.rows
                .push(record.eval.iter().map(|e| e.rouge_l).collect());
        }
        let checkpoint = self.folder.checkpoint(finished);
        if !checkpoint.is_dir() {
            return Err(RunError::MissingCheckpoint {
                folder: self.folder.root().display().to_string(),
                stage: finished,
                checkpoint: checkpoint.display().to_string(),
            });
        }
        learner
            .load_checkpoint(&checkpoint)
            .map_err(|source| RunError::ContinualLearner {
                stage: finished,
                what: "loading the checkpoint",
                error: source,
            })
    }

    /// Every task's generation budget: [`eval::generation_budget`] of its training outputs'
    /// token lengths, or `eval.max_new_tokens` for all without `eval.budget_from_data`.
    pub(super) fn generation_budgets(
        &self,
        learner: &dyn ContinualLearner,
    ) -> Result<Vec<usize>, RunError> {
        let eval = &self.config.eval;
        self.dataset
            .tasks
            .iter()
            .map(|task| {
                if !eval.budget_from_data {
                    return Ok(eval.max_new_tokens);
                }
                let golds: Vec<String> = task
                    .train
                    .iter()
                    .flat_map(|e| e.output.iter().cloned())
                    .collect();
                let lengths =
                    learner
                        .token_counts(&golds)
                        .map_err(|source| RunError::ContinualLearner {
                            stage: 0,
                            what: "counting gold output tokens",
                            error: source,
                        })?;
                Ok(eval::generation_budget(
                    &lengths,
                    eval.budget_quantile,
                    eval.budget_margin,
                    eval.max_new_tokens,
                ))
            })
            .collect()
    }

    pub(super) fn zero_shot_pass(
        &mut self,
        learner: &mut dyn ContinualLearner,
        progress: &mut Progress,
    ) -> Result<(), RunError> {
        progress.event(&Event::ZeroShot {
            tasks: self.dataset.tasks.len(),
        });
        let started = Instant::now();
        let eval = self.evaluate(learner, progress, 0, self.dataset.tasks.len())?;
        let eval_seconds = started.elapsed().as_secs_f64();
        self.zero_shot = Some(eval.iter().map(|e| e.rouge_l).collect());
        let record = StageRecord {
            schema_version: SCHEMA_VERSION,
            stage: 0,
            task: String::new(),
            plan: StagePlan {
                stage: 0,
                task: String::new(),
                budget: 0,
                previous: Vec::new(),
            },
            replayed: Vec::new(),
            train_examples: 0,
            loss: Vec::new(),
            eval,
            wall_seconds: eval_seconds,
            train_seconds: None,
            eval_seconds: Some(eval_seconds),
        };
        artifact::write_atomic(&self.folder.stage(0), &record)?;
        Ok(())
    }

    pub(super) fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            alpha: self.config.strategy.alpha,
            strategy: match self.config.strategy.name {
                RunStrategy::Sequential(strategy) => strategy,
                RunStrategy::Multitask | RunStrategy::Single => Strategy::None,
            },
            seed: self.config.run.seed,
            similarity: self.config.strategy.similarity,
            tags: self.config.strategy.effective_tag_normalizer(),
        }
    }

    /// One stage: embed, plan the replay, mix, train, evaluate, write.
    pub(super) fn stage(
        &mut self,
        learner: &mut dyn ContinualLearner,
        progress: &mut Progress,
        stage: usize,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        if self.config.strategy.name == RunStrategy::Single {
            learner
                .reset()
                .map_err(|source| RunError::ContinualLearner {
                    stage,
                    what: "resetting to the base model",
                    error: source,
                })?;
        }
        let seen = self.seen_tasks(stage);
        let embeddings = self.stage_embeddings(learner, stage, seen)?;
        let plan = self.plan_replay(&embeddings, stage)?;
        let (replay, replayed) = self.replay_examples(&plan);
        let mix = self.training_mix(stage, replay);
        progress.event(&Event::StageStarted {
            stage,
            stages: self.total_stages(),
            task: plan.task.clone(),
            examples: mix.len(),
            replayed: replayed.iter().map(|r| r.ids.len()).sum(),
        });
        let task_distances = self.method_distances(&embeddings, stage)?;
        let training = Instant::now();
        let loss = self.train(learner, progress, stage, &plan.task, &mix, task_distances)?;
        let train_seconds = training.elapsed().as_secs_f64();
        let evaluating = Instant::now();
        let eval = self.evaluate(learner, progress, stage, seen)?;
        let eval_seconds = evaluating.elapsed().as_secs_f64();
        let record = StageRecord {
            schema_version: SCHEMA_VERSION,
            stage,
            task: plan.task.clone(),
            plan,
            replayed,
            train_examples: mix.len(),
            loss,
            eval,
            wall_seconds: started.elapsed().as_secs_f64(),
            train_seconds: Some(train_seconds),
            eval_seconds: Some(eval_seconds),
        };
        let wall_seconds = record.wall_seconds;
        self.write_stage(learner, record, embeddings)?;
        progress.event(&Event::StageFinished {
            stage,
            wall_seconds,
        });
        Ok(())
    }

    /// The replay plan of `stage` over the seen tasks' `embeddings` (an empty plan for the one
    /// `multitask` stage, which trains on everything).
    pub(super) fn plan_replay(
        &self,
        embeddings: &[TaskEmbeddings],
        stage: usize,
    ) -> Result<StagePlan, RunError> {
        if self.config.strategy.name == RunStrategy::Multitask {
            return Ok(StagePlan {
                stage,
                task: "multitask".to_owned(),
                budget: 0,
                previous: Vec::new(),
            });
        }
        plan_last_stage(embeddings, &self.plan_config())
            .map_err(|source| RunError::Plan { stage, source })
    }

    /// The training data of `stage`: the trained tasks' examples plus `replay`, shuffled by a
    /// stream seeded by (run seed, stage).
    pub(super) fn training_mix(&self, stage: usize, replay: Vec<Example>) -> Vec<Example> {
        let mut mix: Vec<Example> = self
            .trained_tasks(stage)
            .flat_map(|t| self.dataset.tasks[t].train.iter().cloned())
            .chain(replay)
            .collect();
        mix.shuffle(&mut ChaCha8Rng::seed_from_u64(inscl::seed::derive(
            self.config.run.seed,
            "shuffle",
            stage,
        )));
        mix
    }

    /// The plan's instances as examples, and their ids per previous task.
    pub(super) fn replay_examples(
        &self,
        plan: &StagePlan,
    ) -> (Vec<Example>, Vec<ReplayedInstances>) {
        let mut examples = Vec::new();
        let mut replayed = Vec::new();
        for previous in plan.previous.iter().filter(|p| p.quota > 0) {
            let task = self
                .dataset
                .tasks
                .iter()
                .position(|t| t.name == previous.task)
                .expect("the plan names tasks of the run");
            let mut ids = Vec::with_capacity(previous.quota);
            for (instruction, group) in previous.instructions.iter().zip(&self.groups[task]) {
                for &local in &instruction.instances {
                    let example = &self.dataset.tasks[task].train[group.instances[local as usize]];
                    ids.push(example.id.clone());
                    examples.push(example.clone());
                }
            }
            replayed.push(ReplayedInstances {
                task: previous.task.clone(),
                ids,
            });
        }
        (examples, replayed)
    }

    /// The pairwise task distances a method that reads task similarity needs (same embeddings
    /// and similarity settings as the replay plan); empty for the other methods.
    pub(super) fn method_distances(
        &self,
        embeddings: &[TaskEmbeddings],
        stage: usize,
    ) -> Result<Vec<Vec<f64>>, RunError> {
        if !self.config.method.settings().reads_task_similarity() {
            return Ok(Vec::new());
        }
        inscl::plan::task_distances(embeddings, &self.config.strategy.similarity)
            .map_err(|source| RunError::Plan { stage, source })
    }

    pub(super) fn train(
        &self,
        learner: &mut dyn ContinualLearner,
        progress: &mut Progress,
        stage: usize,
        task: &str,
        mix: &[Example],
        task_distances: Vec<Vec<f64>>,
    ) -> Result<Vec<inscl::artifact::LossPoint>, RunError> {
        let plan = StageTraining {
            stage,
            task: task.to_owned(),
            task_distances,
            seed: inscl::seed::derive(self.config.run.seed, "train", stage),
            config: self.config.training.clone(),
        };
        let mut bad_loss: Option<(usize, f64)> = None;
        let interrupt = self.interrupt.clone();
        let loss = learner
            .train(mix, &plan, &mut |report: &StepReport| {
                progress.event(&Event::Step {
                    stage,
                    step: report.step,
                    total_steps: report.total_steps,
                    loss: report.loss,
                    lr: report.lr,
                    tokens_per_s: report.tokens_per_s,
                });
                if !report.loss.is_finite() {
                    bad_loss.get_or_insert((report.step, report.loss));
                    return ControlFlow::Break(());
                }
                faults::point("train-step");
                if interrupt.load(Ordering::SeqCst) {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })
            .map_err(|source| RunError::ContinualLearner {
                stage,
                what: "training",
                error: source,
            })?;
        let bad_loss = bad_loss.or_else(|| {
            loss.iter()
                .find(|p| !p.loss.is_finite())
                .map(|p| (p.step, p.loss))
        });
        if let Some((step, loss)) = bad_loss {
            return Err(RunError::NonFiniteLoss {
                stage,
                task: task.to_owned(),
                step,
                loss,
            });
        }
        self.interrupted(stage)?;
        Ok(loss)
    }

    /// Evaluates the first `seen` tasks.
    pub(super) fn evaluate(
        &self,
        learner: &mut dyn ContinualLearner,
        progress: &mut Progress,
        stage: usize,
        seen: usize,
    ) -> Result<Vec<TaskEval>, RunError> {
        let mut evals = Vec::with_capacity(seen);
        for (task, &budget) in self.dataset.tasks[..seen].iter().zip(&self.budgets) {
            progress.event(&Event::EvalStarted {
                stage,
                task: task.name.clone(),
                instances: task.test.len(),
            });
            let interrupt = self.interrupt.clone();
            let started = Instant::now();
            let eval =
                eval::evaluate_task(learner, task, budget, self.config.eval.stem, &mut |done| {
                    progress.event(&Event::EvalProgress { done });
                    faults::point("eval-step");
                    if interrupt.load(Ordering::SeqCst) {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .map_err(|source| RunError::ContinualLearner {
                    stage,
                    what: "evaluation",
                    error: source,
                })?;
            let Some(eval) = eval else {
                return Err(RunError::Interrupted {
                    stage,
                    folder: self.folder.root().display().to_string(),
                });
            };
            progress.event(&Event::EvalFinished {
                stage,
                task: task.name.clone(),
                rouge_l: eval.rouge_l,
                exact_match: eval.exact_match,
                seconds: started.elapsed().as_secs_f64(),
                generation: learner.last_generation_stats(),
            });
            evals.push(eval);
        }
        Ok(evals)
    }
}
