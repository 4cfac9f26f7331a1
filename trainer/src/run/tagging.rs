//! Tagging before stage 1 ([`crate::tags`]): the raw tags of every instruction of the run,
//! with the `llm` source's tags read from and saved to the run folder's `tags.json` batch by
//! batch, so that `--resume` never asks the tagger again.

use inscl::artifact;

use super::{RunError, Stages, faults};
use crate::learner::Learner;
use crate::progress::{Event, Progress};
use crate::tags::llm::{self, LlmTagFile, TAG_FILE_VERSION};

impl Stages<'_> {
    /// The raw tags of every instruction, before stage 1. The `llm` source asks `tag_model`
    /// (or, without one, the learner's base weights) for the instructions that the run
    /// folder's `tags.json` lacks.
    pub(super) fn tag_instructions(
        &mut self,
        learner: &mut dyn Learner,
        tag_model: Option<&mut dyn Learner>,
        progress: &mut Progress,
    ) -> Result<(), RunError> {
        let llm = if self.tagger.uses_llm() {
            let model: &mut dyn Learner = match tag_model {
                Some(model) => model,
                None => learner,
            };
            Some(self.llm_tags(model, progress)?)
        } else {
            None
        };
        self.tags = self
            .dataset
            .tasks
            .iter()
            .zip(self.groups)
            .map(|(task, groups)| {
                groups
                    .iter()
                    .map(|group| self.tagger.tags(task, group, llm.as_ref()))
                    .collect()
            })
            .collect();
        Ok(())
    }

    /// The `llm` tags of every instruction: `tags.json` of the run folder, completed by
    /// `model` and saved after every batch.
    fn llm_tags(
        &self,
        model: &mut dyn Learner,
        progress: &mut Progress,
    ) -> Result<LlmTagFile, RunError> {
        let path = self.folder.tags();
        let model_name = self
            .config
            .tagger
            .model
            .clone()
            .unwrap_or_else(|| self.config.model.path.clone());
        let cached = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<LlmTagFile>(&text).ok())
            .filter(|file| file.version == TAG_FILE_VERSION && file.model == model_name);
        let mut file = cached.unwrap_or_else(|| LlmTagFile::new(&model_name));
        let mut instructions: Vec<(String, String)> = Vec::new();
        for group in self.groups.iter().flatten() {
            if !instructions.iter().any(|(_, text)| *text == group.text) {
                instructions.push((group.id.clone(), group.text.clone()));
            }
        }
        let total = instructions.len();
        for batch in llm::untagged(&file, &instructions).chunks(self.config.tagger.batch_size) {
            llm::tag_batch(
                &mut file,
                batch,
                model,
                self.config.tagger.max_new_tokens,
                self.tagger.keyphrase_count(),
            )
            .map_err(|source| RunError::Learner {
                stage: 0,
                what: "tagging instructions",
                error: source,
            })?;
            let text = serde_json::to_string_pretty(&file).expect("tag files serialise");
            faults::point("tags-write");
            artifact::write_text_atomic(&path, &text)?;
            progress.event(&Event::Tagging {
                done: file.instructions.len(),
                total,
            });
            self.interrupted(0)?;
        }
        progress.event(&Event::TagsReady {
            model: model_name,
            instructions: file.instructions.len(),
            retries: file.retries,
            fallbacks: file.fallbacks,
            instructions_per_s: file.tags_per_second(),
        });
        Ok(file)
    }
}
