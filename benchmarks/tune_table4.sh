#!/usr/bin/env bash
# BMA as a plug-in (Table 4) with a tuned weight: for each model, its tuned configuration
# (configs/<dataset>/<model>.yaml) is fixed and BMA's intra/inter weights are searched on
# their declared grid {0, 0.01, 0.03} x {0, 0.01, 0.03} (9 points; weight 0 switches a
# part off, so the tuned plug-in can only match or beat the model without it on valid).
# Then `dreamgeo experiment table4 --tuned` trains both rows from the exported files.
# No pruning: in VBPR's study (run with median pruning) the three points with intra weight
# 0, the model without BMA among them, were pruned at epoch 10 (valid R@20 0.016-0.017,
# under the finished trials' median) although VBPR without BMA ends at 0.2205; BMA changes how fast
# a model starts, so early epochs do not rank these points. Each grid is 9 full trials.
#
#   benchmarks/tune_table4.sh [DATASET] [MODELS...]
#   benchmarks/tune_table4.sh planted_baby vbpr     # the planted preset (its configs
#                                                   # carry Table 2's 30-epoch cap)
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-scientific}
shift $(( $# > 0 ? 1 : 0 ))
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(vbpr bm3 freedom mgcn)
fi
. benchmarks/tune_env.sh "$dataset"
for model in "${models[@]}"; do
  echo "== $(date -u +%H:%M:%S) tuning BMA in $model on $dataset"
  # the tuned configuration without its (inactive) BMA keys, which would pin them
  base="runs/tune/$dataset-$model-bma/base.yaml"
  mkdir -p "$(dirname "$base")"
  grep -v '^bma' "configs/$dataset/$model.yaml" > "$base"
  python -m dreamgeo.commands tune --model "$model" "${data[@]}" \
    --config "$base" --set bma=true --sampler grid --trials 9 --no-prune \
    --out-dir "runs/tune/$dataset-$model-bma" --export "configs/$dataset/$model-bma.yaml"
done
