"""Statistics of a referring manifest, and the text-free floor a referring model must clear.

The rows that share an image (and slice) are that image's referred objects. A model that ignores
the text can only output one mask per image; the floor is the best mean Dice of three such guesses
against each row's referred object:

- ``all``: the union of the image's objects;
- ``largest``: the largest object of the image;
- ``random``: one object of the image drawn uniformly (expected Dice).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from lsms.atomic import atomic_write_text
from lsms.data.io import load_mask
from lsms.data.loading import load_samples

_DIAMETER = re.compile(r"diameter of ([0-9.]+) ?mm")


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else 1.0


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    array = np.asarray(values, dtype=np.float64)
    return {
        "min": float(array.min()),
        "median": float(np.median(array)),
        "mean": float(array.mean()),
        "max": float(array.max()),
    }


def dataset_statistics(manifest_path: str | Path) -> dict:
    """Counts, lesions per slice, sizes, expression lengths and the text-free floor of a manifest.

    Returns a JSON-serialisable dict; ``text_free_floor["floor_dice"]`` is the best text-free mean
    Dice (in [0, 1]). Raises DataError for an unreadable manifest, image-less row or bad mask.
    """
    samples = load_samples(manifest_path)
    groups: dict[tuple[Path, int | None], list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        groups[(sample.image, sample.slice)].append(index)
    masks = [load_mask(sample.mask, sample.slice) > 0 for sample in samples]
    dice_all, dice_largest, dice_random, is_largest = [], [], [], []
    for members in groups.values():
        union = np.logical_or.reduce([masks[i] for i in members])
        areas = [int(masks[i].sum()) for i in members]
        largest = members[int(np.argmax(areas))]
        for i in members:
            dice_all.append(_dice(union, masks[i]))
            dice_largest.append(_dice(masks[largest], masks[i]))
            dice_random.append(float(np.mean([_dice(masks[j], masks[i]) for j in members])))
            is_largest.append(i == largest)
    floors = {
        "all": float(np.mean(dice_all)),
        "largest": float(np.mean(dice_largest)),
        "random": float(np.mean(dice_random)),
    }
    best = max(floors, key=floors.get)
    per_slice = [len(members) for members in groups.values()]
    splits: dict[str, dict[str, int]] = {}
    for split in sorted({s.split or "unspecified" for s in samples}):
        chosen = [s for s in samples if (s.split or "unspecified") == split]
        splits[split] = {
            "rows": len(chosen),
            "slices": len({(s.image, s.slice) for s in chosen}),
            "cases": len({s.case_id for s in chosen if s.case_id}),
        }
    diameters = [float(m.group(1)) for s in samples if (m := _DIAMETER.search(s.text))]
    texts = {
        "text": [s.text for s in samples],
        "text_half": [s.text_half for s in samples if s.text_half],
        "text_quarter": [s.text_quarter for s in samples if s.text_quarter],
    }
    return {
        "manifest": str(Path(manifest_path)),
        "rows": len(samples),
        "slices": len(groups),
        "cases": len({s.case_id for s in samples if s.case_id}),
        "splits": splits,
        "lesions_per_slice": {
            **_summary([float(n) for n in per_slice]),
            "histogram": {str(k): v for k, v in sorted(Counter(per_slice).items())},
        },
        "lesion_area_px": _summary([float(m.sum()) for m in masks]),
        "diameter_mm": _summary(diameters),
        "words": {name: _summary([float(len(t.split())) for t in values]) for name, values in texts.items()},
        "relation_fraction": {
            name: float(np.mean([t.startswith("The ") for t in values])) if values else 0.0
            for name, values in texts.items()
        },
        "text_free_floor": {
            "dice_all_lesions": floors["all"],
            "dice_largest_lesion": floors["largest"],
            "dice_random_lesion": floors["random"],
            "floor_dice": floors[best],
            "best_guess": best,
            "fraction_referring_largest": float(np.mean(is_largest)),
        },
    }


def format_statistics(stats: dict) -> str:
    """A short human-readable report of ``dataset_statistics``'s result."""
    per_slice = stats["lesions_per_slice"]
    area, diameter, floor = stats["lesion_area_px"], stats["diameter_mm"], stats["text_free_floor"]
    lines = [
        f"{stats['manifest']}: {stats['rows']} rows, {stats['slices']} slices, {stats['cases']} cases",
        "splits: "
        + ", ".join(
            f"{k} {v['cases']} cases / {v['slices']} slices / {v['rows']} rows"
            for k, v in stats["splits"].items()
        ),
        f"lesions per slice: mean {per_slice['mean']:.2f} (histogram {per_slice['histogram']})",
        f"lesion area (px): min {area['min']:.0f}, median {area['median']:.0f}, max {area['max']:.0f}",
    ]
    if diameter:
        lines.append(
            f"diameter (mm): min {diameter['min']:.1f}, median {diameter['median']:.1f}, "
            f"max {diameter['max']:.1f}"
        )
    lines.append(
        "expressions with a relation: "
        + ", ".join(f"{k} {v:.1%}" for k, v in stats["relation_fraction"].items())
    )
    lines.append(
        f"text-free floor (Dice): all lesions {floor['dice_all_lesions']:.3f}, largest "
        f"{floor['dice_largest_lesion']:.3f}, random lesion {floor['dice_random_lesion']:.3f} -> floor "
        f"{floor['floor_dice']:.3f} ({floor['best_guess']}); rows referring to the largest lesion "
        f"{floor['fraction_referring_largest']:.1%}"
    )
    return "\n".join(lines)


def write_statistics(stats: dict, path: str | Path) -> Path:
    """Save ``stats`` as indented JSON (atomically); returns the path."""
    return atomic_write_text(path, json.dumps(stats, indent=2) + "\n")
