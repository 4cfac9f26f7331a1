"""One stage of the default main job in Hugging Face transformers + PEFT, timed part by part.

The side-by-side of `tools/bench/hf_stage.sh`, which runs `trainer run` on the same stage and
prints both. What this script does is what the trainer's first stage does
(`trainer/configs/default.toml` with `data.first = 1`):

- data: exactly the trainer's examples, from `trainer data` (JSON on stdin or `--data FILE`):
  the first InsCL16 category in curriculum order, 64 training / 16 test instances;
- model: SmolLM2-135M-Instruct from the same GGUF file (transformers' GGUF loader dequantises
  Q4_1 to float32, as the trainer does), float32, `torch.set_num_threads(2)`; with `--device
  cuda` on the first CUDA GPU instead (float32 still), against `trainer run` with
  `model.device = "gpu"` (burn's wgpu backend); each part's clock stops after a device sync;
- prompt: the checkpoint's chat template around `Definition: {instruction}\n\nInput: {input}`;
  training sequences are prompt + output + `<|im_end|>`, the loss covers the response only;
  longer than 192 tokens, the input loses tokens from its left, then the instruction from its
  right, then the response from its end (`trainer/src/model.rs`);
- evaluation before and after training (zero-shot pass and stage 1): greedy `generate`, KV
  cache, left padding, batches of 12, at most `budget` new tokens where budget = the
  nearest-rank 95th percentile of the training outputs' token counts + 8, capped at 128;
  ROUGE-L is left out (it is not what is timed);
- training: PEFT LoRA r 8, α 16, dropout 0 on q, k, v, o; one epoch of batches of 4 in the
  trainer's bucketing rule (sorted by length within windows of 8 batches after a seeded
  shuffle of its own); AdamW lr 5e-4 (β 0.9/0.999, ε 1e-8, no weight decay), cosine
  schedule without warmup, gradient clipping at norm 1.

Prints one JSON line: seconds for load, zero-shot evaluation, training and evaluation, the
generated token count and the training tokens. Needs (pip, outside the repo): torch,
transformers, peft, gguf. Measured with torch 2.15.0, transformers 5.23.0, peft 0.21.2.

Run: `trainer data --set data.first=1 | python hf_stage.py --gguf assets/SmolLM2-135M-Instruct.Q4_1.gguf`
     `python hf_stage.py stamp -- trainer run ... --log-json` (stdlib only) runs the trainer,
     stamps its JSON progress events (stderr) on arrival and prints its parts the same way;
     `python hf_stage.py summarise DIR` (stdlib only) prints the table of the driver's results.
"""

import argparse
import json
import math
import os
import random
import sys
import time

MAX_LENGTH, BATCH, EVAL_BATCH, LR, RANK, ALPHA = 192, 4, 12, 5e-4, 8, 16.0
BUCKET_WINDOW = 8
QUANTILE, MARGIN, CAP = 0.95, 8, 128
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def prompt_segments(tokenizer, example):
    """Token segments [head, instruction, middle, input, tail] of the chat prompt."""
    marker_def, marker_input = "\x01DEFINITION\x01", "\x01INPUT\x01"
    user = (
        f"Definition: {marker_def}{marker_input}"
        if not example["input"]
        else f"Definition: {marker_def}\n\nInput: {marker_input}"
    )
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], add_generation_prompt=True, tokenize=False
    )
    head, rest = text.split(marker_def)
    middle, tail = rest.split(marker_input)
    encode = lambda s: tokenizer.encode(s, add_special_tokens=False)  # noqa: E731
    return [encode(head), encode(example["instruction"]), encode(middle),
            encode(example["input"]), encode(tail)]


def encode(segments, response, max_length):
    """The trainer's cut order: input from its left, instruction from its right, then the
    response from its end. Returns (ids, number of prompt tokens)."""
    segments = [list(s) for s in segments]
    response = list(response)
    excess = sum(map(len, segments)) + len(response) - max_length
    for index, from_left in ((3, True), (1, False)):
        if excess <= 0:
            break
        cut = min(excess, len(segments[index]))
        segments[index] = segments[index][cut:] if from_left else segments[index][: len(segments[index]) - cut]
        excess -= cut
    if excess > 0:
        response = response[: max(0, len(response) - excess)]
    prompt = [t for s in segments for t in s]
    return (prompt + response)[:max_length], len(prompt)


def budget(lengths):
    ordered = sorted(lengths)
    rank = min(max(math.ceil(QUANTILE * len(ordered)), 1), len(ordered))
    return max(1, min(ordered[rank - 1] + MARGIN, CAP))


def batches_by_length(lengths, seed):
    """Seeded shuffle, then sorted by length within windows of BUCKET_WINDOW batches."""
    order = list(range(len(lengths)))
    random.Random(seed).shuffle(order)
    window = BATCH * BUCKET_WINDOW
    out = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        out.extend(chunk[k:k + BATCH] for k in range(0, len(chunk), BATCH))
    return out


def evaluate(model, tokenizer, prompts, max_new_tokens, end_id, device):
    import torch

    generated = 0
    tokenizer.padding_side = "left"
    with torch.inference_mode():
        for start in range(0, len(prompts), EVAL_BATCH):
            chunk = prompts[start:start + EVAL_BATCH]
            width = max(map(len, chunk))
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_id
            ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=end_id, pad_token_id=pad)
            for row in out[:, width:].tolist():
                generated += next((k + 1 for k, t in enumerate(row) if t == end_id), len(row))
    return generated


