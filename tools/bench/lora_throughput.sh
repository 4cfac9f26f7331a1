#!/usr/bin/env bash
# SmolLM2-135M throughput and peak RSS, burn (llama crate, release) vs PyTorch (transformers +
# peft), on this machine's CPU, or with DEVICE=gpu on its GPU (burn's wgpu backend, built with
# the `wgpu` feature, against PyTorch on CUDA). Kept out of CI. Results and conditions: tools/bench/RESULTS.md.
#
# Usage: tools/bench/lora_throughput.sh [REPEATS=2] [MODES="train prefill decode"]
# Environment:
#   BENCH_VENV        venv with `pip install torch transformers peft` (default /root/.cache/bench-venv)
#   CARGO_TARGET_DIR  cargo target directory (default /root/.cache/bench-target)
#   GGUF              checkpoint for the burn side (default assets/SmolLM2-135M-Instruct.Q4_1.gguf)
#   WARMUP, STEPS     untimed / timed repetitions per process (default 2 / 5)
#   OUT               directory for the raw results (default: a new temporary directory)
#   DEVICE            cpu (default) or gpu
#   BIN               a lora_throughput binary built beforehand (skips the build here, e.g. one
#                     built with `cargo build --release -p trainer -p llama --example
#                     lora_throughput`, which shares the trainer's dependency features and cache)
# Needs /usr/bin/time (Debian package `time`) for the peak RSS.
#
# Each measurement is its own process under `/usr/bin/time -v`, so peak RSS is per workload;
# burn and PyTorch run back to back per workload, and the 1-minute load average is logged
# before each run because the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEATS=${1:-2}
MODES=${2:-"train prefill decode"}
VENV=${BENCH_VENV:-/root/.cache/bench-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/bench-target}
GGUF=${GGUF:-assets/SmolLM2-135M-Instruct.Q4_1.gguf}
WARMUP=${WARMUP:-2}
STEPS=${STEPS:-5}
OUT=${OUT:-$(mktemp -d)}
DEVICE=${DEVICE:-cpu}
mkdir -p "$OUT"

case $DEVICE in
    cpu) FEATURES=(); TORCH_DEVICE=cpu ;;
    gpu) FEATURES=(--features wgpu); TORCH_DEVICE=cuda ;;
    *) echo "DEVICE must be cpu or gpu, not '$DEVICE'" >&2; exit 2 ;;
esac
if [ -z "${BIN:-}" ]; then
    nice -n 5 cargo build --release -p llama "${FEATURES[@]}" --example lora_throughput
    BIN=$CARGO_TARGET_DIR/release/examples/lora_throughput
fi
ARGS=(--warmup "$WARMUP" --steps "$STEPS")

run() { # impl mode rep command...
    local name=$OUT/$1.$2.$3
    shift 3
    echo "$(date +%T) $name load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.log" >&2
    /usr/bin/time -v -o "$name.time" nice -n 5 "$@" > "$name.json"
}

for rep in $(seq "$REPEATS"); do
    for mode in $MODES; do
        run burn "$mode" "$rep" "$BIN" "$mode" --gguf "$GGUF" --device "$DEVICE" "${ARGS[@]}"
        run pytorch "$mode" "$rep" "$VENV/bin/python" tools/bench/lora_throughput.py "$mode" \
            --device "$TORCH_DEVICE" "${ARGS[@]}"
    done
done

echo "raw results: $OUT" >&2
grep -h -o '"versions": {[^}]*}' "$OUT"/pytorch.*.json | head -1 >&2 || true
python3 tools/bench/lora_throughput.py summarise "$OUT"
