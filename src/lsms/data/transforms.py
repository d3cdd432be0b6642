"""Resizing and referring-safe augmentation of (image, mask, text) triples.

- Images are resized bilinearly (antialiased when shrinking), masks by nearest neighbour: masks are
  never dilated or smoothed (LViT dilates its masks; we keep the annotation as drawn).
- Horizontal flip is OFF by default. When on, it mirrors image and mask and swaps the words "left"
  and "right" in the text, so a sentence that names an image side stays true (QaTa-COV19's sides
  are image sides). Nothing else is remapped: anatomical names such as liver Couinaud segments stay
  as written, and a mirrored liver is anatomically impossible, which is why the flip is opt-in.
- Intensity jitter (brightness shift, contrast scale, gamma) leaves geometry and text unchanged.
- A small random affine (rotation, isotropic scale, translation; off by default) moves image and mask
  together; it is kept small so that a sentence naming a side or a lobe ("upper left lung") stays true.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

_SIDE = re.compile(r"\b(left|right)\b", flags=re.IGNORECASE)
_SWAP = {"left": "right", "right": "left"}


def _as_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(H, W) float32 in [0, 1] -> (h, w) bilinear (antialiased when shrinking), still in [0, 1]."""
    height, width = _as_size(size)
    if image.shape == (height, width):
        return image.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    shrink = height < image.shape[0] or width < image.shape[1]
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].clamp_(0.0, 1.0).numpy()


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(H, W) bool -> (h, w) bool by nearest neighbour (pixel centres, no dilation)."""
    height, width = _as_size(size)
    if mask.shape == (height, width):
        return mask.astype(bool, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))[None, None]
    return F.interpolate(tensor, size=(height, width), mode="nearest-exact")[0, 0].numpy().astype(bool)


def swap_left_right(text: str) -> str:
    """Swap the whole words "left" and "right", keeping their case ("Left" -> "Right")."""

    def swap(match: re.Match[str]) -> str:
        word = match.group(0)
        other = _SWAP[word.lower()]
        if word.isupper():
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return _SIDE.sub(swap, text)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation. ``hflip``: probability of a horizontal flip with left/right swapped in
    the text (0 = off, the default). ``brightness``: max additive shift; ``contrast``: max relative
    scale around the mean; ``gamma``: max relative change of the gamma exponent. ``rotate``: max
    rotation in degrees; ``scale``: max relative zoom; ``translate``: max shift as a fraction of the
    image side. Each is drawn uniformly in [-max, max]; 0 turns it off."""

    hflip: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.1
    gamma: float = 0.1
    rotate: float = 0.0
    scale: float = 0.0
    translate: float = 0.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            limit = 180 if name == "rotate" else 1
            if not 0 <= value <= limit:
                raise ValueError(f"{name}: expected a value in [0, {limit}], got {value}")

    @property
    def has_affine(self) -> bool:
        return self.rotate > 0 or self.scale > 0 or self.translate > 0


def random_affine(
    image: np.ndarray, mask: np.ndarray, angle: float, zoom: float, shift: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate by ``angle`` degrees, zoom by ``zoom`` (> 1 enlarges) and shift by ``shift`` (x, y, as
    fractions of the side) about the centre: image (H, W) bilinearly, mask (H, W) bool by nearest
    neighbour; what comes in from outside is 0 (background)."""
    radians = np.deg2rad(angle)
    cos, sin = np.cos(radians) / zoom, np.sin(radians) / zoom
    # affine_grid maps output to input coordinates in [-1, 1]: the inverse of the wanted motion.
    theta = torch.tensor([[cos, -sin, -2 * shift[0]], [sin, cos, -2 * shift[1]]], dtype=torch.float32)[None]
    height, width = image.shape
    grid = F.affine_grid(theta, [1, 1, height, width], align_corners=False)
    image_in = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    mask_in = torch.from_numpy(mask.astype(np.float32))[None, None]
    image_out = F.grid_sample(image_in, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask_out = F.grid_sample(mask_in, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return image_out[0, 0].clamp_(0.0, 1.0).numpy(), mask_out[0, 0].numpy() > 0.5


def augment(
    image: np.ndarray, mask: np.ndarray, text: str, config: AugmentConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, str]:
    """Apply ``config`` to image (H, W) float [0, 1], mask (H, W) bool and text with ``rng``.

    The same number of random draws is taken whatever the outcome, so a seed fixes every choice.
    """
    flip, shift, scale, gamma, angle, zoom, move_x, move_y = rng.random(8)
    if flip < config.hflip:
        image, mask, text = image[:, ::-1], mask[:, ::-1], swap_left_right(text)
    image = image.astype(np.float32, copy=True)
    if config.has_affine:
        image, mask = random_affine(
            image,
            np.ascontiguousarray(mask),
            angle=config.rotate * (2 * angle - 1),
            zoom=1.0 + config.scale * (2 * zoom - 1),
            shift=(config.translate * (2 * move_x - 1), config.translate * (2 * move_y - 1)),
        )
    if config.gamma > 0:
        image = np.power(image, np.float32(1.0 + config.gamma * (2 * gamma - 1)))
    if config.contrast > 0:
        mean = np.float32(image.mean())
        image = (image - mean) * np.float32(1.0 + config.contrast * (2 * scale - 1)) + mean
    if config.brightness > 0:
        image = image + np.float32(config.brightness * (2 * shift - 1))
    return np.clip(image, 0.0, 1.0), np.ascontiguousarray(mask), text
