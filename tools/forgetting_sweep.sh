#!/usr/bin/env bash
# The sweep that chose the embedded default's forgetting regime (README, "Where fine-tuning
# forgets"): plain sequential fine-tuning (`--strategy none`) and random replay at the points
# below, each a `trainer run` per seed. Every point pins what it changes from the settings the
# sweep started from (the earlier default: LoRA r 8 on q/k/v/o, 64 training instances a
# category, lr 5e-4, 16 steps a stage), so it does not move with the embedded default. Finished
# runs are skipped and an interrupted one is resumed. Then tools/forgetting_sweep.py prints the
# table and writes studies/forgetting-sweep.json.
#
# Usage: tools/forgetting_sweep.sh [OUT=runs/forgetting-sweep] [POINT...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/forgetting-sweep}
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/inscl/target}"
scripts/fetch-assets
scripts/fetch-data
cargo build --release --locked -p trainer
TRAINER=$CARGO_TARGET_DIR/release/trainer

LABELS=Classification,Text_Quality_Evaluation,Detection,Sentiment_Analysis
MIXED=Detection,Rewriting,Sentiment_Analysis,Generation
REWRITE_LAST=Classification,Detection,Sentiment_Analysis,Rewriting
BASE=(--set data.max_train=64 --set data.max_test=24 --set training.lr=5e-4)
# point | strategies | seeds | tasks | overrides
POINTS=(
  "L4|none|0|$LABELS|"
  "L4e3|none|0|$LABELS|training.epochs=3"
  "L4lr2e3|none|0,1,2|$LABELS|training.lr=2e-3"
  "L4full|none|0,1|$LABELS|training.method=\"full\" training.lr=5e-5"
  "MX4|none|0|$MIXED|"
  "MX4lr1e3|none|0|$MIXED|training.lr=1e-3"
  "LR4|none|0,1,2|$REWRITE_LAST|"
  "LR4|random|0|$REWRITE_LAST|"
  "LR4lr1e3|none|0|$REWRITE_LAST|training.lr=1e-3"
  "LR4n128lr1e3|none,random|0,1,2|$REWRITE_LAST|data.max_train=128 training.lr=1e-3"
)
mkdir -p "$OUT" "$OUT-logs"
for spec in "${POINTS[@]}"; do
  IFS='|' read -r point strategies seeds tasks overrides <<< "$spec"
  if [[ $# -gt 0 && ! " $* " =~ " $point " ]]; then continue; fi
  sets=("${BASE[@]}")
  for o in $overrides; do sets+=(--set "$o"); done
  for strategy in ${strategies//,/ }; do
    for seed in ${seeds//,/ }; do
      name=$point-$strategy-s$seed
      [[ -f "$OUT/$name/results.json" ]] && continue
      echo "$(date +%T) $name (log: $OUT-logs/$name.log)" >&2
      if [[ -f "$OUT/$name/run.json" ]]; then
        "$TRAINER" run --resume "$OUT/$name" --quiet > "$OUT-logs/$name.log" 2>&1
      else
        "$TRAINER" run --strategy "$strategy" --seed "$seed" --tasks "$tasks" "${sets[@]}" \
          --output "$OUT" --name "$name" --quiet > "$OUT-logs/$name.log" 2>&1
      fi
    done
  done
done
python3 tools/forgetting_sweep.py "$OUT"
