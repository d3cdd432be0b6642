"""Choose the CPU recipe for QaTa-COV19 on held-out training images only (Val_Folder stays untouched).

Each variant is one short `lsms train` run of configs/qata_cpu.yaml reset to a base recipe (lr 5e-4,
no warm-up, no augmentation, 224x224) plus a few overrides, selected and
scored on a fixed, seeded subset of Train_Folder (``data.holdout``) that is left out of its training.
Per variant: holdout Dice (per image) at the end of the budget, training seconds and images/s.

    python benchmarks/qata_recipe.py --variants base warmup_lr1e-3 --steps 300
    python benchmarks/qata_recipe.py --report        # table of every finished variant

Run two invocations side by side (one thread each) on a 2-core machine. Results:
benchmarks/results/qata_recipe/<variant>.json and table.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from common import machine_info

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "qata_recipe"
AFFINE = "{hflip: 0.5, rotate: 10, scale: 0.1, translate: 0.05}"

# name -> (what it tests, overrides on top of the common ones)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "base": ("lr 5e-4, no warm-up, no augmentation, 224x224 throughout, batch 8, Dice + BCE", []),
    "warmup": ("linear warm-up over 10% of the steps", ["optim.warmup_steps={warmup}"]),
    "warmup_lr1e-3": (
        "lr 1e-3 with warm-up (without it, 1e-3 diverged)",
        ["optim.lr=1e-3", "optim.warmup_steps={warmup}"],
    ),
    "augment": (
        "flip with left/right swapped in the text, small affine, intensity jitter",
        [f"data.augment={AFFINE}", "optim.warmup_steps={warmup}"],
    ),
    "ema": ("moving average of the weights (decay 0.99)", ["train.ema=0.99", "optim.warmup_steps={warmup}"]),
    "size160": (
        "160x160 for the first 60% of the steps, then 224x224",
        ["data.size_schedule=[[0, 160, 160], [0.6, 224, 224]]", "optim.warmup_steps={warmup}"],
    ),
    "batch16": (
        "batch 16 for half the steps (same images seen)",
        ["train.batch_size=16", "train.max_steps={half}", "optim.warmup_steps={half_warmup}"],
    ),
    "dice_only": ("Dice loss without BCE", ["loss.bce_weight=0", "optim.warmup_steps={warmup}"]),
}


def fill(item: str, values: dict[str, int]) -> str:
    """Replace ``{warmup}``-style placeholders (not str.format: overrides hold YAML braces)."""
    for key, value in values.items():
        item = item.replace("{" + key + "}", str(value))
    return item


def run_variant(name: str, steps: int, holdout: int, data: str) -> dict:
    description, extra = VARIANTS[name]
    values = {"warmup": steps // 10, "half": steps // 2, "half_warmup": steps // 20}
    overrides = [
        f"data.train={data}",
        "data.val_split=null",
        "data.max_val_samples=null",
        f"data.holdout={holdout}",
        # the base recipe, whatever configs/qata_cpu.yaml holds now
        "data.size_schedule=null",
        "optim.warmup_steps=0",
        "train.log_every=10",
        f"train.max_steps={steps}",
        f"train.val_every={steps}",
        "train.progress=false",
        "train.threads=1",
        *[fill(item, values) for item in extra],
    ]
    run_dir = ROOT / "runs" / "qata_recipe" / name
    shutil.rmtree(run_dir, ignore_errors=True)
    command = ["lsms", "train", "--config", "configs/qata_cpu.yaml", f"train.run_dir={run_dir}", *overrides]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - start
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    val = [row for row in rows if row.get("val_dice")]
    speeds = [float(row["images_per_s"]) for row in rows if row.get("images_per_s")]
    return {
        "variant": name,
        "what": description,
        "overrides": overrides[3:],
        "holdout_dice": 100 * float(val[-1]["val_dice"]),
        "holdout_miou": 100 * float(val[-1]["val_miou"]),
        "holdout_pooled_dice": 100 * float(val[-1]["val_pooled_dice"]),
        "train_seconds": round(seconds, 1),
        "images_per_s": round(sum(speeds) / len(speeds), 2),
        "command": " ".join(command[:4] + overrides),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
    }


def report() -> str:
    rows = [json.loads(path.read_text()) for path in sorted(OUT.glob("*.json"))]
    order = list(VARIANTS)
    rows.sort(key=lambda row: order.index(row["variant"]) if row["variant"] in order else len(order))
    lines = [
        "| variant | what | holdout Dice (per image) | mIoU | pooled Dice | train s | img/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['what']} | {row['holdout_dice']:.2f} | {row['holdout_miou']:.2f} "
            f"| {row['holdout_pooled_dice']:.2f} "
            f"| {row['train_seconds']:.0f} | {row['images_per_s']:.2f} |"
        )
    table = "\n".join(lines) + "\n"
    (OUT / "table.md").write_text(table, encoding="utf-8")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="*", default=[], choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--holdout", type=int, default=300, help="Train_Folder images held out for scoring")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "qata-cov19"))
    parser.add_argument("--report", action="store_true", help="print and write the table of finished runs")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        result = run_variant(name, args.steps, args.holdout, args.data)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result), flush=True)
    if args.report:
        print(report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
