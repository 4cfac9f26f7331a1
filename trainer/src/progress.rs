//! Progress of a run: [`Event`]s from the runner, shown as `indicatif` bars (stages, training
//! steps with loss / tokens per second / ETA, evaluation) and/or written as JSON lines
//! (`{"event": "step", ...}`) for scripts. Logs go through `tracing`.

use std::io::Write;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run (or its resumption) starts.
    RunStarted {
        /// The run folder.
        folder: String,
        /// The strategy name.
        strategy: String,
        /// Stages of the run.
        stages: usize,
        /// Stages already finished (resume).
        finished: usize,
        /// The compute device in words.
        device: String,
    },
    /// The `llm` tagger finished a batch: `done` of `total` instructions tagged.
    Tagging {
        /// Items finished so far.
        done: usize,
        /// Items in all.
        total: usize,
    },
    /// The `llm` tags are ready.
    TagsReady {
        /// The tagging chat model.
        model: String,
        /// Instructions to tag.
        instructions: usize,
        /// Instructions asked a second time after an unusable reply.
        retries: usize,
        /// Instructions whose replies were both unusable (keyphrases instead).
        fallbacks: usize,
        /// Tagged instructions per second of generation.
        instructions_per_s: f64,
    },
    /// The zero-shot evaluation before stage 1 starts.
    ZeroShot {
        /// Tasks evaluated.
        tasks: usize,
    },
    /// A stage starts.
    StageStarted {
        /// 1-based stage (0 = zero-shot).
        stage: usize,
        /// Stages of the run.
        stages: usize,
        /// The task trained (or evaluated).
        task: String,
        /// Size of the training mix (task data + replay).
        examples: usize,
        /// Replayed instances in the mix.
        replayed: usize,
    },
    /// One optimiser step finished.
    Step {
        /// 1-based stage (0 = zero-shot).
        stage: usize,
        /// Optimiser step within the stage, 1-based.
        step: usize,
        /// Optimiser steps of the stage.
        total_steps: usize,
        /// Mean token cross-entropy of the step (nats).
        loss: f64,
        /// Learning rate of the step.
        lr: f64,
        /// Training throughput (prompt + response tokens per second).
        tokens_per_s: f64,
    },
    /// Evaluation of one task starts.
    EvalStarted {
        /// 1-based stage (0 = zero-shot).
        stage: usize,
        /// The task trained (or evaluated).
        task: String,
        /// Test instances of the task.
        instances: usize,
    },
    /// Examples of the current evaluation finished so far.
    EvalProgress {
        /// Items finished so far.
        done: usize,
    },
    /// Evaluation of one task finished.
    EvalFinished {
        /// 1-based stage (0 = zero-shot).
        stage: usize,
        /// The task trained (or evaluated).
        task: String,
        /// ROUGE-L × 100.
        rouge_l: f64,
        /// Exact match × 100.
        exact_match: f64,
    },
    /// A stage's artifacts are written.
    StageFinished {
        /// 1-based stage (0 = zero-shot).
        stage: usize,
        /// Wall-clock seconds of the stage.
        wall_seconds: f64,
    },
    /// The run finished.
    RunFinished {
        /// The run folder.
        folder: String,
        /// Average performance AP (ROUGE-L × 100).
        ap: f64,
        /// Forgetting rate F.Ra.
        forgetting: f64,
        /// Backward transfer BWT.
        bwt: f64,
        /// Forward transfer FWT, without zero-shot scores `None`.
        fwt: Option<f64>,
    },
}

/// Where events go.
pub struct Progress {
    bars: Option<Bars>,
    json: Option<Mutex<Box<dyn Write + Send>>>,
}

struct Bars {
    multi: MultiProgress,
    stages: ProgressBar,
    current: Option<ProgressBar>,
}

impl Progress {
    /// No bars, no JSON (tests, `--quiet` without `--log-json`).
    pub fn quiet() -> Self {
        Progress {
            bars: None,
            json: None,
        }
    }

