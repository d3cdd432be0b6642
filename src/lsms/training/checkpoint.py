"""Crash-safe training checkpoints.

Layout under ``RUN/checkpoint/``::

    step-000120/model.safetensors   model weights (safetensors); a frozen text encoder is left out
    step-000120/ema.safetensors     the weights' moving average, when ``train.ema`` is on (same keys)
    step-000120/state.pt            optimiser, scheduler, scaler, RNG states, position, the weights'
                                    SHA-256 (torch.save)
    latest                          text file naming the newest complete step folder

Files and folders are written with :mod:`lsms.atomic` (temporary name, fsync, rename): a step folder
is filled under a temporary name and renamed whole; ``latest`` is replaced last. A crash at any moment
therefore leaves ``latest`` pointing to a complete checkpoint. Older step folders are removed after
``latest`` moves on. ``state.pt`` holds only tensors and plain Python values, so it is read back with
``torch.load(weights_only=True)``. Loading checks the weights' SHA-256 and that every tensor is finite.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from lsms.atomic import atomic_write_text, replace_dir
from lsms.errors import CheckpointError
from lsms.models.pretrained import load_weights, save_weights

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "state.pt"
LATEST_FILE = "latest"


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


def save_checkpoint(
    folder: Path,
    step: int,
    model: nn.Module,
    state: dict[str, Any],
    leave_out: tuple[str, ...] = (),
    ema: nn.Module | None = None,
) -> Path:
    """Write ``model`` weights (without the keys starting with ``leave_out``), those of its moving
    average ``ema`` (a model of the same class) and the training ``state`` as step ``step``; return the
    step folder."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    target = folder / name

    def weights_of(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in module.state_dict().items() if not (leave_out and k.startswith(leave_out))}

    def fill(tmp: Path) -> None:
        tmp.mkdir()
        metadata = {"step": str(step)}
        record = {**state, "step": step, "left_out": list(leave_out)}
        record["weights_sha256"] = save_weights(weights_of(model), tmp / MODEL_FILE, metadata=metadata)
        if ema is not None:
            record["ema_sha256"] = save_weights(weights_of(ema), tmp / EMA_FILE, metadata=metadata)
        torch.save(record, tmp / STATE_FILE)

    replace_dir(target, fill)
    atomic_write_text(folder / LATEST_FILE, name + "\n")
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


def read_state(step_folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The training state of a step folder (``torch.load(weights_only=True)``)."""
    try:
        return torch.load(step_folder / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise CheckpointError(
            f"{step_folder / STATE_FILE}: unreadable training state ({str(error).splitlines()[0]})"
        ) from None


def load_checkpoint(
    step_folder: Path,
    model: nn.Module,
    map_location: str | torch.device = "cpu",
    ema: nn.Module | None = None,
) -> dict[str, Any]:
    """Load weights into ``model`` and their moving average into ``ema`` when given (checksum, finite
    values, every key but the left-out ones) and return the training state dict."""
    state = read_state(step_folder, map_location)
    targets = [(model, MODEL_FILE, "weights_sha256")]
    if ema is not None:
        if "ema_sha256" not in state:
            raise CheckpointError(
                f"{step_folder}: holds no {EMA_FILE}; it was trained without train.ema, so it cannot resume with it"
            )
        targets.append((ema, EMA_FILE, "ema_sha256"))
    for module, file_name, key in targets:
        load_weights(
            module,
            step_folder / file_name,
            sha256=state.get(key),
            absent_prefixes=tuple(state.get("left_out", ())),
            device=map_location,
        )
    return state
