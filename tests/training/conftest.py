"""Tiny referring data set and configs for the training tests (64 px, a handful of samples)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SIDES = {"left": 0, "right": 1}
ROWS = {"upper": 0, "lower": 1}


def write_tiny_dataset(folder: Path, n_train: int = 8, n_val: int = 4, size: int = 64) -> Path:
    """PNG images with one bright square per image, masks, and a manifest whose sentence names the square's
    quadrant. Returns the manifest path (columns id, image, mask, text, split)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for index in range(n_train + n_val):
        row_name, side_name = list(ROWS)[index % 2], list(SIDES)[(index // 2) % 2]
        image = rng.uniform(0, 60, (size, size)).astype(np.uint8)
        mask = np.zeros((size, size), np.uint8)
        half = size // 2
        top, left = ROWS[row_name] * half + 8, SIDES[side_name] * half + 8
        image[top : top + 16, left : left + 16] = 220
        mask[top : top + 16, left : left + 16] = 255
        Image.fromarray(image).save(folder / f"img_{index}.png")
        Image.fromarray(mask).save(folder / f"mask_{index}.png")
        rows.append(
            {
                "id": f"s{index}",
                "image": str(folder / f"img_{index}.png"),
                "mask": str(folder / f"mask_{index}.png"),
                "text": f"one lesion in the {row_name} {side_name} part",
                "split": "train" if index < n_train else "val",
            }
        )
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def _tiny_config(manifest: Path, run_dir: Path, **sections: dict) -> dict:
    """A config dict for lsms-nano on the tiny set; ``sections`` update individual keys per section."""
    config = {
        "model": {"name": "lsms-nano"},
        "data": {
            "train": str(manifest),
            "train_split": "train",
            "val_split": "val",
            "image_size": [64, 64],
        },
        "optim": {"lr": 1e-3},
        "train": {
            "batch_size": 2,
            "max_steps": 6,
            "val_every": 3,
            "val_batch_size": 4,
            "log_every": 1,
            "progress": False,
            "run_dir": str(run_dir),
        },
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    return config


@pytest.fixture
def tiny_config() -> Callable[..., dict]:
    """``tiny_config(manifest, run_dir, **sections)`` -> config dict (see :func:`_tiny_config`)."""
    return _tiny_config
