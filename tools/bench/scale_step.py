"""PyTorch + PEFT side of the scale table (`tools/bench/scale.sh`), and the table printer.

Counterpart of `llama/examples/lora_throughput.rs train --targets qkvo --batch 1 --seq 256`:
the checkpoint folder of `scale_checkpoints.py ... bf16` loaded by `LlamaForCausalLM.from_pretrained`
in bfloat16 (weights, activations and LoRA matmuls in bf16, as QLoRA-style CPU fine-tuning
runs it), PEFT LoRA r 8, alpha 16, dropout 0 on q, k, v, o; one step = forward with `labels`
(HF causal-LM loss) + backward + `torch.optim.AdamW(lr=1e-4)` + `zero_grad`, on token ids
`(i * 7919) % vocab`, batch 1 x 256. `--gradient-checkpointing` turns on HF's per-layer
checkpointing. 2 threads. Prints one JSON line like the Rust example, with wall-clock and CPU
seconds (user + system, `time.process_time`) per step: on a shared machine the wall clock also
counts other processes' time.

A 4-bit column: `--load-in-4bit` loads through bitsandbytes (NF4, bf16 compute) when it is
installed and runs on this CPU (see tools/bench/RESULTS.md for what happened here).

Run: `python scale_step.py MODEL_DIR [--warmup 1] [--steps 2] [--gradient-checkpointing]`
     `python scale_step.py summarise DIR` (stdlib only) prints the table from the `*.json`
     results and `*.time` (`/usr/bin/time -v`) files of `scale.sh`.
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys
import time

BATCH, SEQ = 1, 256
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def measure(model_dir, warmup, steps, checkpointing, load_in_4bit):
    import peft
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)
    start = time.perf_counter()
    kwargs = {"dtype": torch.bfloat16}
    if load_in_4bit:
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    if checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM"))
    model.train()
    load_seconds = time.perf_counter() - start
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    ids = torch.tensor([(i * 7919) % vocab for i in range(BATCH * SEQ)]).reshape(BATCH, SEQ)
    mask = torch.ones_like(ids)

    def step():
        loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    seconds, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        step()
        seconds.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    mean = statistics.fmean(seconds)
    print(json.dumps({
        "impl": "pytorch", "mode": "train", "weights": model_dir,
        "base": "nf4 (bitsandbytes)" if load_in_4bit else "bf16",
        "gradient_checkpointing": checkpointing, "batch": BATCH, "tokens_per_step": BATCH * SEQ,
        "load_seconds": load_seconds, "seconds": seconds, "mean_seconds": mean,
        "cpu_seconds": cpu, "mean_cpu_seconds": statistics.fmean(cpu),
        "tokens_per_s": BATCH * SEQ / mean,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
    }))


def peak_rss_gib(path):
    """`Maximum resident set size (kbytes)` of a `/usr/bin/time -v` report, in GiB."""
    if not os.path.exists(path):
        return float("nan")
    with open(path) as f:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", f.read())
    return int(m.group(1)) / 2**20 if m else float("nan")


def summarise(directory):
    """The scale table from DIR/{size}.{impl}.{json,time} (and DIR/{size}.{impl}.bytes: the
    checkpoint's bytes on disk). Ratios are burn / PyTorch; seconds are wall clock and CPU
    (user + system of both threads) per step."""
    results = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        # Sizes may contain dots ("llama3.2-3b"); the implementation is the last field.
        size, impl = os.path.basename(path)[: -len(".json")].rsplit(".", 1)
        with open(path) as f:
            lines = f.read().strip().splitlines()
        if not lines:
            continue
        result = json.loads(lines[-1])
        result["rss"] = peak_rss_gib(path[: -len(".json")] + ".time")
        bytes_file = path[: -len(".json")] + ".bytes"
        result["file"] = (int(open(bytes_file).read()) / 2**30 if os.path.exists(bytes_file)
                          else float("nan"))
        results.setdefault(size, {})[impl] = result
    print("| size | base | file GiB | peak RSS GiB | s / step | CPU s / step "
          "| PyTorch bf16 peak RSS GiB | PyTorch s / step | PyTorch CPU s / step "
          "| RSS ratio | CPU time ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    nan = {"rss": float("nan"), "mean_seconds": float("nan"), "mean_cpu_seconds": float("nan")}
    for size, by_impl in results.items():
        t = by_impl.get("pytorch", nan)
        for impl, r in sorted(by_impl.items()):
            if impl == "pytorch":
                continue
            print(f"| {size} | {impl} | {r['file']:.2f} | {r['rss']:.2f} "
                  f"| {r['mean_seconds']:.1f} | {r['mean_cpu_seconds']:.1f} "
                  f"| {t['rss']:.2f} | {t['mean_seconds']:.1f} | {t['mean_cpu_seconds']:.1f} "
                  f"| {r['rss'] / t['rss']:.2f} | {r['mean_cpu_seconds'] / t['mean_cpu_seconds']:.2f} |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "summarise":
        summarise(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--load-in-4bit", action="store_true")
    args = parser.parse_args()
    measure(args.model, args.warmup, args.steps, args.gradient_checkpointing, args.load_in_4bit)


if __name__ == "__main__":
    main()
