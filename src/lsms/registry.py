"""Building models in the style of timm: ``create_model(name, **overrides)`` from a preset registered with
``@register_model`` (:mod:`lsms.models.registration`), or ``from_pretrained(folder)`` from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch.nn as nn

from lsms.errors import CheckpointError
from lsms.models.pretrained import (
    CONFIG_NAME,
    TEXT_ENCODER_DIR,
    TEXT_REFERENCE_KEY,
    WEIGHTS_NAME,
    check_text_reference,
    load_weights,
    read_checkpoint_config,
    resolve_checkpoint,
)
from lsms.models.registration import MODEL_ENTRIES
from lsms.preprocess import Preprocess


def _import_model_modules(include_baselines: bool) -> None:
    # Importing the architecture files runs their @register_model decorators. The baselines import
    # MONAI, which costs seconds, so they are imported only when a name is not an LSMS preset.
    import lsms.models  # noqa: F401

    if include_baselines:
        import lsms.models.baselines  # noqa: F401


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    _import_model_modules(include_baselines=True)
    return sorted(MODEL_ENTRIES)


def create_model(name: str, **overrides) -> nn.Module:
    """Build a registered model; keyword overrides replace fields of its preset config.

    The model's ``preprocess`` is the preset's default input size without a window, so that a fresh
    model can ``segment``; :func:`from_pretrained` replaces it with the checkpoint's.
    """
    _import_model_modules(include_baselines=False)
    if name not in MODEL_ENTRIES:
        _import_model_modules(include_baselines=True)
    if name not in MODEL_ENTRIES:
        raise KeyError(f"unknown model {name!r}; expected one of: {', '.join(sorted(MODEL_ENTRIES))}")
    entry = MODEL_ENTRIES[name]
    model = entry.factory(**overrides)
    model.architecture = name  # recorded by save_pretrained so from_pretrained can rebuild it
    model.preprocess = Preprocess(entry.image_size)
    return model


def from_pretrained(folder: str | Path, device: str = "cpu") -> nn.Module:
    """Rebuild and load a model saved by :func:`lsms.save_pretrained`, in eval mode on ``device``."""
    folder = resolve_checkpoint(folder)
    metadata = read_checkpoint_config(folder)
    config = dict(metadata["config"])
    # A release references the installed text encoder instead of holding its weights.
    reference = metadata.get(TEXT_REFERENCE_KEY)
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
    # Checkpoints written before checksums were recorded (format 1 without the field) load unchecked.
    load_weights(
        model,
        weights,
        sha256=metadata.get("weights_sha256"),
        absent_prefixes=("text_encoder.",) if reference else (),
    )
    if reference:
        check_text_reference(model, reference, folder)
    model.text_encoder_source = metadata.get("text_encoder_source")
    # A checkpoint saved without an image size (older ones could be) predicts at its preset's default.
    model.preprocess = Preprocess.from_dict(
        metadata.get("preprocess"), default_size=model.preprocess.image_size
    )
    return model.to(device).eval()
