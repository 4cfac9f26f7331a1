//! Wall-clock throughput of the burn LLaMA on a real SmolLM2 checkpoint, on the device of
//! `--device auto|gpu|cuda|wgpu|cpu` (`llama::device`; a GPU needs the `cuda` or `wgpu` feature), one measurement per process so that `/usr/bin/time -v` reports the
//! peak RSS of that workload alone. The PyTorch counterpart is `tools/bench/lora_throughput.py`;
//! `tools/bench/lora_throughput.sh` runs both and prints the comparison.
//!
//! Modes (tokens are the synthetic ids `(i · 7919) mod V`, identical on both sides):
//! - `train`: LoRA rank 8, α 16 on q, k, v, o, gate, up, down (`--targets qkvo`: q, k, v, o);
//!   batch 8 × 256 tokens (`--batch`, `--seq`); one step = causal-LM loss forward + backward
//!   (`llama::train::accumulate_gradients`, with `--checkpoint-layers` recomputing each layer),
//!   then AdamW (lr 1e-4, β 0.9/0.999, ε 1e-8, weight decay 0.01: PyTorch's `AdamW` defaults).
//!   Tokens/s = batch · seq / step seconds.
//! - `prefill`: batched forward of 8 × 256 tokens to the full logits, no autodiff.
//! - `decode`: greedy decoding with the KV cache from a 16-token prompt, batch 1. Decode
//!   tokens/s = 64 / (t(65 new tokens) − t(1 new token)), which cancels the prefill.
//!
//! Prints one JSON line: `{"impl":"burn","mode":..,"device":..,"tokens_per_s":..,"seconds":[..],..}`,
//! `seconds` holding the timed repetitions (warm-up excluded; each ends with a device sync) and
//! `heap` whether [`llama::heap::retain_freed_memory`] applied (`Retained` on glibc).
//!
//! The checkpoint (`--gguf` / `--model`: a GGUF file or an HF folder) loads with
//! `--base-precision f32` (the default: every weight dequantised to f32), `stored` (projection
//! weights kept as stored) or `bf16`; `--no-bf16-dot` widens bf16 weights to f32 instead of
//! AVX512-BF16 dot products.
//!
//! Run: `cargo run --release -p llama [--features wgpu] --example lora_throughput -- train
//! [--gguf assets/SmolLM2-135M-Instruct.Q4_1.gguf] [--base-precision f32|stored|bf16]
//! [--batch 8] [--seq 256] [--targets all|qkvo] [--checkpoint-layers] [--no-bf16-dot]
//! [--warmup 2] [--steps 5] [--device auto]`.

use std::time::Instant;

use std::path::Path;

use burn::optim::AdamWConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::config::LlamaConfig;
use llama::device::{DeviceChoice, select_device};
use llama::generate::{GenerationConfig, generate};
use llama::io::host::CheckpointTensors;
use llama::io::stored::BasePrecision;
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::apply_lora;
use llama::train::{Batch, accumulate_gradients, causal_lm_loss};

const PROMPT: usize = 16;
const DECODE: usize = 64;

struct Args {
    mode: String,
    gguf: String,
    precision: BasePrecision,
    batch: usize,
    seq: usize,
    targets: Vec<LoraTarget>,
    checkpoint_layers: bool,
    warmup: usize,
    steps: usize,
    device: DeviceChoice,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: String::new(),
        gguf: "assets/SmolLM2-135M-Instruct.Q4_1.gguf".to_owned(),
        precision: BasePrecision::F32,
        batch: 8,
        seq: 256,
        targets: LoraTarget::ALL.to_vec(),
        checkpoint_layers: false,
        warmup: 2,
        steps: 5,
        device: DeviceChoice::Auto,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--gguf" | "--model" => args.gguf = value()?,
            "--base-precision" => args.precision = value()?.parse()?,
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--seq" => args.seq = value()?.parse().map_err(|e| format!("--seq: {e}"))?,
            "--targets" => {
                args.targets = match value()?.as_str() {
                    "all" => LoraTarget::ALL.to_vec(),
                    "qkvo" => LoraTarget::ALL[..4].to_vec(),
                    other => return Err(format!("--targets: {other:?} (expected all or qkvo)")),
                }
            }
            "--checkpoint-layers" => args.checkpoint_layers = true,
            "--no-bf16-dot" => llama::kernels::stored_matmul::set_bf16_dot_products(false),
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--steps" => args.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--device" => args.device = value()?.parse().map_err(|e| format!("--device: {e}"))?,
            "train" | "prefill" | "decode" => args.mode = arg,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.mode.is_empty() || args.steps == 0 {
        return Err("usage: lora_throughput <train|prefill|decode> [--gguf|--model PATH] [--base-precision f32|stored|bf16] [--batch N] [--seq N] [--targets all|qkvo] [--checkpoint-layers] [--no-bf16-dot] [--warmup N] [--steps N≥1] [--device auto|gpu|cuda|wgpu|cpu]".into());
    }
    Ok(args)
}

/// `[b, s]` ids `(i · 7919) mod vocab`, the same as the Python side and the criterion bench.
fn tokens(b: usize, s: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = (0..b * s).map(|i| ((i * 7919) % vocab) as i64).collect();
    Tensor::from_data(TensorData::new(data, [b, s]), device)
}