    /// Bars on stderr unless `quiet`; JSON lines to `json` if given.
    ///
    /// # Panics
    /// Never: the bar templates are fixed and valid.
    pub fn new(quiet: bool, json: Option<Box<dyn Write + Send>>) -> Self {
        let bars = (!quiet).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let stages = multi.add(ProgressBar::new(0));
            stages.set_style(
                ProgressStyle::with_template("stages {bar:30.cyan/blue} {pos}/{len} {msg}")
                    .expect("valid template"),
            );
            Bars {
                multi,
                stages,
                current: None,
            }
        });
        Progress {
            bars,
            json: json.map(Mutex::new),
        }
    }

    /// A sub-bar of the multi-progress, replacing the previous one.
    fn sub_bar<'b>(bars: &'b mut Bars, len: usize, template: &str) -> &'b ProgressBar {
        if let Some(old) = bars.current.take() {
            old.finish_and_clear();
        }
        let bar = bars.multi.add(ProgressBar::new(len as u64));
        bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
        bars.current.insert(bar)
    }

    /// Shows / logs one event.
    ///
    /// # Panics
    /// Never: every event serialises to JSON.
    pub fn event(&mut self, event: &Event) {
        if let Some(json) = &self.json {
            let mut out = json
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Progress output must never stop a run: a closed log pipe only loses lines.
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(event).expect("events serialise")
            );
            let _ = out.flush();
        }
        if let Event::TagsReady {
            model,
            instructions,
            retries,
            fallbacks,
            instructions_per_s,
        } = event
        {
            self.println(&format!(
                "llm tags: {instructions} instructions by {model} ({instructions_per_s:.2} instructions/s), \
                 {retries} asked twice, {fallbacks} fell back to keyphrases"
            ));
        }
        let Some(bars) = &mut self.bars else {
            return;
        };
        match event {
            Event::RunStarted {
                stages, finished, ..
            } => {
                bars.stages.set_length(*stages as u64);
                bars.stages.set_position(*finished as u64);
            }
            Event::Tagging { done, total } => {
                if bars.current.is_none() || *done == 0 {
                    Self::sub_bar(
                        bars,
                        *total,
                        "tags   {bar:30.magenta/white} {pos}/{len} eta {eta}",
                    );
                }
                if let Some(bar) = &bars.current {
                    bar.set_position(*done as u64);
                }
            }
            Event::ZeroShot { .. } => bars.stages.set_message("zero-shot evaluation"),
            Event::StageStarted { stage, task, .. } => {
                bars.stages.set_position(*stage as u64 - 1);
                bars.stages.set_message(task.clone());
            }
            Event::Step {
                step,
                total_steps,
                loss,
                tokens_per_s,
                ..
            } => {
                if *step == 1 || bars.current.is_none() {
                    Self::sub_bar(
                        bars,
                        *total_steps,
                        "train  {bar:30.green/white} {pos}/{len} {msg} eta {eta}",
                    );
                }
                if let Some(bar) = &bars.current {
                    bar.set_position(*step as u64);
                    bar.set_message(format!("loss {loss:.4} {tokens_per_s:.0} tok/s"));
                }
            }
            Event::EvalStarted {
                task, instances, ..
            } => {
                let bar = Self::sub_bar(
                    bars,
                    *instances,
                    "eval   {bar:30.yellow/white} {pos}/{len} {msg} eta {eta}",
                );
                bar.set_message(task.clone());
            }
            Event::EvalProgress { done } => {
                if let Some(bar) = &bars.current {
                    bar.set_position(*done as u64);
                }
            }
            Event::EvalFinished { .. } | Event::TagsReady { .. } => {}
            Event::StageFinished { stage, .. } => bars.stages.set_position(*stage as u64),
            Event::RunFinished { .. } => {
                if let Some(bar) = bars.current.take() {
                    bar.finish_and_clear();
                }
                bars.stages.finish();
            }
        }
    }

    /// Prints a line above the bars (or to stderr without bars).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}
