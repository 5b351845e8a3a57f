#!/usr/bin/env bash
# Tunes every model of Table 2 on one dataset with the same budget, then trains the
# tuned Table 2 from the exported configurations. Killed at any moment, the same
# command resumes (each study resumes from its runs/tune/<dataset>-<model>/study.db).
#
#   benchmarks/tune_table2.sh [DATASET] [TRIALS] [MODELS...]
#   benchmarks/tune_table2.sh scientific 12            # the committed configs/scientific
#   TIMEOUT=600 TUNE_ARGS="--epochs 30 --patience 10" \
#     benchmarks/tune_table2.sh planted_baby 4      # the committed configs/planted_baby
#
# Budget per model: at most TRIALS finished trials (a grid smaller than that is searched
# whole), each trial with the declared protocol (up to 1000 epochs, early stop after 20
# epochs without a better valid Recall@20), median pruning after 10 epochs, and a
# safety timeout of TIMEOUT seconds per study (default 1500) after which no new trial
# starts; TUNE_ARGS adds flags of dreamgeo tune to every study (e.g. a smaller epoch
# cap). The test split is never used to choose.
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-scientific}
trials=${2:-12}
shift $(( $# > 2 ? 2 : $# ))
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(bpr lightgcn vbpr mgcn freedom lgmrec bm3 slmrec dualgnn lattice dream)
fi
. benchmarks/tune_env.sh "$dataset"
for model in "${models[@]}"; do
  echo "== $(date -u +%H:%M:%S) tuning $model on $dataset ($trials trials)"
  python -m dreamgeo.commands tune --model "$model" "${data[@]}" --trials "$trials" \
    --timeout "${TIMEOUT:-1500}" --out-dir "runs/tune/$dataset-$model" \
    --export "configs/$dataset/$model.yaml" ${TUNE_ARGS:-}
done
