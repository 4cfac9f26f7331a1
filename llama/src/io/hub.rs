//! Hugging Face Hub downloads (feature `hub`): a model repository's `config.json`, tokenizer
//! files and safetensors weights (single file or sharded index) into the standard HF cache
//! (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`, shared with Python's
//! `huggingface_hub`), with `HF_TOKEN` / the cached token for gated models and `HF_ENDPOINT`
//! for mirrors. The result is an ordinary HF folder for [`crate::io::safetensors::load_llama`].

use std::path::PathBuf;

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Repo, RepoType};

use crate::io::safetensors::{SafetensorsError, shard_files};

/// Errors of [`download_model`].
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A request or cache failure, naming the repository and file.
    #[error("downloading {file} of {repo}: {source}")]
    Api {
        /// `owner/name@revision`.
        repo: String,
        /// File in the repository (or `(repository info)`).
        file: String,
        /// The client's error.
        source: ApiError,
    },
    /// The repository lacks a file a checkpoint needs.
    #[error("{repo} has no {file} (its files: {files})")]
    MissingFile {
        /// `owner/name@revision`.
        repo: String,
        /// `config.json`, or `model.safetensors` for missing weights.
        file: &'static str,
        /// The repository's files.
        files: String,
    },
    /// The downloaded `model.safetensors.index.json` is unreadable.
    #[error("{repo}: {source}")]
    BadIndex {
        /// `owner/name@revision`.
        repo: String,
        /// The reader's error.
        source: SafetensorsError,
    },
}

/// Files fetched besides `config.json` and the weights when the repository has them.
const SIDE_FILES: [&str; 3] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
];

/// Downloads (or finds in the cache) what a LLaMA checkpoint needs from the model repository
/// `repo_id` (`owner/name`) at `revision` (branch, tag or commit; `main` when `None`) and
/// returns the cache snapshot folder holding them.
///
/// # Errors
/// [`HubError::Api`] for network, authentication or cache failures,
/// [`HubError::MissingFile`] without `config.json` or safetensors weights, and
/// [`HubError::BadIndex`] for an unreadable shard index.
pub fn download_model(repo_id: &str, revision: Option<&str>) -> Result<PathBuf, HubError> {
    let revision = revision.unwrap_or("main");
    let name = format!("{repo_id}@{revision}");
    let api_error = |file: &str| {
        let name = name.clone();
        let file = file.to_string();
        move |source| HubError::Api {
            repo: name,
            file,
            source,
        }
    };
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(api_error("(client)"))?;
    let repo = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        revision.to_string(),
    ));
    let info = repo.info().map_err(api_error("(repository info)"))?;
    let files: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let missing = |file| HubError::MissingFile {
        repo: name.clone(),
        file,
        files: files.join(", "),
    };
    if !files.contains(&"config.json") {
        return Err(missing("config.json"));
    }
    let weights = if files.contains(&"model.safetensors.index.json") {
        let index = repo
            .get("model.safetensors.index.json")
            .map_err(api_error("model.safetensors.index.json"))?;
        shard_files(&index).map_err(|source| HubError::BadIndex {
            repo: name.clone(),
            source,
        })?
    } else if files.contains(&"model.safetensors") {
        vec!["model.safetensors".into()]
    } else {
        return Err(missing("model.safetensors"));
    };
    let config = repo.get("config.json").map_err(api_error("config.json"))?;
    let others = SIDE_FILES
        .iter()
        .filter(|f| files.contains(f))
        .map(|f| f.to_string());
    for file in others.chain(weights) {
        repo.get(&file).map_err(api_error(&file))?;
    }
    Ok(config
        .parent()
        .expect("a cached file lies in a snapshot folder")
        .to_path_buf())
}
