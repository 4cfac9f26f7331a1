//! Wall-clock throughput of the burn LLaMA on a real SmolLM2 checkpoint, on the device of
//! `--device auto|gpu|cpu` (`llama::device`; a GPU needs the `wgpu` feature), one measurement per process so that `/usr/bin/time -v` reports the
//! peak RSS of that workload alone. The PyTorch counterpart is `tools/bench/lora_throughput.py`;
//! `tools/bench/lora_throughput.sh` runs both and prints the comparison.
//!
//! Modes (tokens are the synthetic ids `(i · 7919) mod V`, identical on both sides):
//! - `train`: LoRA rank 8, α 16 on q, k, v, o, gate, up, down; batch 8 × 256 tokens; one step
//!   = causal-LM loss forward + backward + AdamW (lr 1e-4, β 0.9/0.999, ε 1e-8, weight decay
//!   0.01: PyTorch's `AdamW` defaults). Tokens/s = 2048 / step seconds.
//! - `prefill`: batched forward of 8 × 256 tokens to the full logits, no autodiff.
//! - `decode`: greedy decoding with the KV cache from a 16-token prompt, batch 1. Decode
//!   tokens/s = 64 / (t(65 new tokens) − t(1 new token)), which cancels the prefill.
//!
//! Prints one JSON line: `{"impl":"burn","mode":..,"device":..,"tokens_per_s":..,"seconds":[..],..}`,
//! `seconds` holding the timed repetitions (warm-up excluded; each ends with a device sync) and
//! `heap` whether [`llama::heap::retain_freed_memory`] applied (`Retained` on glibc).
//!
//! Run: `cargo run --release -p llama [--features wgpu] --example lora_throughput -- train
//! [--gguf assets/SmolLM2-135M-Instruct.Q4_1.gguf] [--warmup 2] [--steps 5] [--device auto]`.

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use llama::device::{DeviceChoice, select_device};
use llama::generate::{GenerationConfig, generate};
use llama::lora::{LoraConfig, LoraTarget};
use llama::model::Llama;
use llama::peft::apply_lora;

const BATCH: usize = 8;
const SEQ: usize = 256;
const PROMPT: usize = 16;
const DECODE: usize = 64;

struct Args {
    mode: String,
    gguf: String,
    warmup: usize,
    steps: usize,
    device: DeviceChoice,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: String::new(),
        gguf: "assets/SmolLM2-135M-Instruct.Q4_1.gguf".to_owned(),
        warmup: 2,
        steps: 5,
        device: DeviceChoice::Auto,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--gguf" => args.gguf = value()?,
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--steps" => args.steps = value()?.parse().map_err(|e| format!("--steps: {e}"))?,
            "--device" => args.device = value()?.parse().map_err(|e| format!("--device: {e}"))?,
            "train" | "prefill" | "decode" => args.mode = arg,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.mode.is_empty() || args.steps == 0 {
        return Err("usage: lora_throughput <train|prefill|decode> [--gguf PATH] [--warmup N] [--steps N≥1] [--device auto|gpu|cpu]".into());
    }
    Ok(args)
}

/// `[b, s]` ids `(i · 7919) mod vocab`, the same as the Python side and the criterion bench.
fn tokens(b: usize, s: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
    let data: Vec<i64> = (0..b * s).map(|i| ((i * 7919) % vocab) as i64).collect();
    Tensor::from_data(TensorData::new(data, [b, s]), device)
}

/// Runs `f` `warmup` times untimed, then `steps` times, returning the timed seconds.
fn time(warmup: usize, steps: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..steps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let heap = llama::heap::retain_freed_memory();
    let load_start = Instant::now();
    let (config, weights) = llama::io::gguf::load_llama(&args.gguf)?;
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
                target_modules: LoraTarget::ALL.to_vec(),
            };
            let mut model = Some(apply_lora(
                Llama::from_host_tensors(&config, &weights, &train_device)?,
                &lora,
                0,
            )?);
            drop(weights);
            let mut optimizer = AdamWConfig::new()
                .with_epsilon(1e-8)
                .with_weight_decay(0.01)
                .init();
            let ids = tokens(BATCH, SEQ, vocab, &train_device);
            let mask = Tensor::<2, Int>::ones([BATCH, SEQ], &train_device);
            eprintln!("loaded in {:.1} s", load_start.elapsed().as_secs_f64());
            let seconds = time(args.warmup, args.steps, || {
                let m = model.take().expect("model is put back after every step");
                let loss = m.causal_lm_loss(ids.clone(), mask.clone(), ids.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &m);
                model = Some(optimizer.step(1e-4, m, grads));
                train_device.sync().expect("device sync");
            });
            (seconds, BATCH * SEQ)
        }
        "prefill" => {
            let model = Llama::from_host_tensors(&config, &weights, &device)?;
            drop(weights);
            let ids = tokens(BATCH, SEQ, vocab, &device);
            let mask = Tensor::<2, Int>::ones([BATCH, SEQ], &device);
            eprintln!("loaded in {:.1} s", load_start.elapsed().as_secs_f64());
            let seconds = time(args.warmup, args.steps, || {
                model.forward(ids.clone(), mask.clone()).into_data();
            });
            (seconds, BATCH * SEQ)
        }
        _ => {
            let model = Llama::from_host_tensors(&config, &weights, &device)?;
            drop(weights);
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
            let seconds = (0..args.steps).map(|_| run(DECODE + 1) - run(1)).collect();
            (seconds, DECODE)
        }
    };
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "impl": "burn",
            "mode": args.mode,
            "device": selected.description,
            "heap": format!("{heap:?}"),
            "weights": args.gguf,
            "batch": if args.mode == "decode" { 1 } else { BATCH },
            "tokens_per_step": tokens_per_step,
            "seconds": seconds,
            "mean_seconds": mean,
            "tokens_per_s": tokens_per_step as f64 / mean,
        })
    );
    Ok(())
}
