#!/usr/bin/env bash
# QaTa-COV19 on one GPU (H100/H200) in under 10 minutes: the paper's recipe (configs/qata_paper.yaml:
# default preset, 224x224, batch 16, AdamW 3e-5 with poly decay) cut to a step budget, bf16 autocast,
# then evaluation of the best checkpoint on all of Val_Folder. Results: benchmarks/results/qata_gpu/.
# The lr is raised to 3e-4 because the encoder starts from scratch (no ImageNet weights offline).
#
#   bash benchmarks/qata_gpu.sh [DATA_ROOT] [STEPS] [extra key=value overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/qata-cov19}"
steps="${2:-2500}"
shift 2 || shift $# || true
out=benchmarks/results/qata_gpu
run=runs/qata_gpu
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $(nproc) cores"
  echo "command: bash benchmarks/qata_gpu.sh $data $steps $*"
} > "$out/run_info.txt"
start=$(date +%s)
lsms train --config configs/qata_paper.yaml "data.train=$data" "train.run_dir=$run" train.device=cuda \
  train.precision=bf16 "train.max_steps=$steps" train.val_every=500 optim.lr=3e-4 train.threads=8 \
  data.num_workers=8 train.progress=false "$@"
echo "train_seconds: $(( $(date +%s) - start ))" >> "$out/run_info.txt"
cp "$run/log.csv" "$out/log.csv"
for text in full shuffled; do
  lsms eval --checkpoint "$run/best" --data "$data" --split val --text "$text" --out "$out/val-$text" \
    --device cuda --batch-size 64 --no-progress
done
echo "total_seconds: $(( $(date +%s) - start ))" >> "$out/run_info.txt"
cat "$out/run_info.txt"