/// The checkpoint at `path` (GGUF file or HF folder) read for `precision`.
fn load(
    path: &str,
    precision: BasePrecision,
) -> Result<(LlamaConfig, CheckpointTensors), Box<dyn std::error::Error>> {
    Ok(if Path::new(path).is_dir() {
        llama::io::safetensors::load_llama_with(path, precision)?
    } else {
        llama::io::gguf::load_llama_with(path, precision)?
    })
}

/// Runs `f` `warmup` times untimed, then `steps` times, returning the timed wall-clock
/// seconds and the process's CPU seconds (user + system, all threads) of each.
fn time(warmup: usize, steps: usize, mut f: impl FnMut()) -> (Vec<f64>, Vec<f64>) {
    for _ in 0..warmup {
        f();
    }
    (0..steps)
        .map(|_| {
            let (start, cpu) = (Instant::now(), cpu_seconds());
            f();
            (start.elapsed().as_secs_f64(), cpu_seconds() - cpu)
        })
        .unzip()
}

/// CPU time of this process so far (user + system, every thread), from `getrusage`: on a
/// shared machine the wall clock also counts the time other processes ran.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn cpu_seconds() -> f64 {
    f64::NAN
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let heap = llama::heap::retain_freed_memory();
    let load_start = Instant::now();
    let (config, weights) = load(&args.gguf, args.precision)?;
    let selected = select_device(args.device)?;
    eprintln!("device: {}", selected.description);
    let device = selected.device;
    let vocab = config.vocab_size;
    let (seconds, tokens_per_step) = match args.mode.as_str() {
        "train" => {
            let train_device = device.autodiff();
            let lora = LoraConfig {
                r: 8,
                lora_alpha: 16.0,
                lora_dropout: 0.0,
                target_modules: args.targets.clone(),
            };
            let mut model = Some(apply_lora(
                Llama::from_checkpoint(&config, weights, &train_device)?
                    .with_layer_checkpointing(args.checkpoint_layers),
                &lora,
                0,
            )?);
            let mut optimizer = AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(0.01)
                .init();
            let (b, s) = (args.batch, args.seq);
            let ids = tokens(b, s, vocab, &train_device);
            let batch = Batch {
                tokens: ids.clone(),
                attention_mask: Tensor::<2, Int>::ones([b, s], &train_device),
                labels: ids,
                n_tokens: b * s,
                n_scored: b * (s - 1),
            };
            eprintln!("loaded in {:.1} s", load_start.elapsed().as_secs_f64());
            let seconds = time(args.warmup, args.steps, || {
                let m = model.take().expect("model is put back after every step");
                let step = accumulate_gradients(&m, std::slice::from_ref(&batch), &causal_lm_loss);
                model = Some(optimizer.step(1e-4, m, step.grads));
                train_device.sync().expect("device sync");
            });
            (seconds, b * s)
        }
        "prefill" => {
            let model = Llama::from_checkpoint(&config, weights, &device)?;
            let (b, s) = (args.batch, args.seq);
            let ids = tokens(b, s, vocab, &device);
            let mask = Tensor::<2, Int>::ones([b, s], &device);
            eprintln!("loaded in {:.1} s", load_start.elapsed().as_secs_f64());
            let seconds = time(args.warmup, args.steps, || {
                model.forward(ids.clone(), mask.clone()).into_data();
            });
            (seconds, b * s)
        }
        _ => {
            let model = Llama::from_checkpoint(&config, weights, &device)?;
            let prompt: Vec<Vec<u32>> =
                vec![(0..PROMPT).map(|i| ((i * 7919) % vocab) as u32).collect()];
            let run = |new: usize| {
                let config = GenerationConfig {
                    eos_token_ids: vec![],
                    ..GenerationConfig::greedy(new, &config)
                };
                generate(&model, &prompt, &config)
                    .expect("valid prompt")
                    .seconds
            };
            eprintln!("loaded in {:.1} s", load_start.elapsed().as_secs_f64());
            for _ in 0..args.warmup {
                run(DECODE + 1);
            }
            let seconds = (0..args.steps)
                .map(|_| {
                    let cpu = cpu_seconds();
                    let long = run(DECODE + 1);
                    let cpu_long = cpu_seconds() - cpu;
                    let short = run(1);
                    (long - short, 2.0 * cpu_long - (cpu_seconds() - cpu))
                })
                .unzip();
            (seconds, DECODE)
        }
    };
    let ((seconds, cpu), load_seconds) = (seconds, load_start.elapsed().as_secs_f64());
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    let mean_cpu = cpu.iter().sum::<f64>() / cpu.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "impl": "burn",
            "mode": args.mode,
            "device": selected.description,
            "heap": format!("{heap:?}"),
            "weights": args.gguf,
            "base_precision": args.precision,
            "bf16_dot_products": llama::kernels::stored_matmul::bf16_dot_products(),
            "checkpoint_layers": args.checkpoint_layers,
            "lora_targets": args.targets,
            "batch": if args.mode == "decode" { 1 } else { args.batch },
            "tokens_per_step": tokens_per_step,
            "seconds": seconds,
            "mean_seconds": mean,
            "cpu_seconds": cpu,
            "mean_cpu_seconds": mean_cpu,
            "total_seconds": load_seconds,
            "tokens_per_s": tokens_per_step as f64 / mean,
        })
    );
    Ok(())
}
