#!/usr/bin/env bash
# Stage 2 of the tuning, the same for every model it is run for: each model's tuned
# configuration (configs/<dataset>/<model>.yaml, stage 1: the declared space, Table 2) is
# fixed and its structure is grid-searched on top of it: the item-item (DREAM: relation)
# graph's neighbours knn_k in {5, 10} and the user-item depth num_layers in {2, 3}, each
# where the model declares it (LGMRec has no knn_k). Stage 1's point is one of the grid
# points and is run again, so a study can only match or beat stage 1 on valid. No
# pruning (4 full trials at most). The best is retrained (valid and test, seed 0) and
# exported to configs/<dataset>/structure/<model>.yaml.
#
#   benchmarks/tune_structure.sh [DATASET] [MODELS...]   # DATASET may be planted_<preset>
set -euo pipefail
cd "$(dirname "$0")/.."
dataset=${1:-scientific}
shift $(( $# > 0 ? 1 : 0 ))
models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  models=(mgcn dream freedom lgmrec)
fi
. benchmarks/tune_env.sh "$dataset"
for model in "${models[@]}"; do
  echo "== $(date -u +%H:%M:%S) structure stage of $model on $dataset"
  search=(--search num_layers=2,3)
  if grep -q '^knn_k:' "configs/$dataset/$model.yaml"; then
    search+=(--search knn_k=5,10)
  fi
  python -m dreamgeo.commands tune --model "$model" "${data[@]}" \
    --config "configs/$dataset/$model.yaml" "${search[@]}" --sampler grid --trials 4 \
    --no-prune ${TUNE_ARGS:-} --out-dir "runs/tune/$dataset-$model-structure" \
    --study-name "$dataset-$model-structure" \
    --export "configs/$dataset/structure/$model.yaml"
done
