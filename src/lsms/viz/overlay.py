"""Mask overlays in the style of the paper's Figure 2: ground truth red, prediction green, the sentence
below (used by ``lsms predict``, ``lsms explain`` and ``lsms serve``)."""

from __future__ import annotations

import textwrap

import numpy as np

from lsms.errors import DataError

GROUND_TRUTH_COLOR = (255, 0, 0)
PREDICTION_COLOR = (0, 255, 0)
MIN_FIGURE_WIDTH = 384  # small images are enlarged (nearest neighbour) so the caption stays legible


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


def _enlarge(rgb: np.ndarray, min_width: int) -> np.ndarray:
    """(H, W, 3) -> nearest-neighbour enlargement by an integer factor to at least ``min_width`` columns."""
    factor = max(1, -(-min_width // rgb.shape[1]))
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1) if factor > 1 else rgb


def add_caption(rgb: np.ndarray, text: str, min_width: int = MIN_FIGURE_WIDTH) -> np.ndarray:
    """(H, W, 3) uint8 -> the picture (enlarged to ``min_width`` if narrower) above a black band with
    ``text`` in white, wrapped to the picture's width: uint8 (H' + band, W', 3)."""
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.fromarray(_enlarge(rgb, min_width))
    width = picture.width
    font = ImageFont.load_default(size=max(12, width // 32))
    margin = max(4, width // 64)
    probe = ImageDraw.Draw(picture)
    chars_per_line = max(8, int((width - 2 * margin) / max(probe.textlength("n", font=font), 1.0)))
    lines = textwrap.wrap(text, width=chars_per_line) or [""]
    while len(lines) > 1 and max(probe.textlength(line, font=font) for line in lines) > width - 2 * margin:
        chars_per_line -= 2  # proportional fonts: shrink the wrap width until every line fits
        lines = textwrap.wrap(text, width=max(4, chars_per_line))
    line_height = int(font.size * 1.3)
    canvas = Image.new("RGB", (width, picture.height + len(lines) * line_height + 2 * margin), (0, 0, 0))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, line in enumerate(lines):
        draw.text(
            (margin, picture.height + margin + index * line_height), line, fill=(255, 255, 255), font=font
        )
    return np.asarray(canvas)


def captioned_overlay(
    image: np.ndarray, prediction: np.ndarray | None = None, text: str = "", mask: np.ndarray | None = None
) -> np.ndarray:
    """The paper's overlay (ground truth ``mask`` red, ``prediction`` green, both (H, W)) over the gray
    image (H, W) in [0, 1], with the sentence below when ``text`` is given: uint8 (H', W', 3)."""
    rgb = overlay_mask(image, mask=mask, prediction=prediction)
    return add_caption(rgb, text) if text else rgb
