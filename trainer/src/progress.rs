//! Progress of a run: [`Event`]s from the runner, shown as `indicatif` bars (stages, training
//! steps with loss / tokens per second / ETA, evaluation) on a terminal, as plain lines
//! ([`Lines`]: one per stage event and one about every 30 s, as Hugging Face Trainer's logs)
//! when stderr is a file or a pipe, and/or written as JSON lines (`{"event": "step", ...}`)
//! for scripts. Logs go through `tracing`.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        /// Wall-clock seconds of the task's evaluation.
        seconds: f64,
        /// Where the generation's time went, when the learner measures it.
        #[serde(skip_serializing_if = "Option::is_none")]
        generation: Option<crate::learner::GenerationStats>,
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
    lines: Option<Lines>,
    json: Option<Mutex<Box<dyn Write + Send>>>,
}

/// How often [`Lines`] reports a running phase (training, evaluation, tagging) on stderr.
pub const LINE_INTERVAL: Duration = Duration::from_secs(30);

/// Plain progress lines for a stderr that is not a terminal (`scripts/run > log`, a pipe):
/// one line per stage event (run, stage and evaluation start and end, the stage's last
/// step), and while a phase runs one line at most every `interval` with the stage,
/// step / total, loss, tokens/s and ETA, as Hugging Face Trainer logs every `logging_steps`.
/// The clock is injectable, so tests need no timers.
pub struct Lines {
    out: Box<dyn Write + Send>,
    interval: Duration,
    /// Time since some fixed start.
    clock: Box<dyn FnMut() -> Duration + Send>,
    /// When the current phase (a stage's training, an evaluation, tagging) started, and when
    /// its last line was written.
    phase_start: Duration,
    last_line: Duration,
    /// `stage s/n task`, the prefix of training and evaluation lines.
    stage: String,
    stages: usize,
    /// Task and size of the evaluation running.
    eval: Option<(String, usize)>,
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
            lines: None,
            json: None,
        }
    }

    /// Unless `quiet`: bars on a terminal's stderr, else plain [`Lines`] on stderr every
    /// [`LINE_INTERVAL`]; JSON lines to `json` if given.
    ///
    /// # Panics
    /// Never: the bar templates are fixed and valid.
    pub fn new(quiet: bool, json: Option<Box<dyn Write + Send>>) -> Self {
        if !quiet && !std::io::stderr().is_terminal() {
            let start = Instant::now();
            return Progress {
                bars: None,
                lines: Some(Lines::new(
                    Box::new(std::io::stderr()),
                    LINE_INTERVAL,
                    Box::new(move || start.elapsed()),
                )),
                json: json.map(Mutex::new),
            };
        }
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
            lines: None,
            json: json.map(Mutex::new),
        }
    }

    /// Plain lines to `lines` (and no bars or JSON).
    pub fn with_lines(lines: Lines) -> Self {
        Progress {
            bars: None,
            lines: Some(lines),
            json: None,
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
    // Long: one match arm per event kind.
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
        if let Some(lines) = &mut self.lines {
            lines.event(event);
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
    pub fn println(&mut self, line: &str) {
        match (&self.bars, &mut self.lines) {
            (Some(bars), _) => {
                let _ = bars.multi.println(line);
            }
            (None, Some(lines)) => lines.write(line),
            (None, None) => eprintln!("{line}"),
        }
    }
}

impl Lines {
    /// Lines to `out`, a running phase reported every `interval` of `clock` (time since a
    /// fixed start).
    pub fn new(
        out: Box<dyn Write + Send>,
        interval: Duration,
        clock: Box<dyn FnMut() -> Duration + Send>,
    ) -> Self {
        Lines {
            out,
            interval,
            clock,
            phase_start: Duration::ZERO,
            last_line: Duration::ZERO,
            stage: String::new(),
            stages: 0,
            eval: None,
        }
    }

    /// Writes one line; a closed stream only loses it.
    fn write(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }

    /// A new phase starts now.
    fn start_phase(&mut self) {
        let now = (self.clock)();
        self.phase_start = now;
        self.last_line = now;
    }

    /// Whether a periodic line is due (`last` forces it: the end of a phase); if so, the
    /// estimated time left for `done` of `total`.
    fn due(&mut self, done: usize, total: usize, last: bool) -> Option<String> {
        let now = (self.clock)();
        if !last && now.saturating_sub(self.last_line) < self.interval {
            return None;
        }
        self.last_line = now;
        let elapsed = now.saturating_sub(self.phase_start).as_secs_f64();
        let left = elapsed / done.max(1) as f64 * total.saturating_sub(done) as f64;
        Some(duration(left))
    }

    /// The line(s) of one event.
    // Long: one match arm per event kind.
    fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                folder,
                strategy,
                stages,
                finished,
                device,
            } => {
                self.stages = *stages;
                self.write(&format!(
                    "run {folder}: {strategy}, {stages} stage(s), {finished} finished, on {device}"
                ));
            }
            Event::Tagging { done, total } => {
                if *done <= 1 && self.eval.is_none() && self.stage.is_empty() {
                    self.start_phase();
                }
                if let Some(eta) = self.due(*done, *total, false) {
                    self.write(&format!("tags {done}/{total}, eta {eta}"));
                }
            }
            Event::TagsReady { .. } => {}
            Event::ZeroShot { tasks } => {
                self.stage = "zero-shot".to_owned();
                self.write(&format!("zero-shot evaluation of {tasks} task(s)"));
            }
            Event::StageStarted {
                stage,
                stages,
                task,
                examples,
                replayed,
            } => {
                self.stage = format!("stage {stage}/{stages} {task}");
                self.write(&format!(
                    "{}: training on {examples} examples ({replayed} replayed)",
                    self.stage
                ));
                self.start_phase();
            }
            Event::Step {
                step,
                total_steps,
                loss,
                lr,
                tokens_per_s,
                ..
            } => {
                if let Some(eta) = self.due(*step, *total_steps, step == total_steps) {
                    self.write(&format!(
                        "{}: step {step}/{total_steps}, loss {loss:.4}, lr {lr:.2e}, {tokens_per_s:.0} tokens/s, eta {eta}",
                        self.stage
                    ));
                }
            }
            Event::EvalStarted {
                task, instances, ..
            } => {
                self.eval = Some((task.clone(), *instances));
                self.start_phase();
            }
            Event::EvalProgress { done } => {
                let Some((task, instances)) = self.eval.clone() else {
                    return;
                };
                if let Some(eta) = self.due(*done, instances, false) {
                    self.write(&format!(
                        "{}: evaluating {task}: {done}/{instances}, eta {eta}",
                        self.stage
                    ));
                }
            }
            Event::EvalFinished {
                task,
                rouge_l,
                exact_match,
                ..
            } => {
                self.eval = None;
                self.write(&format!(
                    "{}: eval {task}: ROUGE-L {rouge_l:.2}, exact match {exact_match:.2}",
                    self.stage
                ));
            }
            Event::StageFinished {
                stage,
                wall_seconds,
            } => {
                self.write(&format!(
                    "stage {stage}/{} finished in {}",
                    self.stages,
                    duration(*wall_seconds)
                ));
            }
            Event::RunFinished {
                folder,
                ap,
                forgetting,
                bwt,
                fwt,
            } => {
                let fwt = fwt.map_or_else(|| "-".to_owned(), |f| format!("{f:.2}"));
                self.write(&format!(
                    "run {folder} finished: AP {ap:.2}, F.Ra {forgetting:.2}, BWT {bwt:.2}, FWT {fwt}"
                ));
            }
        }
    }
}

