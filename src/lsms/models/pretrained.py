"""``save_pretrained`` / ``from_pretrained``: a checkpoint is a folder that loads anywhere.

config.json         architecture (registry name), model config, preprocessing, provenance
model.safetensors   all weights, text encoder included (never pickled)
text_encoder/       tokenizer files and the text encoder's architecture config
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch.nn as nn

from lsms.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEXT_ENCODER_DIR = "text_encoder"
FORMAT_VERSION = 2  # 2: LSMS configs record decoder_align_stage (format 1 checkpoints were aligned at F1)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_pretrained(model: nn.Module, folder: str | Path, preprocess: dict | None = None) -> Path:
    """Write ``model`` (built by :func:`lsms.create_model`) to ``folder``; returns the folder.

    preprocess: how inputs were prepared in training, e.g. ``{"image_size": [224, 224], "window": None}``;
    defaults to ``model.preprocess`` when the model was loaded with one.
    """
    from safetensors.torch import save_model

    from lsms import __version__

    architecture = getattr(model, "architecture", None)
    if architecture is None:
        raise CheckpointError(
            "save_pretrained needs a model built by lsms.create_model (no architecture name)"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    text_encoder = getattr(model, "text_encoder", None)
    if text_encoder is not None:
        text_encoder.save_files(folder / TEXT_ENCODER_DIR)
    tmp_weights = folder / (WEIGHTS_NAME + ".tmp")
    save_model(model, str(tmp_weights))
    os.replace(tmp_weights, folder / WEIGHTS_NAME)
    metadata = {
        "format": "lsms-checkpoint",
        "format_version": FORMAT_VERSION,
        "lsms_version": __version__,
        "architecture": architecture,
        "config": config,
        "text_encoder_source": getattr(model, "text_encoder_source", config.get("text_encoder")),
        "preprocess": preprocess if preprocess is not None else getattr(model, "preprocess", {}),
    }
    _atomic_write_text(folder / CONFIG_NAME, json.dumps(metadata, indent=2, default=list) + "\n")
    return folder


def read_checkpoint_config(folder: str | Path) -> dict:
    """The parsed ``config.json`` of a checkpoint folder, or a one-line CheckpointError."""
    path = Path(folder) / CONFIG_NAME
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
    return metadata


def from_pretrained(folder: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild and load a model saved by :func:`save_pretrained`, in eval mode on ``device``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from lsms.registry import create_model

    folder = Path(folder)
    metadata = read_checkpoint_config(folder)
    config = dict(metadata["config"])
    if metadata.get("format_version", 1) < 2 and "decoder_channels" in config:
        # An LSMS saved before the alignment switch: its decoder ran at F1, whatever the preset's default now.
        config.setdefault("decoder_align_stage", 1)
    if (folder / TEXT_ENCODER_DIR).is_dir():
        config["text_encoder"] = str(folder / TEXT_ENCODER_DIR)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing weights file")
    try:
        model = create_model(metadata["architecture"], **config)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG_NAME}: cannot build the model ({error})") from None
    try:
        missing, unexpected = load_model(model, str(weights), strict=False)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights}: unreadable or truncated safetensors file ({error})") from None
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[-1].strip()
        raise CheckpointError(
            f"{weights}: weights do not match the architecture in {CONFIG_NAME} ({first_line})"
        ) from None
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match {metadata['architecture']!r}: "
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )
    model.text_encoder_source = metadata.get("text_encoder_source")
    model.preprocess = metadata.get("preprocess", {})
    return model.to(device).eval()
