"""Pieces shared by the baseline models: serialisable configs, text settings and stride padding."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from lsms.errors import ConfigError, DataError
from lsms.models.text_encoder import DEFAULT_TEXT_ENCODER

ConfigT = TypeVar("ConfigT", bound="BaselineConfig")


@dataclass
class BaselineConfig:
    """Base of the baseline configs: JSON-friendly ``to_dict`` / ``from_dict`` and field checks.

    Subclasses add fields (all with defaults) and override :meth:`validate`.
    """

    def __post_init__(self) -> None:
        # JSON round trips give lists; keep tuples so a rebuilt config equals the original.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                setattr(self, f.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid field."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s): {', '.join(unknown)}; expected some of: {', '.join(known)}"
            )
        return cls(**values)


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


def check_positive(config: BaselineConfig, *names: str) -> None:
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
