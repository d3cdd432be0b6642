#!/usr/bin/env bash
# QaTa-COV19 on the CPU: train the default LSMS preset at 224x224 for a fixed step budget
# (configs/qata_cpu.yaml), then evaluate the best checkpoint on all of Val_Folder with the full text
# and with shuffled text (the no-text control). Results: benchmarks/results/qata_cpu/.
#
#   bash benchmarks/qata_cpu.sh [DATA_ROOT] [extra key=value overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/qata-cov19}"
shift || true
out=benchmarks/results/qata_cpu
run=runs/qata_cpu
mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem/ {print $2}') GiB"
  echo "command: bash benchmarks/qata_cpu.sh $data $*"
} > "$out/run_info.txt"
start=$(date +%s)
lsms train --config configs/qata_cpu.yaml "data.train=$data" "train.run_dir=$run" train.progress=false "$@"
echo "train_seconds: $(( $(date +%s) - start ))" >> "$out/run_info.txt"
cp "$run/log.csv" "$out/log.csv"
cp "$run/loss.png" "$out/loss.png" 2>/dev/null || true
# One thread: on a shared 2-core machine two threads per process stall (measured 5x slower here).
for text in full shuffled; do
  s=$(date +%s)
  OMP_NUM_THREADS=1 lsms eval --checkpoint "$run/best" --data "$data" --split val --text "$text" \
    --out "$out/val-$text" --batch-size 16 --no-progress
  echo "eval_${text}_seconds: $(( $(date +%s) - s ))" >> "$out/run_info.txt"
done
echo "total_seconds: $(( $(date +%s) - start ))" >> "$out/run_info.txt"
cat "$out/run_info.txt"
