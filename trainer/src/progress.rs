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
        folder: String,
        strategy: String,
        stages: usize,
        /// Stages already finished (resume).
        finished: usize,
        device: String,
    },
    /// The `llm` tagger finished a batch: `done` of `total` instructions tagged.
    Tagging { done: usize, total: usize },
    /// The `llm` tags are ready.
    TagsReady {
        model: String,
        instructions: usize,
        /// Instructions asked a second time after an unusable reply.
        retries: usize,
        /// Instructions whose replies were both unusable (keyphrases instead).
        fallbacks: usize,
        /// Tagged instructions per second of generation.
        instructions_per_s: f64,
    },
    /// The zero-shot evaluation before stage 1 starts.
    ZeroShot { tasks: usize },
    /// A stage starts.
    StageStarted {
        stage: usize,
        stages: usize,
        task: String,
        /// Size of the training mix (task data + replay).
        examples: usize,
        replayed: usize,
    },
    /// One optimiser step finished.
    Step {
        stage: usize,
        step: usize,
        total_steps: usize,
        loss: f64,
        lr: f64,
        tokens_per_s: f64,
    },
    /// Evaluation of one task starts.
    EvalStarted {
        stage: usize,
        task: String,
        instances: usize,
    },
    /// Examples of the current evaluation finished so far.
    EvalProgress { done: usize },
    /// Evaluation of one task finished.
    EvalFinished {
        stage: usize,
        task: String,
        rouge_l: f64,
        exact_match: f64,
        /// Wall-clock seconds of the task's evaluation.
        seconds: f64,
        /// Where the generation's time went, when the learner measures it.
        #[serde(skip_serializing_if = "Option::is_none")]
        generation: Option<crate::learner::GenerationStats>,
    },
    /// A stage's artifacts are written.
    StageFinished { stage: usize, wall_seconds: f64 },
    /// The run finished.
    RunFinished {
        folder: String,
        ap: f64,
        forgetting: f64,
        bwt: f64,
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
    pub fn event(&mut self, event: &Event) {
        if let Some(json) = &self.json {
            let mut out = json.lock().unwrap_or_else(|e| e.into_inner());
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