def stamp(command):
    """Runs the trainer and splits its wall time at its progress events."""
    import subprocess

    started = time.perf_counter()
    events = []
    with subprocess.Popen(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True) as child:
        for line in child.stderr:
            try:
                events.append((time.perf_counter() - started, json.loads(line)))
            except json.JSONDecodeError:
                sys.stderr.write(line)
    total = time.perf_counter() - started
    if child.returncode != 0:
        sys.exit(f"trainer failed with exit code {child.returncode}")

    def first(kind, after=0.0):
        return next(t for t, e in events if e["event"] == kind and t >= after)

    zero = first("zero_shot")
    zero_done = first("eval_finished", zero)
    stage = first("stage_started", zero_done)
    evaluating = first("eval_started", stage)
    stage_done = first("stage_finished", evaluating)
    steps = [e for _, e in events if e["event"] == "step"]
    print(json.dumps({
        "impl": "trainer",
        "steps": len(steps),
        "seconds": {"load": zero + (stage - zero_done), "zero_shot": zero_done - zero,
                    "train": evaluating - stage, "eval": stage_done - evaluating, "total": total},
    }))


def summarise(folder):
    import glob
    import statistics

    parts = ["load", "zero_shot", "train", "eval", "total"]
    runs = {}
    for side in ("trainer", "hf"):
        rows = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(folder, f"{side}.*.json")))]
        runs[side] = {p: [r["seconds"][p] for r in rows] for p in parts}
    print(f"{'part':<10} | {'trainer s (runs)':<26} | {'transformers+peft s (runs)':<28} | speed-up")
    print("-" * 80)
    for p in parts:
        ours, theirs = runs["trainer"][p], runs["hf"][p]
        mean_ours, mean_theirs = statistics.mean(ours), statistics.mean(theirs)
        fmt = lambda v: ", ".join(f"{x:.1f}" for x in v)  # noqa: E731
        print(f"{p:<10} | {mean_ours:6.1f} ({fmt(ours)}){'':<{max(0, 17 - len(fmt(ours)))}} | "
              f"{mean_theirs:6.1f} ({fmt(theirs)}){'':<{max(0, 19 - len(fmt(theirs)))}} | "
              f"{mean_theirs / mean_ours:5.2f}x")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "stamp":
        return stamp(sys.argv[sys.argv.index("--") + 1:])
    if len(sys.argv) > 1 and sys.argv[1] == "summarise":
        return summarise(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", required=True, help="the GGUF checkpoint the trainer loads")
    parser.add_argument("--data", help="`trainer data` output (default: stdin)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()

    import peft
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = args.device
    if device == "cpu":
        torch.set_num_threads(2)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.manual_seed(args.seed)
    data = json.load(open(args.data) if args.data else sys.stdin)
    task = data["tasks"][0]

    started = time.perf_counter()
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).to(device)
    sync()
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    load_s = time.perf_counter() - started

    prompts = [encode(prompt_segments(tokenizer, e), [], MAX_LENGTH)[0] for e in task["test"]]
    lengths = [len(tokenizer.encode(o, add_special_tokens=False)) for e in task["train"] for o in e["output"]]
    max_new = budget(lengths)

    started = time.perf_counter()
    zero_shot_tokens = evaluate(model, tokenizer, prompts, max_new, end_id, device)
    sync()
    zero_shot_s = time.perf_counter() - started

    started = time.perf_counter()
    model = peft.get_peft_model(model, peft.LoraConfig(
        r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM"))
    encoded = []
    for e in task["train"]:
        response = tokenizer.encode(e["output"][0], add_special_tokens=False) + [end_id]
        encoded.append(encode(prompt_segments(tokenizer, e), response, MAX_LENGTH))
    plan = batches_by_length([len(ids) for ids, _ in encoded], args.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * step / len(plan))))
    model.train()
    train_tokens = 0
    for batch in plan:
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.tensor([encoded[i][0] + [end_id] * (width - len(encoded[i][0])) for i in batch])
        mask = torch.tensor([[1] * len(encoded[i][0]) + [0] * (width - len(encoded[i][0])) for i in batch])
        labels = ids.clone()
        for row, i in enumerate(batch):
            ids_i, prompt_len = encoded[i]
            labels[row, :prompt_len] = -100
            labels[row, len(ids_i):] = -100
        train_tokens += int(mask.sum())
        ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.eval()
    sync()
    train_s = time.perf_counter() - started

    started = time.perf_counter()
    eval_tokens = evaluate(model, tokenizer, prompts, max_new, end_id, device)
    sync()
    eval_s = time.perf_counter() - started

    print(json.dumps({
        "impl": "transformers+peft",
        "device": device,
        "task": task["name"],
        "train_examples": len(task["train"]),
        "test_examples": len(task["test"]),
        "steps": len(plan),
        "train_tokens": train_tokens,
        "max_new_tokens": max_new,
        "generated_tokens": {"zero_shot": zero_shot_tokens, "stage": eval_tokens},
        "seconds": {"load": load_s, "zero_shot": zero_shot_s, "train": train_s, "eval": eval_s,
                    "total": load_s + zero_shot_s + train_s + eval_s},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
    }))


if __name__ == "__main__":
    main()
