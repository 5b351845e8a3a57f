#!/usr/bin/env bash
# Table 3 (DREAM's ablations) on the planted baby preset, over seeds, one run at a time
# (each run uses both cores; two side by side are no faster on 2 cores) in the order
# given: ROW:SEED pairs, most uncertain rows first. Protocol of the baby options study
# (benchmarks/results/dream-options-baby.md): configs/planted_baby/dream.yaml (= the
# declared defaults), 30 epochs, patience 20. A finished run is reused and a killed one
# resumes from its checkpoint, so the script can be stopped and started again; after
# every run the evidence file benchmarks/results/table3-tuned-planted_baby.json and its
# table are brought up to date.
#
#   benchmarks/table3_planted_baby.sh [ROW:SEED ...]
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=("$@")
if [ ${#pairs[@]} -eq 0 ]; then
  for row in full no_s3 no_intra no_inter no_encoders no_relation_graphs no_alignment \
             no_text_encoder no_image_encoder no_filter_gate; do
    for seed in 0 1 2; do pairs+=("$row:$seed"); done
  done
fi
out=runs/experiments/planted_baby-table3-tuned
for pair in "${pairs[@]}"; do
  row=${pair%%:*}
  seed=${pair##*:}
  echo "== $(date -u +%H:%M:%S) $row seed $seed"
  python -m dreamgeo.commands experiment table3 --preset baby --tuned --ablations "$row" \
    --seeds "$seed" --epochs 30 --patience 20 --out-root "$out"
  python benchmarks/collect_table3.py planted_baby --sync \
    > benchmarks/results/table3-tuned-planted_baby.md
done
