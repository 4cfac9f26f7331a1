"""PyTorch side of the SmolLM2-135M throughput comparison, and the table printer.

Counterpart of `llama/examples/lora_throughput.rs` (read its header for the workloads); the
driver is `tools/bench/lora_throughput.sh`. Same shapes, token ids and settings:

- model: `LlamaForCausalLM` with SmolLM2-135M's config (30 layers, d 576, 9 query / 3 kv heads,
  MLP 1536, vocabulary 49152, tied head, RoPE θ 1e5, RMSNorm ε 1e-5), randomly initialised
  (seed 0), float32, default attention implementation (SDPA). The compute does not depend on
  the weight values; the Rust side loads the real GGUF checkpoint.
- `train`: PEFT LoRA r 8, α 16, dropout 0 on q,k,v,o,gate,up,down; batch 8 × 256; forward
  with `labels` (HF causal-LM loss) + backward + `torch.optim.AdamW(lr=1e-4)` (defaults:
  β 0.9/0.999, ε 1e-8, weight decay 0.01) + `zero_grad`.
- `prefill`: `inference_mode` forward of 8 × 256 tokens to the full logits.
- `decode`: `generate` greedy with the KV cache, batch 1, 16-token prompt;
  tokens/s = 64 / (t(65 new) − t(1 new)).

`--device cpu` (default) runs with `torch.set_num_threads(2)` (the machine's cores); `--device
cuda` runs on the first CUDA GPU, float32 as on the CPU (or `--dtype bfloat16`), and synchronises before each clock
read (the counterpart of `lora_throughput --device gpu`, burn's wgpu backend). Prints one JSON
line like the Rust example.

Needs (pip, in a venv outside the repo, kept out of CI): torch, transformers, peft.
Measured with torch 2.15.0, transformers 5.23.0, peft 0.21.2 (each JSON line names them: `versions`).

Run: `python lora_throughput.py {train|prefill|decode} [--warmup 2] [--steps 5]`
     `python lora_throughput.py summarise DIR` (stdlib only) prints the comparison table from
     the `*.json` results and `*.time` (`/usr/bin/time -v`) files the driver left in DIR.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys
import time

BATCH, SEQ, PROMPT, DECODE = 8, 256, 16, 64
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def token_ids(b, s, vocab):
    """`[b, s]` ids `(i * 7919) % vocab`, as on the Rust side."""
    import torch

    return torch.tensor([(i * 7919) % vocab for i in range(b * s)], dtype=torch.long).reshape(b, s)


def timed(warmup, steps, f, sync):
    """Runs `f` `warmup` times untimed, then `steps` times; returns the timed seconds, each
    ending with `sync()` (the device's queue drained)."""
    for _ in range(warmup):
        f()
    sync()
    out = []
    for _ in range(steps):
        start = time.perf_counter()
        f()
        sync()
        out.append(time.perf_counter() - start)
    return out


def measure(mode, warmup, steps, device, dtype="float32"):
    import peft
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    if device == "cpu":
        torch.set_num_threads(2)
        sync = lambda: None  # noqa: E731
    else:
        sync = torch.cuda.synchronize
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, rms_norm_eps=1e-5, rope_theta=100000.0,
        tie_word_embeddings=True, max_position_embeddings=8192, bos_token_id=1, eos_token_id=2,
        hidden_act="silu",
    )
    # bfloat16: the base model's weights and activations in bf16; PEFT keeps the adapters in
    # float32 (`autocast_adapter_dtype`), as the trainer's `training.precision = "bf16"`.
    model = LlamaForCausalLM(config).to(dtype=getattr(torch, dtype)).to(device)
    vocab = config.vocab_size
    if mode == "train":
        model = peft.get_peft_model(
            model,
            peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS,
                            task_type="CAUSAL_LM"),
        )
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ids = token_ids(BATCH, SEQ, vocab).to(device)
        mask = torch.ones_like(ids)

        def step():
            loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        seconds, tokens = timed(warmup, steps, step, sync), BATCH * SEQ
    elif mode == "prefill":
        model.eval()
        ids = token_ids(BATCH, SEQ, vocab).to(device)
        mask = torch.ones_like(ids)

        def forward():
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask).logits

        seconds, tokens = timed(warmup, steps, forward, sync), BATCH * SEQ
    else:
        model.eval()
        prompt = token_ids(1, PROMPT, vocab).to(device)
        mask = torch.ones_like(prompt)

        def run(new):
            start = time.perf_counter()
            with torch.inference_mode():
                model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=new,
                               min_new_tokens=new, do_sample=False, use_cache=True,
                               pad_token_id=0)
            sync()
            return time.perf_counter() - start

        for _ in range(warmup):
            run(DECODE + 1)
        seconds, tokens = [run(DECODE + 1) - run(1) for _ in range(steps)], DECODE
    mean = statistics.fmean(seconds)
    print(json.dumps({
        "impl": "pytorch", "mode": mode, "device": device, "dtype": dtype,
        "weights": "random init, same config",
        "batch": 1 if mode == "decode" else BATCH, "tokens_per_step": tokens,
        "seconds": seconds, "mean_seconds": mean, "tokens_per_s": tokens / mean,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
    }))


def peak_rss_mib(path):
    """`Maximum resident set size (kbytes)` of a `/usr/bin/time -v` report, in MiB; NaN where
    there is no report (a machine without GNU time)."""
    if not os.path.exists(path):
        return float("nan")
    with open(path) as f:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
    return int(m.group(1)) / 1024 if m else float("nan")


def summarise(directory):
    """Prints the burn-vs-PyTorch table from DIR/{impl}.{mode}.{rep}.{json,time}."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        impl, mode, _rep = os.path.basename(path)[: -len(".json")].split(".")
        with open(path) as f:
            result = json.loads(f.read().strip().splitlines()[-1])
        entry = rows.setdefault(mode, {}).setdefault(impl, {"tps": [], "rss": []})
        entry["tps"].append(result["tokens_per_s"])
        entry["rss"].append(peak_rss_mib(path[: -len(".json")] + ".time"))
    print("| workload | burn tok/s (runs) | PyTorch tok/s (runs) | burn / PyTorch "
          "| burn peak RSS MiB | PyTorch peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    names = {"train": "LoRA train step 8×256", "prefill": "prefill forward 8×256",
             "decode": "greedy decode, batch 1"}
    for mode in ["train", "prefill", "decode"]:
        if mode not in rows:
            continue
        cells, means = [], {}
        for impl in ["burn", "pytorch"]:
            e = rows[mode].get(impl)
            if e is None:
                cells.append("–")
                continue
            means[impl] = statistics.fmean(e["tps"])
            runs = ", ".join(f"{t:.1f}" for t in e["tps"])
            cells.append(f"{means[impl]:.1f} ({runs})")
        ratio = (f"{means['burn'] / means['pytorch']:.2f}×"
                 if len(means) == 2 else "–")
        rss = [f"{max(rows[mode][i]['rss']):.0f}" if i in rows[mode] else "–"
               for i in ["burn", "pytorch"]]
        print(f"| {names[mode]} | {cells[0]} | {cells[1]} | {ratio} | {rss[0]} | {rss[1]} |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "summarise":
        summarise(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["train", "prefill", "decode"])
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = parser.parse_args()
    measure(args.mode, args.warmup, args.steps, args.device, args.dtype)


if __name__ == "__main__":
    main()
