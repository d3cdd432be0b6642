"""The stage features S1-S4 of a prediction as heat maps over the image (Figure 5), so a user can see
where the model looked for the referred object (captioned overlays: :mod:`lsms.viz.overlay`).

A stage map is the per-pixel L2 norm over channels of F_i (or the channel mean of |F_i|), resized
bilinearly to the image, min-max normalised to [0, 1] and drawn with a colormap blended over the image.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lsms.atomic import atomic_write
from lsms.errors import ConfigError
from lsms.predictor import Prediction, Predictor
from lsms.preprocess import ImageInput
from lsms.runtime import autocast, eval_mode
from lsms.viz.overlay import overlay_mask

REDUCTIONS = ("l2", "mean-abs")


@dataclass
class Explanation:
    """A prediction and its stage maps: ``heatmaps`` float32 (S, H, W) in [0, 1], one per stage (S1..S4)."""

    prediction: Prediction
    heatmaps: np.ndarray


def stage_heatmaps(features: list[torch.Tensor], size: tuple[int, int], reduction: str = "l2") -> np.ndarray:
    """Stage features F_i (1, C_i, h_i, w_i) -> maps float32 (S, H, W) in [0, 1] at ``size``.

    reduction: "l2" (L2 norm over channels) or "mean-abs" (channel mean of |F_i|).
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction {reduction!r}: expected one of {', '.join(REDUCTIONS)}")
    maps = []
    for feature in features:
        feature = feature.detach().float()
        energy = (
            feature.norm(dim=1, keepdim=True)
            if reduction == "l2"
            else feature.abs().mean(dim=1, keepdim=True)
        )
        energy = F.interpolate(energy[:1], size=tuple(size), mode="bilinear", align_corners=False)[0, 0]
        low, high = energy.min(), energy.max()
        maps.append(((energy - low) / (high - low) if high > low else torch.zeros_like(energy)).cpu().numpy())
    return np.stack(maps).astype(np.float32)


def heatmap_overlay(image: np.ndarray, heat: np.ndarray, cmap: str = "jet", alpha: float = 0.5) -> np.ndarray:
    """Gray image (H, W) in [0, 1] with a heat map (H, W) in [0, 1] blended on top: uint8 (H, W, 3)."""
    import matplotlib

    colored = matplotlib.colormaps[cmap](np.clip(heat, 0.0, 1.0))[..., :3]
    gray = np.repeat(np.clip(image, 0.0, 1.0)[..., None], 3, axis=-1)
    return np.round(((1.0 - alpha) * gray + alpha * colored) * 255.0).astype(np.uint8)


def explain(
    predictor: Predictor,
    image: ImageInput,
    text: str = "",
    slice_index: int | None = None,
    reduction: str = "l2",
) -> Explanation:
    """Run the PyTorch model once on one image and sentence, keeping the stage features F1..F4."""
    model = predictor.model
    if not hasattr(model, "forward_features"):
        raise ConfigError(f"{type(model).__name__} exposes no stage features; explain works with LSMS models")
    predictor.check_texts([text])
    unit = predictor.preprocess.read(image, slice_index)
    device = next(model.parameters()).device
    tokens = {k: v.to(device) for k, v in predictor.tokens([text]).items()}
    # the same precision as the predictor's PyTorch backend, so the mask matches `lsms predict`'s
    dtype = getattr(predictor.backend, "dtype", None)
    with eval_mode(model), autocast(device, dtype):
        logits, features = model(
            predictor.preprocess.batch([unit]).to(device), **tokens, return_features=True
        )
    probabilities, mask = predictor.finish(logits[0].float().cpu(), unit.shape)
    return Explanation(
        prediction=Prediction(image=unit, probabilities=probabilities, mask=mask),
        heatmaps=stage_heatmaps(features, unit.shape, reduction),
    )


def explanation_panel(
    explanation: Explanation,
    text: str,
    path: str | os.PathLike,
    mask: np.ndarray | None = None,
    cmap: str = "jet",
) -> Path:
    """A 1 x (S + 1) PNG figure: S1..S4 heat maps over the image and the prediction (green; ground
    truth ``mask`` red when given), the sentence as the title. Returns ``path``."""
    from matplotlib.figure import Figure

    image = explanation.prediction.image
    panels = [
        (f"S{i + 1}", heatmap_overlay(image, heat, cmap)) for i, heat in enumerate(explanation.heatmaps)
    ]
    panels.append(("prediction", overlay_mask(image, mask=mask, prediction=explanation.prediction.mask)))
    aspect = image.shape[0] / image.shape[1]
    figure = Figure(figsize=(2.6 * len(panels), 2.6 * aspect + 0.8), layout="constrained")
    for axis, (title, rgb) in zip(figure.subplots(1, len(panels)), panels, strict=True):
        axis.imshow(rgb, interpolation="nearest")
        axis.set_title(title)
        axis.set_axis_off()
    figure.suptitle("\n".join(textwrap.wrap(text, 100)) if text else "(text-free model)", fontsize=10)
    return atomic_write(path, lambda tmp: figure.savefig(tmp, dpi=120, format="png"))
