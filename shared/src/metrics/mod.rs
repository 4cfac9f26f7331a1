//! Evaluation metrics: per-instance text scores and continual-learning summaries.
//!
//! - [`rouge`]: ROUGE-L exactly as Google's `rouge-score` 0.1.2 computes it (with the NLTK
//!   Porter stemmer of [`porter`] when stemming) and SuperNI's exact match, each maximised
//!   over the references of an instance.
//! - [`continual`]: the metrics of continual instruction tuning over the score matrix
//!   `R[i][j]` (score on task `j` after training stage `i`): average performance, forgetting
//!   (F.Ra), backward and forward transfer, InsCL's relative gain and per-task forgetting rate.
//! - [`study`]: the statistics of one metric over runs (mean, sd, t-interval) and of two
//!   strategies' paired differences (bootstrap interval, exact sign-flip p-value).

pub mod continual;
pub mod porter;
pub mod rouge;
pub mod study;

pub use continual::{ContinualSummary, MetricsError, ScoreMatrix};
pub use rouge::{RougeScore, exact_match, rouge_l, rouge_l_max, tokenize};
