"""Mask overlays in the style of the paper's Figure 2: ground truth red, prediction green."""

from __future__ import annotations

import numpy as np

from lsms.errors import DataError

GROUND_TRUTH_COLOR = (255, 0, 0)
PREDICTION_COLOR = (0, 255, 0)


def _as_mask(mask: object, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    array = np.asarray(mask)
    array = (
        array.reshape(array.shape[-2:])
        if array.ndim > 2 and array.size == np.prod(array.shape[-2:])
        else array
    )
    if array.shape != shape:
        raise DataError(f"overlay: {name} of shape {array.shape}; expected the image shape {shape}")
    return array > 0.5 if array.dtype.kind == "f" else array.astype(bool)


def overlay_mask(
    image_hw01: np.ndarray,
    mask: np.ndarray | None = None,
    prediction: np.ndarray | None = None,
    alpha: float = 0.45,
) -> np.ndarray:
    """RGB uint8 (H, W, 3): the gray image (H, W) in [0, 1] with ``mask`` (ground truth, red) and
    ``prediction`` (green) blended at ``alpha``; where both are set the colours mix (yellow).

    Masks are (H, W) (or (1, H, W)) bool, {0, 1} or probabilities (> 0.5 is foreground). Tensors are
    accepted if they are on the CPU.
    """
    image = np.asarray(image_hw01, dtype=np.float32)
    image = (
        image.reshape(image.shape[-2:])
        if image.ndim > 2 and image.size == np.prod(image.shape[-2:])
        else image
    )
    if image.ndim != 2:
        raise DataError(f"overlay: image of shape {image.shape}; expected (H, W) in [0, 1]")
    rgb = np.repeat(np.clip(image, 0.0, 1.0)[..., None] * 255.0, 3, axis=-1)
    shape = (image.shape[0], image.shape[1])
    layers = [
        (_as_mask(mask, shape, "mask"), GROUND_TRUTH_COLOR),
        (_as_mask(prediction, shape, "prediction"), PREDICTION_COLOR),
    ]
    color = np.zeros_like(rgb)
    covered = np.zeros(shape, dtype=bool)
    for layer, value in layers:
        if layer is not None:
            color[layer] += np.asarray(value, dtype=np.float32)  # red + green -> yellow
            covered |= layer
    color = np.minimum(color, 255.0)
    rgb[covered] = (1.0 - alpha) * rgb[covered] + alpha * color[covered]
    return np.round(rgb).astype(np.uint8)
