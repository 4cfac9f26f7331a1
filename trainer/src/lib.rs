//! Library of the `trainer` binary: continual instruction tuning with InsCL replay.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the TOML configuration of `trainer run` (embedded default, file, `--set` overrides) |
//! | [`data`] | SuperNI / benchmark / category / Alpaca data, orders, splits, caps |
//! | [`invalid`] | the out-of-range value error every configuration check returns |
//! | [`tags`] | InsInfo taggers: SuperNI metadata, YAKE keyphrases, external tag files |
//! | [`learner`] | the [`learner::ContinualLearner`] trait the model implements |
//! | [`memory_plan`] | the estimated peak memory of a run, checked before the model loads |
//! | [`model`] | the burn LLaMA as a [`learner::ContinualLearner`]: checkpoints, device, prompt format |
//! | [`method`] | continual-learning methods, one file each with its `[method]` settings, and their registry |
//! | [`run`] | the stage loop, artifacts, resume |
//! | [`progress`] | progress bars and JSON-lines events |
//! | [`report`] | the R matrix / summary printout and `trainer compare` |

pub mod config;
pub mod data;
pub mod invalid;
pub mod learner;
pub mod memory_plan;
pub mod method;
pub mod model;
pub mod progress;
pub mod report;
pub mod run;
pub mod study;
pub mod tags;
