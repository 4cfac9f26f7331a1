//! Checkpoints on disk: resolving a model argument, opening a GGUF file or an HF folder, and
//! the files a run's checkpoint holds (a PEFT adapter, or HF-named full weights).

use std::path::{Path, PathBuf};

use anyhow::Context;
use llama::config::LlamaConfig;
use llama::io::host::{CheckpointTensors, HostTensors};
use llama::io::stored::BasePrecision;
use llama::lora::LoraConfig;
use llama::model::Llama;
use llama::peft::{peft_adapter_config, peft_adapter_tensors};
use llama::tokenizer::Tokenizer;
use llama::train::hf_tensors;

/// The local checkpoint path of a model argument: a path as given, or for
/// `hf:owner/name[@revision]` the HF cache folder it is downloaded into ([`llama::io::hub`], in
/// builds with the `hub` feature).
///
/// # Errors
/// Download failures, or an `hf:` model in a build without the `hub` feature.
pub fn resolve_model(spec: &str) -> anyhow::Result<PathBuf> {
    let Some(repo) = spec.strip_prefix("hf:") else {
        return Ok(PathBuf::from(spec));
    };
    #[cfg(feature = "hub")]
    {
        let (id, revision) = match repo.split_once('@') {
            Some((id, revision)) => (id, Some(revision)),
            None => (repo, None),
        };
        Ok(llama::io::hub::download_model(id, revision)?)
    }
    #[cfg(not(feature = "hub"))]
    anyhow::bail!(
        "model {spec:?}: this build cannot download {repo} from the Hugging Face Hub; rebuild \
         with `--features hub`, or download the folder and give its path"
    )
}

/// A loaded checkpoint: configuration, HF-named weights and tokenizer.
pub struct Checkpoint {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Weights (HF names and layouts): f32, and the projections kept as the precision says.
    pub tensors: CheckpointTensors,
    /// Tokenizer with chat template.
    pub tokenizer: Tokenizer,
}

/// Opens a GGUF file or an HF folder (`config.json`, `*.safetensors`, `tokenizer.json`,
/// optional `tokenizer_config.json`), its projection weights kept for `precision`.
///
/// # Errors
/// A missing path or any reader error, naming the path.
pub fn open_checkpoint(path: &Path, precision: BasePrecision) -> anyhow::Result<Checkpoint> {
    if path.is_dir() {
        let (config, tensors) = llama::io::safetensors::load_llama_with(path, precision)
            .with_context(|| format!("loading the HF checkpoint {}", path.display()))?;
        let tokenizer = Tokenizer::from_hf_dir(path)
            .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
        Ok(Checkpoint {
            config,
            tensors,
            tokenizer,
        })
    } else {
        let file = llama::io::gguf::GgufFile::open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let (config, tensors) = llama::io::gguf::load_llama_with(path, precision)
            .with_context(|| format!("loading the GGUF checkpoint {}", path.display()))?;
        let tokenizer = Tokenizer::from_gguf(&file)
            .with_context(|| format!("loading the tokenizer of {}", path.display()))?;
        Ok(Checkpoint {
            config,
            tensors,
            tokenizer,
        })
    }
}

/// The base precision as the device line prints it: what the model keeps, and why when the
/// configuration asked for another.
pub(super) fn describe_precision(used: BasePrecision, asked: BasePrecision) -> String {
    match (used, asked) {
        (BasePrecision::F32, BasePrecision::Stored) => {
            "base f32 (full fine-tuning trains f32 weights; model.base_precision = \"stored\" has no effect)".to_owned()
        }
        (BasePrecision::Bf16, _) if llama::kernels::stored_matmul::bf16_dot_products() => {
            "base bf16 (AVX512-BF16 dot products)".to_owned()
        }
        (used, _) => format!("base {used}"),
    }
}

/// Token ids that end a generation: the config's EOS ids and the tokenizer's EOS.
pub fn stop_tokens(config: &LlamaConfig, tokenizer: &Tokenizer) -> Vec<u32> {
    let mut ids = llama::generate::eos_token_ids(config);
    ids.extend(tokenizer.eos_id());
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Writes `value` as pretty JSON to `path` (a checkpoint's config file).
fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the LoRA adapter of `model` in PEFT's layout (`adapter_model.safetensors`,
/// `adapter_config.json` naming `source` as the base model) into `dir`.
///
/// # Errors
/// Write failures, naming the file.
pub(super) fn save_adapter(
    dir: &Path,
    model: &Llama,
    lora: &LoraConfig,
    source: &Path,
) -> anyhow::Result<()> {
    llama::io::safetensors::save_host_tensors(
        &dir.join("adapter_model.safetensors"),
        &peft_adapter_tensors(model),
    )?;
    let mut config = peft_adapter_config(lora);
    config["base_model_name_or_path"] = source.display().to_string().into();
    write_json(&dir.join("adapter_config.json"), &config)
}

/// Writes every weight of `model` with HF names (`model.safetensors`) and its `config.json`
/// into `dir`.
///
/// # Errors
/// Write failures, naming the file.
pub(super) fn save_full(dir: &Path, model: &Llama, config: &LlamaConfig) -> anyhow::Result<()> {
    llama::io::safetensors::save_host_tensors(&dir.join("model.safetensors"), &hf_tensors(model))?;
    write_json(&dir.join("config.json"), config)
}

/// Reads the safetensors file `name` of the checkpoint folder `dir`.
///
/// # Errors
/// A missing or unreadable file, naming it.
pub(super) fn read_tensors(dir: &Path, name: &str) -> anyhow::Result<HostTensors> {
    let mut tensors = HostTensors::new();
    let path = dir.join(name);
    llama::io::safetensors::read_file_into(&path, &mut tensors)
        .with_context(|| format!("reading checkpoint {}", path.display()))?;
    Ok(tensors)
}
