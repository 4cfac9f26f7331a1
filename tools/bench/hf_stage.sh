#!/usr/bin/env bash
# One stage of the default main job, end to end: `trainer run` (release) against Hugging Face
# transformers + PEFT (tools/bench/hf_stage.py) on the very same examples (`trainer data`), run
# back to back REPEATS times. Prints each side's seconds per part and the ratios. Kept out of
# CI. Results and conditions: tools/bench/RESULTS.md.
#
# Usage: tools/bench/hf_stage.sh [REPEATS=2]
# Environment:
#   BENCH_VENV        venv with `pip install torch transformers peft gguf` (default /root/.cache/bench-venv)
#   CARGO_TARGET_DIR  cargo target directory (default $HOME/.cache/inscl/target)
#   GGUF              checkpoint for both sides (default assets/SmolLM2-135M-Instruct.Q4_1.gguf)
#   OUT               directory for the raw results (default: a new temporary directory)
#   DEVICE            cpu (default), or gpu: the trainer built with `--features gpu` and
#                     `model.device = "gpu"` (wgpu) against transformers on CUDA
#
# The trainer side is `trainer run --set data.first=1` (one task, so one stage: zero-shot pass,
# training, evaluation) with JSON progress events, each stamped on arrival; its parts are the
# gaps between events (load = start to `run_started`, which includes tags and embeddings).
set -euo pipefail
cd "$(dirname "$0")/../.."

REPEATS=${1:-2}
VENV=${BENCH_VENV:-/root/.cache/bench-venv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/inscl/target}
GGUF=${GGUF:-assets/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${OUT:-$(mktemp -d)}
DEVICE=${DEVICE:-cpu}
mkdir -p "$OUT"

case $DEVICE in
    cpu) FEATURES=(); TORCH_DEVICE=cpu ;;
    gpu) FEATURES=(--features gpu); TORCH_DEVICE=cuda ;;
    *) echo "DEVICE must be cpu or gpu, not '$DEVICE'" >&2; exit 2 ;;
esac

scripts/fetch-assets
scripts/fetch-data
cargo build --release --locked -p trainer "${FEATURES[@]}"
TRAINER=$CARGO_TARGET_DIR/release/trainer
SET=(--set data.first=1 --set "model.path=\"$GGUF\"" --set "model.device=\"$DEVICE\"")
"$TRAINER" data "${SET[@]}" > "$OUT/data.json"

for rep in $(seq "$REPEATS"); do
    echo "$(date +%T) trainer $rep, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.log" >&2
    rm -rf "$OUT/runs"
    "$VENV/bin/python" tools/bench/hf_stage.py stamp -- "$TRAINER" run "${SET[@]}" \
        --set "output.dir=\"$OUT/runs\"" --quiet --log-json > "$OUT/trainer.$rep.json"
    echo "$(date +%T) transformers+peft $rep, load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.log" >&2
    "$VENV/bin/python" tools/bench/hf_stage.py --gguf "$GGUF" --data "$OUT/data.json" \
        --device "$TORCH_DEVICE" > "$OUT/hf.$rep.json"
done
echo "raw results: $OUT" >&2
"$VENV/bin/python" tools/bench/hf_stage.py summarise "$OUT"
