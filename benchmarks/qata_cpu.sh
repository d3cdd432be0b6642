#!/usr/bin/env bash
# QaTa-COV19 on the CPU in at most 2 hours: train the recipe of configs/qata_cpu.yaml (chosen on held-out
# Train_Folder images with benchmarks/qata_recipe.py), selecting checkpoints on a fixed held-out subset of
# Train_Folder, then evaluate the selected model on ALL of Val_Folder with the full text, shuffled text
# (another image's sentence) and no text, in both Dice conventions (per image and pooled).
# Results: benchmarks/results/qata_cpu/ (run_info.txt, log.csv, loss.png, val-*/summary.json, results.md).
#
#   bash benchmarks/qata_cpu.sh [DATA_ROOT] [extra key=value overrides...]
#   QATA_NAME=qata_cpu_long bash benchmarks/qata_cpu.sh ... writes benchmarks/results/qata_cpu_long/ and
#   runs/qata_cpu_long/ instead (variants side by side).
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/qata-cov19}"
shift || true
name="${QATA_NAME:-qata_cpu}"
out="benchmarks/results/$name"
run="runs/$name"
mkdir -p "$out"
rm -rf "$run"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
  echo "torch: $(python -c 'import torch; print(torch.__version__)')"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "command: QATA_NAME=$name bash benchmarks/qata_cpu.sh $data $*"
} > "$out/run_info.txt"
start=$(date +%s)
OMP_NUM_THREADS=1 lsms train --config configs/qata_cpu.yaml "data.train=$data" "train.run_dir=$run" \
  train.progress=false "$@"
echo "train_seconds: $(( $(date +%s) - start ))" >> "$out/run_info.txt"
cp "$run/log.csv" "$run/config.yaml" "$out/"
cp "$run/loss.png" "$out/loss.png" 2>/dev/null || true
# One thread: on a shared 2-core machine two threads per process stall.
for text in full shuffled none; do
  s=$(date +%s)
  OMP_NUM_THREADS=1 lsms eval --checkpoint "$run/best" --data "$data" --split val --text "$text" \
    --out "$out/val-$text" --batch-size 16 --no-progress
  echo "eval_${text}_seconds: $(( $(date +%s) - s ))" >> "$out/run_info.txt"
done
echo "total_seconds: $(( $(date +%s) - start ))" >> "$out/run_info.txt"
python - "$out" <<'EOF'
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
lines = [
    "| text | n | Dice per image | mIoU per image | Dice pooled | IoU pooled (oIoU) |",
    "|---|---:|---:|---:|---:|---:|",
]
for text in ("full", "shuffled", "none"):
    means = json.loads((out / f"val-{text}" / "summary.json").read_text())["means"]
    lines.append(
        f"| {text} | {means['n']} | {100 * means['dice']:.2f} | {100 * means['miou']:.2f} "
        f"| {100 * means['pooled_dice']:.2f} | {100 * means['oiou']:.2f} |"
    )
table = "\n".join(lines) + "\n"
(out / "results.md").write_text(
    "QaTa-COV19 Val_Folder (all images), model selected on held-out Train_Folder images.\n\n" + table
)
print(table)
EOF
cat "$out/run_info.txt"