/// Seconds as `42s`, `3m05s` or `1h02m`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn step(step: usize, loss: f64) -> Event {
        Event::Step {
            stage: 1,
            step,
            total_steps: 8,
            loss,
            lr: 5e-4,
            tokens_per_s: 812.4,
        }
    }

    #[test]
    fn plain_lines_per_stage_event_and_every_interval() {
        let out = Shared::default();
        // The clock reads seconds set by the test: no timers.
        let now = Arc::new(AtomicU64::new(0));
        let clock = now.clone();
        let mut progress = Progress::with_lines(Lines::new(
            Box::new(out.clone()),
            Duration::from_secs(30),
            Box::new(move || Duration::from_secs(clock.load(Ordering::SeqCst))),
        ));
        let at = |seconds: u64, progress: &mut Progress, event: Event| {
            now.store(seconds, Ordering::SeqCst);
            progress.event(&event);
        };
        at(
            0,
            &mut progress,
            Event::RunStarted {
                folder: "runs/x".into(),
                strategy: "inscl".into(),
                stages: 2,
                finished: 0,
                device: "cpu".into(),
            },
        );
        at(
            5,
            &mut progress,
            Event::StageStarted {
                stage: 1,
                stages: 2,
                task: "Classification".into(),
                examples: 64,
                replayed: 0,
            },
        );
        // Steps at 15 s, 25 s (not due), 36 s (due: 31 s since the stage started), 50 s (not
        // due), 70 s (due), and the last step (always).
        for (seconds, n) in [(15, 1), (25, 2), (36, 3), (50, 4), (70, 6), (80, 8)] {
            at(seconds, &mut progress, step(n, 2.0 / n as f64));
        }
        at(
            81,
            &mut progress,
            Event::EvalStarted {
                stage: 1,
                task: "Classification".into(),
                instances: 16,
            },
        );
        at(100, &mut progress, Event::EvalProgress { done: 4 });
        at(121, &mut progress, Event::EvalProgress { done: 8 });
        at(
            130,
            &mut progress,
            Event::EvalFinished {
                stage: 1,
                task: "Classification".into(),
                rouge_l: 56.25,
                exact_match: 50.0,
                seconds: 49.0,
                generation: None,
            },
        );
        at(
            131,
            &mut progress,
            Event::StageFinished {
                stage: 1,
                wall_seconds: 126.0,
            },
        );
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "run runs/x: inscl, 2 stage(s), 0 finished, on cpu\n\
             stage 1/2 Classification: training on 64 examples (0 replayed)\n\
             stage 1/2 Classification: step 3/8, loss 0.6667, lr 5.00e-4, 812 tokens/s, eta 52s\n\
             stage 1/2 Classification: step 6/8, loss 0.3333, lr 5.00e-4, 812 tokens/s, eta 22s\n\
             stage 1/2 Classification: step 8/8, loss 0.2500, lr 5.00e-4, 812 tokens/s, eta 0s\n\
             stage 1/2 Classification: evaluating Classification: 8/16, eta 40s\n\
             stage 1/2 Classification: eval Classification: ROUGE-L 56.25, exact match 50.00\n\
             stage 1/2 finished in 2m06s\n"
        );
    }

    #[test]
    fn durations_read_as_a_person_would() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(65.0), "1m05s");
        assert_eq!(duration(3725.0), "1h02m");
    }
}
