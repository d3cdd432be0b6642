"""Do a trained LSMS's image features tell the lesions' appearance apart? A linear probe per attribute.

Partial expressions that keep only appearance words (type, diameter, shape, boundary, enhancement) send
the demo's model to another lesion far more often than those that keep the location
(``benchmarks/partial_text.py``). This script asks whether the *image* features carry the appearance at
all: for every row of a synthetic data set (one lesion of one slice), the model's stage features F1..F4
for a neutral sentence ("A lesion.") are averaged over the lesion's mask and concatenated; a multinomial
logistic regression (standardised features, L2, full-batch L-BFGS) is fitted per attribute on the
``--fit-split`` rows and scored on the ``--split`` rows with balanced accuracy (chance = 1 / classes).
Diameter is binned into tertiles of the fitted rows. Three feature sets:

- ``trained``: the model of ``--model``;
- ``untrained``: the same preset freshly initialised (what the architecture gives without training);
- ``pixels``: hand-made statistics of the image inside the mask (mean, spread, percentiles, area,
  perimeter^2 / area, and the mean of a 2-pixel ring around it) -- what is plainly visible.

    python benchmarks/appearance_probe.py --model runs/demo/run/best --data runs/demo/data \
        --out benchmarks/results/appearance_probe
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import machine_info, now_utc

import lsms
from lsms.atomic import atomic_write_text
from lsms.data.io import load_mask
from lsms.data.lesions import read_lesion_table
from lsms.data.loading import load_samples

ATTRIBUTES = {
    "type": "type",
    "diameter": "diameter_mm",
    "shape": "shape",
    "boundary": "boundary",
    "enhancement": "ring",
}
NEUTRAL_SENTENCE = "A lesion."


def load_split(preprocess, samples) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The images (H, W) in [0, 1] and lesion masks bool (H, W) of the rows, read once and shared by
    every feature set."""
    return [preprocess.read(sample.image) for sample in samples], [
        load_mask(sample.mask) for sample in samples
    ]


def pooled_features(model, preprocess, images, masks, batch_size: int = 32) -> np.ndarray:
    """(rows, sum C_i): F1..F4 for the neutral sentence, averaged over each row's lesion mask."""
    rows = []
    model.eval()
    for start in range(0, len(images), batch_size):
        chunk = slice(start, start + batch_size)
        batch_masks = torch.stack([_resize_mask(mask, preprocess.image_size) for mask in masks[chunk]])
        tokens = model.tokenize([NEUTRAL_SENTENCE] * len(batch_masks))
        with torch.no_grad():
            _, features = model(preprocess.batch(images[chunk]), **tokens, return_features=True)
        pooled = []
        for feature in features:
            weight = F.adaptive_avg_pool2d(batch_masks, feature.shape[-2:])  # the mask's share of each cell
            pooled.append((feature * weight).sum((2, 3)) / weight.sum((2, 3)).clamp(min=1e-6))
        rows.append(torch.cat(pooled, dim=1))
    return torch.cat(rows).float().numpy()


def pixel_features(images, masks) -> np.ndarray:
    """(rows, 9): intensity statistics inside the mask, its area, compactness and the ring's mean."""
    rows = []
    for image, mask in zip(images, masks, strict=True):
        image = image.astype(np.float32)
        inside = image[mask]
        dilated = F.max_pool2d(torch.from_numpy(mask[None].astype(np.float32)), 5, 1, 2)[0].numpy() > 0
        ring = image[dilated & ~mask]
        eroded = -F.max_pool2d(-torch.from_numpy(mask[None].astype(np.float32)), 3, 1, 1)[0].numpy() > 0
        perimeter = (mask & ~eroded).sum()
        rows.append(
            [
                inside.mean(),
                inside.std(),
                *np.percentile(inside, [10, 50, 90]),
                mask.sum(),
                perimeter**2 / max(mask.sum(), 1),
                ring.mean() if ring.size else 0.0,
                inside.mean() - (ring.mean() if ring.size else 0.0),
            ]
        )
    return np.asarray(rows, dtype=np.float32)


