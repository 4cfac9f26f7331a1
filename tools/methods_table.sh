#!/usr/bin/env bash
# The continual-learning methods table of the README at the default main-job size: every
# `[method]` with `inscl` replay and with none (20 runs of `trainer run`, 10-50 minutes each
# on 2 cores), then `trainer compare` over them. Finished cells are skipped and an interrupted
# one is resumed (`trainer run --resume`), so the table continues where it stopped.
#
# Usage: tools/methods_table.sh [OUT=runs/methods] [extra `trainer run` arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/methods}
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/inscl/target}"
scripts/fetch-assets
scripts/fetch-data
cargo build --release --locked -p trainer
TRAINER=$CARGO_TARGET_DIR/release/trainer
mkdir -p "$OUT" "$OUT-logs"
for strategy in inscl none; do
    for method in seq ewc mas si tir agem lwf ema olora expand; do
        name=$strategy-$method
        [ -f "$OUT/$name/results.json" ] && continue
        echo "$(date +%T) $name (log: $OUT-logs/$name.log)" >&2
        if [ -f "$OUT/$name/run.json" ]; then
            "$TRAINER" run --resume "$OUT/$name" --quiet > "$OUT-logs/$name.log"
        else
            "$TRAINER" run --strategy "$strategy" --method "$method" --output "$OUT" \
                --name "$name" --quiet "$@" > "$OUT-logs/$name.log"
        fi
    done
done
"$TRAINER" compare "$OUT"/*/
