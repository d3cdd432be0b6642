"""Pieces shared by the baseline models: text settings, checks and stride padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lsms.errors import ConfigError, DataError
from lsms.models.config import ModelConfig
from lsms.models.text_encoder import DEFAULT_TEXT_ENCODER


@dataclass
class TextFields:
    """Text-encoder settings of a text-guided baseline (see :class:`TextConditionedModel`)."""

    text_encoder: str = DEFAULT_TEXT_ENCODER
    max_length: int = 64
    freeze_text_encoder: bool = True

    def text_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``TextConditionedModel.__init__``."""
        return {
            "text_encoder": self.text_encoder,
            "max_length": self.max_length,
            "freeze_text_encoder": self.freeze_text_encoder,
        }


def check_positive(config: ModelConfig, *names: str) -> None:
    """Each named field must be a positive number (a sequence field: every entry)."""
    for name in names:
        value = getattr(config, name)
        values = value if isinstance(value, tuple) else (value,)
        if not values or any(not isinstance(v, int | float) or v <= 0 for v in values):
            raise ConfigError(f"{type(config).__name__}.{name}: expected positive number(s), got {value!r}")


def check_image(image: torch.Tensor, in_chans: int, model: str) -> None:
    """``image`` must be (B, in_chans, H, W)."""
    if image.ndim != 4 or image.shape[1] != in_chans:
        raise DataError(f"{model}: expected images (B, {in_chans}, H, W), got shape {tuple(image.shape)}")


def pad_to_multiple(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) at the bottom and right so H and W are multiples of ``multiple``."""
    height, width = image.shape[-2:]
    return F.pad(image, (0, -width % multiple, 0, -height % multiple))
