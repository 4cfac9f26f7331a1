//! Evaluation of one task: greedy generation on its test split, scored per instance with
//! SuperNI's metrics (ROUGE-L F ×100 max over references, exact match ×100).

use std::ops::ControlFlow;

use inscl::artifact::{Prediction, TaskEval};
use inscl::metrics::{exact_match, rouge_l_max};

use crate::data::TaskData;
use crate::learner::ContinualLearner;

/// A task's generation budget in tokens: the `quantile` quantile (nearest rank: the
/// ⌈quantile·n⌉-th smallest) of its gold output lengths `lengths`, plus `margin`, at most
/// `cap` and at least 1. No lengths: `cap`.
///
/// Why: a fixed budget either cuts long golds (summaries; ROUGE-L then drops for reasons that
/// have nothing to do with forgetting) or makes every label task pay for the longest one.
pub fn generation_budget(lengths: &[usize], quantile: f64, margin: usize, cap: usize) -> usize {
    if lengths.is_empty() {
        return cap.max(1);
    }
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    (sorted[rank - 1] + margin).clamp(1, cap.max(1))
}

/// Generates and scores `task`'s test split. `stem` applies Porter stemming inside ROUGE-L
/// (SuperNI's `compute_metrics` uses `rouge_scorer.RougeScorer(['rougeL'], use_stemmer=True)`).
/// Returns `Ok(None)` when `on_done` stopped the generation early.
///
/// # Errors
/// The learner's failure, or a learner that returns a different number of outputs.
pub fn evaluate_task(
    learner: &mut dyn ContinualLearner,
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
    let routing_accuracy = learner.last_routes().map(|routes| {
        let hits = routes
            .iter()
            .filter(|tasks| tasks.contains(&task.name))
            .count();
        100.0 * hits as f64 / n
    });
    Ok(Some(TaskEval {
        task: task.name.clone(),
        rouge_l: predictions.iter().map(|p| p.rouge_l).sum::<f64>() / n,
        exact_match: predictions.iter().map(|p| p.exact_match).sum::<f64>() / n,
        max_new_tokens: Some(max_new_tokens),
        routing_accuracy,
        predictions,
    }))
}

#[cfg(test)]
mod tests {
    use super::generation_budget;

    #[test]
    fn budget_is_a_nearest_rank_quantile_plus_margin_capped() {
        let lengths: Vec<usize> = (1..=20).collect();
        // ⌈0.95 × 20⌉ = 19th smallest = 19, + 8.
        assert_eq!(generation_budget(&lengths, 0.95, 8, 128), 27);
        assert_eq!(generation_budget(&lengths, 1.0, 0, 128), 20);
        assert_eq!(generation_budget(&lengths, 0.95, 8, 16), 16);
        assert_eq!(generation_budget(&[3, 1, 2], 0.5, 0, 128), 2);
        assert_eq!(generation_budget(&[], 0.95, 8, 64), 64);
        assert_eq!(generation_budget(&[0], 0.95, 0, 64), 1);
    }
}
