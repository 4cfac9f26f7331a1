//! Plain sequential fine-tuning: the reference every other method is compared with.

use llama::lora::LoraConfig;
use serde::{Deserialize, Serialize};

use super::{ContinualMethod, MethodSettings};

/// `[method] name = "seq"` (the default): no settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeqConfig {}

impl MethodSettings for SeqConfig {
    fn build(&self, _lora: Option<&LoraConfig>) -> anyhow::Result<Box<dyn ContinualMethod>> {
        Ok(Box::new(Sequential))
    }
}

/// Plain sequential fine-tuning: no hook changes anything.
pub struct Sequential;

impl ContinualMethod for Sequential {}
