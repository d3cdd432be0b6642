"""Crash-safe training checkpoints.

Layout under ``RUN/checkpoint/``::

    step-000120/model.safetensors   model weights (safetensors)
    step-000120/state.pt            optimiser, scheduler, scaler, RNG states, position (torch.save)
    latest                          text file naming the newest complete step folder

Every file is written to a temporary name in its own folder and moved in place with ``os.replace``;
a step folder is filled under a temporary name and renamed whole; ``latest`` is replaced last. A crash
at any moment therefore leaves ``latest`` pointing to a complete checkpoint. Older step folders are
removed after ``latest`` moves on. ``state.pt`` holds only tensors and plain Python values, so it is
read back with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from lsms.errors import CheckpointError

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.pt"
LATEST_FILE = "latest"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then ``os.replace`` it onto ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a temporary sibling folder with ``fill(folder)`` and swap it in for ``target``.

    Directories cannot be replaced over in one call, so the old one is renamed aside first; the window
    in which ``target`` is missing is two renames long.
    """
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        fill(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def capture_rng_state() -> dict[str, Any]:
    """The Python, NumPy and torch (CPU and CUDA) generator states, as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, step: int, model: nn.Module, state: dict[str, Any]) -> Path:
    """Write ``model`` weights and the training ``state`` as step ``step``; return the step folder."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    target = folder / name

    def fill(tmp: Path) -> None:
        tmp.mkdir()
        save_model(model, str(tmp / MODEL_FILE), metadata={"step": str(step)})
        torch.save({**state, "step": step}, tmp / STATE_FILE)

    replace_dir(target, fill)
    atomic_write(folder / LATEST_FILE, lambda tmp: tmp.write_text(name + "\n", encoding="utf-8"))
    for old in folder.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(folder: Path) -> Path | None:
    """The step folder named by ``folder/latest``, or None when no checkpoint was completed."""
    pointer = folder / LATEST_FILE
    if not pointer.is_file():
        return None
    target = folder / pointer.read_text(encoding="utf-8").strip()
    if not (target / MODEL_FILE).is_file() or not (target / STATE_FILE).is_file():
        raise CheckpointError(f"{pointer}: names {target.name}, which lacks {MODEL_FILE} or {STATE_FILE}")
    return target


def load_checkpoint(
    step_folder: Path, model: nn.Module, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load weights into ``model`` (strict) and return the training state dict."""
    try:
        load_model(model, str(step_folder / MODEL_FILE), strict=True, device=str(map_location))
    except (SafetensorError, RuntimeError, OSError) as error:
        raise CheckpointError(
            f"{step_folder / MODEL_FILE}: cannot load into {type(model).__name__} "
            f"({str(error).splitlines()[0]})"
        ) from None
    try:
        return torch.load(step_folder / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(
            f"{step_folder / STATE_FILE}: unreadable training state ({str(error).splitlines()[0]})"
        ) from None
