"""Writing what a prediction gives: output names, mask / probability files, and refusing to overwrite."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lsms.atomic import atomic_write
from lsms.errors import DataError


def output_stem(path: str | os.PathLike) -> str:
    """The name of an input without its image suffix: ``ct.nii.gz`` -> ``ct``, a folder -> its name."""
    name = Path(path).name
    lower = name.lower()
    for suffix in (".nii.gz", ".nii"):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name if Path(path).is_dir() else Path(name).stem


def safe_name(identifier: str) -> str:
    """A manifest row id as a file name: characters other than letters, digits, '.', '-', '_' become '_'."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(identifier)).strip(".")
    return cleaned or "row"


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before any work, an output that is one of the inputs (always) or that exists (unless
    ``overwrite``), and two outputs with one path; one-line DataError naming the file."""
    protected = {Path(p).resolve() for p in inputs}
    seen: set[Path] = set()
    for output in outputs:
        resolved = Path(output).resolve()
        if resolved in protected:
            raise DataError(
                f"{output}: is an input file; choose another --out folder (inputs are never overwritten)"
            )
        if resolved in seen:
            raise DataError(f"{output}: two results would be written to this file (duplicate row id or name)")
        seen.add(resolved)
        if resolved.exists() and not overwrite:
            raise DataError(f"{output}: already exists; pass --overwrite to replace it")


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a uint8 / uint16 (H, W) or uint8 (H, W, 3) array as PNG (atomically)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(array))
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def mask_to_png_array(mask: np.ndarray) -> np.ndarray:
    """bool (H, W) -> uint8 (H, W), 0 background and 255 foreground."""
    return np.where(np.asarray(mask, dtype=bool), np.uint8(255), np.uint8(0))


def save_probabilities(probabilities: np.ndarray, path: str | os.PathLike) -> Path:
    """float32 (H, W) in [0, 1] -> ``.png`` (16-bit, value = round(p * 65535)) or ``.npy`` (float32)."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        values = probabilities.astype(np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a path argument would get ".npy" appended
                np.save(handle, values)

        return atomic_write(path, write)
    return save_png(np.round(np.clip(probabilities, 0.0, 1.0) * 65535.0).astype(np.uint16), path)
