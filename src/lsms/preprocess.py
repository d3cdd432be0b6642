"""How an image becomes a model's input: one rule for training, ``lsms eval``, ``lsms predict``,
``segment``, ``serve`` and ``export``, saved with the weights (``preprocess`` in config.json).

An image is read as float32 (H, W) in [0, 1]: through the CT ``window`` when there is one, else by its
dtype's range (:func:`lsms.data.io.unit_scale`; DICOM/NIfTI volumes min-max over the volume), then
resized to ``image_size`` bilinearly (antialiased when shrinking, :func:`lsms.data.transforms.resize_image`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn

from lsms.data.io import CTWindow, load_image, parse_window, require_finite, unit_scale
from lsms.data.transforms import resize_image
from lsms.errors import ConfigError, DataError

ImageInput = np.ndarray | torch.Tensor | str | os.PathLike
WindowSpec = str | CTWindow | tuple[float, float] | None


def parse_image_size(value: int | Sequence[int], key: str = "image_size") -> tuple[int, int]:
    """``N`` or ``(H, W)`` (``[N]`` too, as a command line gives it) -> (H, W), or a ConfigError naming ``key``."""
    try:
        sides = [int(value)] if isinstance(value, int | float) else [int(side) for side in value]
    except (TypeError, ValueError):
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise ConfigError(f"{key}: expected one or two positive integers (H [W]), got {value!r}")
    return (sides[0], sides[-1])


def check_input_size(model: nn.Module, size: tuple[int, int], key: str) -> None:
    """ConfigError naming ``key`` when (H, W) is below the model's ``min_input_side`` (if it has one)."""
    minimum = int(getattr(model, "min_input_side", 1))
    if min(size) < minimum:
        name = getattr(model, "architecture", type(model).__name__)
        raise ConfigError(f"{key} {size[0]}x{size[1]}: {name} needs input sides of at least {minimum} pixels")


@dataclass(frozen=True)
class Preprocess:
    """The input size (H, W) a model sees and the CT window its images go through (None: dtype range)."""

    image_size: tuple[int, int]
    window: CTWindow | None = None

    @classmethod
    def from_dict(cls, values: Mapping | None, default_size: tuple[int, int] | None = None) -> Preprocess:
        """Read ``{"image_size": [H, W], "window": ...}`` as saved (the window may be a preset name,
        "level,width" or [level, width]); a missing size takes ``default_size``."""
        values = dict(values or {})
        size = values.get("image_size") or default_size
        if size is None:
            raise ConfigError("preprocess: no image_size; give one (e.g. image_size=224 or --image-size 224)")
        return cls(parse_image_size(size), parse_window(values.get("window")))

    def to_dict(self) -> dict:
        """The JSON form saved in config.json; :meth:`from_dict` reads it back."""
        window = None if self.window is None else [self.window.level, self.window.width]
        return {"image_size": list(self.image_size), "window": window}

    def override(
        self, image_size: int | Sequence[int] | None = None, window: WindowSpec = None
    ) -> Preprocess:
        """A copy with the given size and window; None keeps this one's."""
        return replace(
            self,
            image_size=self.image_size if image_size is None else parse_image_size(image_size),
            window=self.window if window is None else parse_window(window),
        )

    def read(self, image: ImageInput, slice_index: int | None = None) -> np.ndarray:
        """A path (PNG/JPG/TIFF/DICOM/NIfTI) or an array (H, W) / (1, H, W) -> float32 (H, W) in [0, 1]."""
        if isinstance(image, str | os.PathLike):
            return load_image(image, window=self.window, slice_index=slice_index)
        if slice_index is not None:
            raise ConfigError("slice_index applies to image files only; pass the (H, W) slice itself")
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 2:
            raise DataError(f"image array of shape {array.shape}; expected a gray image (H, W)")
        require_finite(array, "image array")
        if self.window is not None and array.dtype.kind in "iuf":
            return self.window.apply(array)
        return unit_scale(array, "image array")

    def batch(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Images float32 (H_i, W_i) in [0, 1] -> the model's input (B, 1, h, w) at ``image_size``."""
        return torch.from_numpy(np.stack([resize_image(image, self.image_size) for image in images]))[:, None]
