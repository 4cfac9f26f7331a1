//! `[output]`: where the run folder goes.

use serde::{Deserialize, Serialize};

use crate::invalid::{InvalidValue, check};

/// `[output]`: where the run folder goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Folder of the run folders, relative to the working directory.
    pub dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Run folder name; `None` = `<strategy>-a<alpha>-s<seed>`.
    pub name: Option<String>,
    /// Checkpoints kept (≥ 1: resuming needs the last one).
    pub keep_checkpoints: usize,
}

impl OutputConfig {
    /// Checks the section's own fields.
    ///
    /// # Errors
    /// [`InvalidValue`] naming the field and its value.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        check(
            self.keep_checkpoints >= 1,
            "output.keep_checkpoints",
            self.keep_checkpoints,
            "must be at least 1 (resume needs the last checkpoint)",
        )?;
        if let Some(name) = &self.name {
            check(
                !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..",
                "output.name",
                name,
                "must be a plain folder name",
            )?;
        }
        Ok(())
    }
}
