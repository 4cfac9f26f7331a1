//! `[eval]`: generation limits and metric settings.

use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// `[eval]`: generation limits and metric settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Generation budget per test instance, in tokens; with `budget_from_data` the cap of
    /// each task's own budget.
    pub max_new_tokens: usize,
    /// Each task's budget from its gold outputs: the `budget_quantile` quantile of the token
    /// lengths of its training split's outputs plus `budget_margin`, at most `max_new_tokens`
    /// ([`crate::run::eval::generation_budget`]).
    pub budget_from_data: bool,
    /// In (0, 1].
    pub budget_quantile: f64,
    /// Tokens added to the quantile (room for the end-of-turn token and longer answers).
    pub budget_margin: usize,
    /// Rows decoding at once ([`llama::generate::generate_queued`]: a row that stops hands its
    /// place to the next prompt).
    pub batch_size: usize,
    /// Evaluate every task before stage 1 (needed for FWT).
    pub zero_shot: bool,
    /// Porter stemming inside ROUGE-L, as SuperNI.
    pub stem: bool,
    /// Folder of a finished `single` run; its diagonal are the upper bounds of Relative Gain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_bounds: Option<String>,
}

impl EvalConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.budget_quantile > 0.0 && self.budget_quantile <= 1.0,
            "eval.budget_quantile",
            self.budget_quantile,
            "must be in (0, 1]",
        )?;
        check(
            self.max_new_tokens >= 1,
            "eval.max_new_tokens",
            self.max_new_tokens,
            "must be at least 1",
        )?;
        check(
            self.batch_size >= 1,
            "eval.batch_size",
            self.batch_size,
            "must be at least 1",
        )
    }
}
