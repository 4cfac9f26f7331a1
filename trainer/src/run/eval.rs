//! Evaluation of one task: greedy generation on its test split, scored per instance with
//! SuperNI's metrics (ROUGE-L F ×100 max over references, exact match ×100).

use std::ops::ControlFlow;

use inscl::artifact::{Prediction, TaskEval};
use inscl::metrics::{exact_match, rouge_l_max};

use crate::data::TaskData;
use crate::learner::Learner;

/// Generates and scores `task`'s test split. `stem` applies Porter stemming inside ROUGE-L
/// (SuperNI's `compute_metrics` uses `rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True)`).
/// Returns `Ok(None)` when `on_done` stopped the generation early.
///
/// # Errors
/// The learner's failure, or a learner that returns a different number of outputs.
pub fn evaluate_task(
    learner: &mut dyn Learner,
    task: &TaskData,
    max_new_tokens: usize,
    stem: bool,
    on_done: &mut dyn FnMut(usize) -> ControlFlow<()>,
) -> anyhow::Result<Option<TaskEval>> {
    let mut stopped = false;
    let outputs = learner.generate(&task.test, max_new_tokens, &mut |done| {
        let flow = on_done(done);
        stopped |= flow.is_break();
        flow
    })?;
    if stopped {
        return Ok(None);
    }
    anyhow::ensure!(
        outputs.len() == task.test.len(),
        "task \"{}\": the learner generated {} outputs for {} test instances",
        task.name,
        outputs.len(),
        task.test.len()
    );
    let predictions: Vec<Prediction> = task
        .test
        .iter()
        .zip(outputs)
        .map(|(example, prediction)| Prediction {
            id: example.id.clone(),
            rouge_l: rouge_l_max(&prediction, &example.output, stem),
            exact_match: exact_match(&prediction, &example.output),
            references: example.output.clone(),
            prediction,
        })
        .collect();
    let n = predictions.len().max(1) as f64;
    Ok(Some(TaskEval {
        task: task.name.clone(),
        rouge_l: predictions.iter().map(|p| p.rouge_l).sum::<f64>() / n,
        exact_match: predictions.iter().map(|p| p.exact_match).sum::<f64>() / n,
        predictions,
    }))
}
