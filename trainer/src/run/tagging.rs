//! Tagging before stage 1 ([`crate::tags`]): the raw tags of every instruction of the run,
//! with the `llm` source's tags read from and saved to the run folder's `tags.json` batch by
//! batch, so that `--resume` never asks the tagger again. The `llm` source asks a local
//! checkpoint or, with `[tagger] endpoint`, an OpenAI-compatible server ([`ChatApi`]).

use inscl::artifact;

use super::state::RunState;
use super::{RunError, faults};
use crate::learner::ContinualLearner;
use crate::progress::{Event, Progress};
use crate::tags::api::ChatApi;
use crate::tags::llm::{self, Chat, LlmTagFile, TAG_FILE_VERSION};

impl RunState<'_> {
    /// The raw tags of every instruction, before stage 1. The `llm` source asks the
    /// `[tagger] endpoint`, or `tag_model` (without one, the learner's base weights), for the
    /// instructions that the run folder's `tags.json` lacks.
    pub(super) fn tag_instructions(
        &mut self,
        learner: &mut dyn ContinualLearner,
        tag_model: Option<&mut dyn ContinualLearner>,
        progress: &mut Progress,
    ) -> Result<(), RunError> {
        let llm = if !self.tagger.uses_llm() {
            None
        } else if self.config.tagger.endpoint.is_some() {
            let api = ChatApi::new(&self.config.tagger);
            let name = api.describe();
            let mut chat = |prompts: &[String]| Ok(api.chat(prompts)?);
            Some(self.llm_tags(&name, &mut chat, progress)?)
        } else {
            let model: &mut dyn ContinualLearner = match tag_model {
                Some(model) => model,
                None => learner,
            };
            let name = self
                .config
                .tagger
                .model
                .clone()
                .unwrap_or_else(|| self.config.model.path.clone());
            let max_new_tokens = self.config.tagger.max_new_tokens;
            let mut chat = |prompts: &[String]| model.chat(prompts, max_new_tokens);
            Some(self.llm_tags(&name, &mut chat, progress)?)
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

    /// The `llm` tags of every instruction: `tags.json` of the run folder (when written by
    /// `model_name`), completed by `chat` and saved after every batch.
    fn llm_tags(
        &self,
        model_name: &str,
        chat: &mut Chat,
        progress: &mut Progress,
    ) -> Result<LlmTagFile, RunError> {
        let path = self.folder.tags();
        let cached = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<LlmTagFile>(&text).ok())
            .filter(|file| file.version == TAG_FILE_VERSION && file.model == model_name);
        let mut file = cached.unwrap_or_else(|| LlmTagFile::new(model_name));
        let instructions = llm::distinct_instructions(self.groups.iter().flatten());
        let total = instructions.len();
        for batch in llm::untagged(&file, &instructions).chunks(self.config.tagger.batch_size) {
            llm::tag_batch(&mut file, batch, chat, self.tagger.keyphrase_count()).map_err(
                |source| RunError::ContinualLearner {
                    stage: 0,
                    what: "tagging instructions",
                    error: source,
                },
            )?;
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
            model: model_name.to_owned(),
            instructions: file.instructions.len(),
            retries: file.retries,
            fallbacks: file.fallbacks,
            instructions_per_s: file.tags_per_second(),
        });
        Ok(file)
    }
}
