"""``save_pretrained`` / ``from_pretrained``: a checkpoint is a folder that loads anywhere.

config.json         architecture (registry name), model config, preprocessing, provenance and the
                    SHA-256 of model.safetensors (checked on load)
model.safetensors   all weights, text encoder included (never pickled): the folder is portable
text_encoder/       tokenizer files and the text encoder's architecture config

Loading refuses, with one line naming the file, a weights file whose checksum differs from the recorded
one, or that holds NaN or infinite values (a corrupt file or a diverged run would predict garbage).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from lsms.atomic import atomic_write, atomic_write_text
from lsms.errors import CheckpointError, ConfigError, DataError
from lsms.preprocess import Preprocess

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEXT_ENCODER_DIR = "text_encoder"
FORMAT_VERSION = 2  # 2: LSMS configs record decoder_align_stage (format 1 checkpoints were aligned at F1)
# Released checkpoints (lsms.models.release): looked up by name in these folders; their config.json
# references the installed text encoder under this key instead of the folder holding its weights.
CHECKPOINTS_ENV_VAR = "LSMS_CHECKPOINTS"
SOURCE_CHECKPOINTS = Path(__file__).resolve().parents[3] / "checkpoints"
TEXT_REFERENCE_KEY = "text_encoder_reference"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Hex SHA-256 of named tensors (names, dtypes, shapes and values, in name order): identifies a set
    of weights whatever file format holds them."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_weights(
    tensors: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> str:
    """Write tensors as a safetensors file (atomically, mode 0666 & ~umask); returns its SHA-256."""
    from safetensors.torch import save_file

    contiguous = {name: tensor.detach().contiguous() for name, tensor in tensors.items()}
    atomic_write(path, lambda tmp: save_file(contiguous, str(tmp), metadata=metadata))
    return file_sha256(path)


def load_weights(
    model: nn.Module,
    path: Path,
    *,
    sha256: str | None = None,
    absent_prefixes: tuple[str, ...] = (),
    device: str | torch.device = "cpu",
) -> None:
    """Load a safetensors file into ``model`` with every check, each failure one CheckpointError line:
    the file's SHA-256 against ``sha256`` (when recorded), every tensor finite, and names and shapes
    equal to the model's (keys under ``absent_prefixes`` may be missing: weights kept elsewhere)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: missing weights file")
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256:
            raise CheckpointError(
                f"{path}: SHA-256 {actual[:16]}... differs from the recorded {sha256[:16]}...; "
                "the file is corrupt or was replaced"
            )
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path}: unreadable or truncated safetensors file ({error})") from None
    bad = [name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise CheckpointError(
            f"{path}: {len(bad)} tensor(s) hold NaN or infinite values (e.g. {bad[0]}); "
            "expected finite weights (a corrupt file or a diverged run)"
        )
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(f"{path}: weights do not match {type(model).__name__} ({first_line})") from None
    missing = [key for key in missing if not key.startswith(absent_prefixes)] if absent_prefixes else missing
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match {getattr(model, 'architecture', type(model).__name__)!r}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


def checkpoint_dirs() -> list[Path]:
    """Where released checkpoints are looked up by name, in order."""
    extra = [
        Path(item).expanduser() for item in os.environ.get(CHECKPOINTS_ENV_VAR, "").split(os.pathsep) if item
    ]
    return [*extra, SOURCE_CHECKPOINTS]


def list_released() -> list[str]:
    """Names of the released checkpoints found (folders holding a config.json)."""
    names = {
        p.parent.name for folder in checkpoint_dirs() if folder.is_dir() for p in folder.glob("*/config.json")
    }
    return sorted(names)


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A checkpoint folder: the path itself when it exists, else the released checkpoint of that name."""
    path = Path(name_or_path).expanduser()
    if path.exists() or path.is_absolute() or len(path.parts) > 1:
        return path
    for folder in checkpoint_dirs():
        if (folder / path.name / "config.json").is_file():
            return folder / path.name
    known = ", ".join(list_released()) or "none found"
    raise CheckpointError(
        f"{name_or_path}: no such checkpoint folder, nor a released checkpoint of that name "
        f"(released: {known}; looked in ${CHECKPOINTS_ENV_VAR} and {SOURCE_CHECKPOINTS})"
    )


def check_text_reference(model: torch.nn.Module, reference: dict[str, str], folder: Path) -> None:
    """CheckpointError when the installed text encoder is not the one a release was trained with."""
    actual = tensors_sha256(model.text_encoder.state_dict())
    if actual != reference["sha256"]:
        raise CheckpointError(
            f"{folder}: trained with text encoder {reference['name']!r} (weights SHA-256 "
            f"{reference['sha256'][:16]}...), but the installed one has {actual[:16]}...; install the same "
            "version of it"
        )


def save_pretrained(
    model: nn.Module,
    folder: str | Path,
    preprocess: Preprocess | Mapping | None = None,
    *,
    weights_dtype: torch.dtype | None = None,
    text_reference: Mapping[str, str] | None = None,
) -> Path:
    """Write ``model`` (built by :func:`lsms.create_model`) to ``folder``; returns the folder.

    preprocess: how inputs were prepared in training, a :class:`Preprocess` or its dict form such as
    ``{"image_size": [224, 224], "window": None}``; defaults to ``model.preprocess``.
    weights_dtype: store floating-point weights in this dtype (a release's float16; None: as they are).
    text_reference: ``{"name", "sha256"}`` of an installed text encoder with these weights: the folder
    then references it (``TEXT_REFERENCE_KEY``) instead of holding its files and weights.
    """
    from lsms import __version__

    architecture = getattr(model, "architecture", None)
    if architecture is None:
        raise CheckpointError(
            "save_pretrained needs a model built by lsms.create_model (no architecture name)"
        )
    if preprocess is None:
        preprocess = model.preprocess
    elif not isinstance(preprocess, Preprocess):
        preprocess = Preprocess.from_dict(preprocess)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    weights = model.state_dict()
    text_encoder = getattr(model, "text_encoder", None)
    if text_reference is not None:
        weights = {k: v for k, v in weights.items() if not k.startswith("text_encoder.")}
        config["text_encoder"] = text_reference["name"]
    elif text_encoder is not None:
        text_encoder.save_files(folder / TEXT_ENCODER_DIR)
    if weights_dtype is not None:
        weights = {k: v.to(weights_dtype) if v.is_floating_point() else v for k, v in weights.items()}
    sha256 = save_weights(weights, folder / WEIGHTS_NAME)
    metadata = {
        "format": "lsms-checkpoint",
        "format_version": FORMAT_VERSION,
        "lsms_version": __version__,
        "architecture": architecture,
        "config": config,
        "text_encoder_source": getattr(model, "text_encoder_source", config.get("text_encoder")),
        "preprocess": preprocess.to_dict(),
        "weights_sha256": sha256,
    }
    if weights_dtype is not None:
        metadata["weights_dtype"] = str(weights_dtype).removeprefix("torch.")
    if text_reference is not None:
        metadata[TEXT_REFERENCE_KEY] = dict(text_reference)
    atomic_write_text(folder / CONFIG_NAME, json.dumps(metadata, indent=2, default=list) + "\n")
    return folder


def read_checkpoint_config(folder: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder (or released name), or a one-line
    CheckpointError naming the file (a format newer than this version reads, a ``preprocess`` that does
    not parse, ...)."""
    folder = resolve_checkpoint(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(
            f"{folder}: not an lsms checkpoint folder (expected {CONFIG_NAME} and {WEIGHTS_NAME})"
        )
    try:
        metadata = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: invalid JSON ({error})") from None
    for key in ("architecture", "config"):
        if key not in metadata:
            raise CheckpointError(f"{path}: missing field {key!r}")
    version = metadata.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format_version {version!r} is newer than this lsms reads ({FORMAT_VERSION}); "
            "upgrade lsms"
        )
    preprocess = metadata.get("preprocess") or {}
    if not isinstance(preprocess, dict):
        raise CheckpointError(
            f"{path}: field 'preprocess' must be an object, got {type(preprocess).__name__}"
        )
    try:
        Preprocess.from_dict(preprocess, default_size=(1, 1))
    except (ConfigError, DataError) as error:
        raise CheckpointError(f"{path}: field 'preprocess': {error}") from None
    return metadata
