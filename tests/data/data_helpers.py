"""Helpers of the data tests: small LViT folders of 32x32 PNGs and running ``lsms data``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lsms.cli.data import register

QATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "qata-cov19"


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def blob_pair(seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 image with a bright square and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    image = (rng.random((size, size)) * 60).astype(np.uint8)
    mask = np.zeros((size, size), np.uint8)
    top, left = rng.integers(2, size // 2, size=2)
    mask[top : top + 8, left : left + 6] = 255
    image[mask > 0] = 200
    return image, mask


def make_split(folder: Path, split_title: str, names: list[str], mask_name, text_key, texts=None) -> None:
    """An LViT split folder: images ``names``, masks named by ``mask_name(name)``, text keyed by
    ``text_key(image name, mask name)``."""
    rows = []
    for index, name in enumerate(names):
        image, mask = blob_pair(index)
        write_png(folder / "img" / name, image)  # PIL picks PNG or JPEG by the suffix
        mask_file = mask_name(name)
        write_png(folder / "labelcol" / mask_file, mask)
        text = (
            texts[index]
            if texts
            else f"unilateral pulmonary infection, one infected area, lower left lung {index}."
        )
        rows.append({"Image": text_key(name, mask_file), "Description": text})
    pd.DataFrame(rows).to_excel(folder / f"{split_title}_text.xlsx", index=False, sheet_name="Sheet1")


def run_cli(argv: list[str]) -> int:
    """``lsms data ...`` through its own parser, with lsms.cli.main's error handling (exit 2)."""
    from lsms.errors import LSMSError

    parser = argparse.ArgumentParser(prog="lsms")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LSMSError:
        return 2
