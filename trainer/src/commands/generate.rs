//! `trainer generate --model PATH --prompt TEXT [--max-new-tokens N] [--chat]
//! [--temperature T --top-p P --seed S] [--device auto|gpu|cuda|wgpu|cpu]`: one completion, with its
//! speed.

use anyhow::Context;
use clap::Args;
use llama::device::{DeviceChoice, SelectedDevice, select_device};
use llama::generate::{GenerationConfig, Sampling, generate};
use llama::io::stored::BasePrecision;
use llama::model::Llama;
use trainer::model::{open_checkpoint, resolve_model, stop_tokens};

/// Arguments of `trainer generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// GGUF file, HF model folder, or `hf:owner/name[@revision]` (builds with `--features hub`).
    #[arg(long, default_value = "assets/SmolLM2-135M-Instruct.Q4_1.gguf")]
    pub model: String,
    /// The prompt (a user message with --chat, raw text otherwise).
    #[arg(long)]
    pub prompt: String,
    /// Most tokens generated.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Wrap the prompt in the checkpoint's chat template (ChatML for SmolLM2).
    #[arg(long)]
    pub chat: bool,
    /// Sample with this temperature (with --top-p) instead of greedy decoding.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Nucleus mass kept when sampling.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// auto, gpu, cuda, wgpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// The projection weights: stored (as the checkpoint stores them), f32 or bf16.
    #[arg(long, default_value = "stored")]
    pub base_precision: BasePrecision,
}

/// Loads the model, generates, prints the text then a `N tokens in S s (T tokens/s)` line.
///
/// # Errors
/// Model, tokenizer or generation errors; `--chat` for a checkpoint without a chat template.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let choice: DeviceChoice = args.device.parse()?;
    let SelectedDevice {
        device,
        description: device_name,
        ..
    } = select_device(choice)?;
    let path = resolve_model(&args.model)?;
    eprintln!("model {} on {device_name}", path.display());
    let ckpt = open_checkpoint(&path, args.base_precision)?;
    let model = Llama::from_checkpoint(&ckpt.config, ckpt.tensors, &device)?;
    let text = if args.chat {
        ckpt.tokenizer
            .chat_template()
            .context("--chat: the checkpoint has no chat template")?
            .user_prompt(&args.prompt)
    } else {
        args.prompt.clone()
    };
    let prompt = ckpt.tokenizer.encode(&text, !args.chat)?;
    let sampling = match args.temperature {
        Some(temperature) => Sampling::TopP {
            temperature,
            top_p: args.top_p,
        },
        None => Sampling::Greedy,
    };
    let config = GenerationConfig {
        max_new_tokens: args.max_new_tokens,
        sampling,
        eos_token_ids: stop_tokens(&ckpt.config, &ckpt.tokenizer),
        seed: args.seed,
    };
    let generation = generate(&model, &[prompt], &config)?;
    let tokens = &generation.tokens[0];
    println!("{}", ckpt.tokenizer.decode(tokens, true)?.trim());
    eprintln!(
        "{} tokens in {:.2} s ({:.1} tokens/s)",
        tokens.len(),
        generation.seconds,
        generation.tokens_per_second
    );
    Ok(())
}