def _resize_mask(mask: np.ndarray, size) -> torch.Tensor:
    """A bool (H, W) mask as float (1, h, w), each pixel the share of the mask it covers."""
    return F.interpolate(
        torch.from_numpy(mask.astype(np.float32))[None, None], size=tuple(size), mode="area"
    )[0]


def labels(samples, table: dict, attribute: str, bins: np.ndarray | None) -> np.ndarray:
    values = [table[sample.id][ATTRIBUTES[attribute]] for sample in samples]
    if attribute == "diameter":
        return np.digitize(np.asarray(values, dtype=np.float64), bins)
    return np.asarray(values)


def probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> float:
    """Balanced accuracy on the test rows of a multinomial logistic regression fitted on the train rows."""
    classes = sorted(set(train_y.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.from_numpy((train_x - mean) / std).double()
    y = torch.tensor([index[c] for c in train_y])
    linear = torch.nn.Linear(x.shape[1], len(classes)).double()
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(x), y) + 1e-3 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        predicted = linear(torch.from_numpy((test_x - mean) / std).double()).argmax(1).numpy()
    recalls = []
    for c in sorted(set(test_y.tolist())):
        chosen = test_y == c
        recalls.append(float((predicted[chosen] == index.get(c, -1)).mean()))
    return float(np.mean(recalls))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, type=Path, help="a trained LSMS checkpoint folder")
    parser.add_argument("--data", required=True, type=Path, help="a synthetic data folder (with lesions.csv)")
    parser.add_argument("--fit-split", default="train")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/appearance_probe"))
    args = parser.parse_args()
    torch.manual_seed(0)
    manifest = args.data / "manifest.csv"
    table = read_lesion_table(manifest)
    if table is None:
        raise SystemExit(
            f"{args.data}: no lesions.csv beside manifest.csv (a synthetic data folder is needed)"
        )
    fit, test = load_samples(manifest, split=args.fit_split), load_samples(manifest, split=args.split)
    trained = lsms.from_pretrained(args.model)
    preprocess = trained.preprocess
    untrained = type(trained)(trained.config)  # the same architecture, freshly initialised (seed 0)
    untrained.load_state_dict(
        {k: v for k, v in trained.state_dict().items() if k.startswith("text_encoder.")}, strict=False
    )
    splits = (load_split(preprocess, fit), load_split(preprocess, test))
    features = {
        name: tuple(pooled_features(model, preprocess, *split) for split in splits)
        for name, model in (("trained", trained), ("untrained", untrained))
    }
    features["pixels"] = tuple(pixel_features(*split) for split in splits)
    bins = np.percentile([float(table[s.id]["diameter_mm"]) for s in fit], [100 / 3, 200 / 3])
    results = {}
    for attribute in ATTRIBUTES:
        fit_y, test_y = labels(fit, table, attribute, bins), labels(test, table, attribute, bins)
        results[attribute] = {"classes": len(set(fit_y.tolist())), "chance": 1 / len(set(fit_y.tolist()))}
        for name, (fit_x, test_x) in features.items():
            results[attribute][name] = probe(fit_x, fit_y, test_x, test_y)
    return _write(args, results, len(fit), len(test))


def _write(args, results: dict, n_fit: int, n_test: int) -> int:
    args.out.mkdir(parents=True, exist_ok=True)
    record = {
        "date": now_utc(),
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_info(),
        "rows": {"fit": n_fit, "test": n_test},
        "balanced_accuracy": results,
    }
    atomic_write_text(args.out / "appearance_probe.json", json.dumps(record, indent=2) + "\n")
    names = ["trained", "untrained", "pixels"]
    lines = [
        f"Balanced accuracy (%) of a linear probe, fitted on {n_fit} rows, scored on {n_test}.",
        "",
        "| attribute | classes | chance | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for attribute, row in results.items():
        cells = " | ".join(f"{100 * row[n]:.1f}" for n in names)
        lines.append(f"| {attribute} | {row['classes']} | {100 * row['chance']:.1f} | {cells} |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "appearance_probe.md", table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
