#!/usr/bin/env bash
# The scale table of tools/bench/RESULTS.md: one LoRA step (batch 1 x 256 tokens, r 8 on q, k, v,
# o) of random-weight checkpoints with real models' layer shapes (tools/bench/scale_checkpoints.py),
# burn (llama/examples/lora_throughput.rs) with the base kept in bf16 and in Q4_K, beside PyTorch
# + PEFT with a bf16 base (tools/bench/scale_step.py), each its own process under
# `/usr/bin/time -v` for the peak RSS. Kept out of CI.
#
# Usage: tools/bench/scale.sh [SIZES="smollm2-360m tinyllama-1b llama3.2-3b llama-7b llama3-8b"]
# Environment:
#   SCALE_DIR         where checkpoints are written, one at a time, and deleted after their runs
#                     (default /tmp/inscl-scale; a 7B bf16 one is 13 GB: keep it off the repo)
#   BENCH_VENV        venv with torch, transformers, peft, numpy, safetensors, gguf
#                     (default /root/.cache/bench-venv)
#   CARGO_TARGET_DIR  cargo target directory (default /root/.cache/bench-target)
#   BIN               a lora_throughput binary built beforehand (skips the build, as in
#                     lora_throughput.sh)
#   FORMATS           burn's bases (default "bf16 q4_k")
#   CHECKPOINT        1: burn recomputes each layer in the backward pass (--checkpoint-layers),
#                     PyTorch with gradient checkpointing (default 0)
#   TORCH             0 skips the PyTorch runs (default 1)
#   WARMUP, STEPS     untimed / timed steps per process (default 1 / 2)
#   OUT               directory for the raw results (default: a new temporary directory)
set -euo pipefail
cd "$(dirname "$0")/../.."

SIZES=${1:-"smollm2-360m tinyllama-1b llama3.2-3b llama-7b llama3-8b"}
SCALE_DIR=${SCALE_DIR:-/tmp/inscl-scale}
VENV=${BENCH_VENV:-/root/.cache/bench-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/bench-target}
FORMATS=${FORMATS:-"bf16 q4_k"}
CHECKPOINT=${CHECKPOINT:-0}
TORCH=${TORCH:-1}
WARMUP=${WARMUP:-1}
STEPS=${STEPS:-2}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT" "$SCALE_DIR"

if [ -z "${BIN:-}" ]; then
    nice -n 19 cargo build --release -p llama --example lora_throughput
    BIN=$CARGO_TARGET_DIR/release/examples/lora_throughput
fi
BURN_ARGS=(train --batch 1 --seq 256 --targets qkvo --base-precision stored --warmup "$WARMUP" --steps "$STEPS")
TORCH_ARGS=(--warmup "$WARMUP" --steps "$STEPS")
if [[ $CHECKPOINT == 1 ]]; then
    BURN_ARGS+=(--checkpoint-layers)
    TORCH_ARGS+=(--gradient-checkpointing)
fi

run() { # name command...
    local name=$OUT/$1
    shift
    echo "$(date +%T) $name load: $(cut -d' ' -f1-3 /proc/loadavg), free: $(df -h --output=avail "$SCALE_DIR" | tail -1)" \
        | tee -a "$OUT/load.log" >&2
    /usr/bin/time -v -o "$name.time" nice -n 19 "$@" > "$name.json" || echo "$name failed" >&2
}

for size in $SIZES; do
    for format in $FORMATS; do
        case $format in
            bf16) ckpt=$SCALE_DIR/$size-bf16 ;;
            *) ckpt=$SCALE_DIR/$size-$format.gguf ;;
        esac
        nice -n 19 "$VENV/bin/python" tools/bench/scale_checkpoints.py "$size" "$format" "$ckpt"
        du -sb "$ckpt" | cut -f1 > "$OUT/$size.burn-$format.bytes"
        run "$size.burn-$format" "$BIN" "${BURN_ARGS[@]}" --model "$ckpt"
        if [[ $format == bf16 && $TORCH == 1 ]]; then
            run "$size.pytorch" "$VENV/bin/python" tools/bench/scale_step.py "$ckpt" "${TORCH_ARGS[@]}"
        fi
        rm -rf "$ckpt"
    done
done

echo "raw results: $OUT" >&2
"$VENV/bin/python" tools/bench/scale_step.py summarise "$OUT"
