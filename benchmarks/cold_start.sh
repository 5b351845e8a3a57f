#!/usr/bin/env bash
# Cold-start items on the embedded scientific data: 10 % of the items held out with all
# their interactions (drawn with the seed), each model trained with the paper's protocol
# at its declared defaults on the rest, then ranked on the held-out items from their
# features (dreamgeo train --cold-items). Resumable: a finished run (result.json) is
# skipped. Usage: benchmarks/cold_start.sh [SEEDS] [MODELS]; then
# python benchmarks/collect_cold_start.py
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-"0 1 2"}
MODELS=${2:-"dream mgcn freedom lattice vbpr"}
OUT=${OUT:-runs/cold-start}
for seed in $SEEDS; do
  for model in $MODELS; do
    dir="$OUT/$model-seed$seed"
    if [ -f "$dir/result.json" ]; then continue; fi
    python -m dreamgeo.commands train --model "$model" --seed "$seed" --cold-items 0.1 \
      --out-dir "$dir" --overwrite --no-progress ${TRAIN_ARGS:-} > "$dir.log" 2>&1 \
      || { echo "failed: $dir (see $dir.log)"; continue; }
    echo "done: $dir"
  done
done
