"""The README's QaTa-COV19 figure: one Val_Folder X-ray, the released model's mask and its sentence.

The image is not hand-picked: it is the one whose per-image Dice is the median of an `lsms eval`
summary (benchmarks/results/qata_cpu/val-full/summary.json), so the figure shows a typical result.
Ground truth red, prediction green (yellow where both), the sentence and the Dice below.

    python benchmarks/qata_figure.py --checkpoint qata-cov19 \
        --summary benchmarks/results/qata_cpu/val-full/summary.json \
        --data ../shared/data/qata-cov19 --out docs/figures/qata_cov19_val_median.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def median_row(summary: Path) -> dict:
    """The per-sample row whose Dice is the median (the lower middle for an even count)."""
    rows = sorted(json.loads(summary.read_text())["per_sample"], key=lambda row: (row["dice"], row["id"]))
    return rows[(len(rows) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", default="qata-cov19", help="checkpoint folder or released name")
    parser.add_argument("--summary", type=Path, required=True, help="summary.json of lsms eval (full text)")
    parser.add_argument("--data", required=True, help="QaTa-COV19 root (LViT layout)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import lsms
    from lsms.atomic import atomic_write
    from lsms.data.io import load_image, load_mask
    from lsms.data.loading import load_samples
    from lsms.viz.overlay import captioned_overlay

    row = median_row(args.summary)
    sample = next(s for s in load_samples(args.data, split=args.split) if s.id == row["id"])
    model = lsms.from_pretrained(args.checkpoint)
    prediction = model.segment(sample.image, sample.text)  # the precision lsms eval used (auto)
    target = load_mask(sample.mask)
    dice = 2 * np.logical_and(prediction, target).sum() / max(prediction.sum() + target.sum(), 1)
    caption = f'"{sample.text}"  (Dice {100 * dice:.1f}; median of {args.split})'
    figure = captioned_overlay(load_image(sample.image), prediction=prediction, text=caption, mask=target)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: Image.fromarray(figure).save(tmp, format="PNG"))
    print(f"{args.out}: {sample.id}, Dice {100 * dice:.2f} (summary: {100 * row['dice']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
