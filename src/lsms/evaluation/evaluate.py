"""Evaluate a model on referring samples at each mask's original resolution (used by ``lsms eval`` and
by the trainer's validation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from lsms.data.dataset import ReferringDataset, collate_referring
from lsms.data.io import CTWindow, load_mask, parse_window
from lsms.errors import ConfigError, DataError
from lsms.evaluation.metrics import MetricAccumulator
from lsms.evaluation.text_variants import apply_text_variant
from lsms.registry import check_input_size
from lsms.runtime import autocast, autocast_dtype, eval_mode, precision_name

if TYPE_CHECKING:
    from lsms.data.samples import ReferringSample
    from lsms.evaluation.referring import LesionMap


CONVENTIONS = (
    "Dice, mIoU, P@K: per image, averaged over images (LViT's convention; LSMS, RecLMIS, C2Seg). "
    "pooled Dice, oIoU (= pooled IoU): intersection and union summed over all pixels of the split "
    "(GuideDecoder's, torchmetrics). See docs/metrics.md."
)


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate`.

    Attributes:
        per_sample: one dict per sample, in input order: ``id, dice, iou, text`` (the sentence fed to the
            model, ``None`` for text-free models), the pixel counts ``intersection, union,
            pred_pixels, target_pixels`` and, given a lesion map, ``wrong_lesion``.
        means: :meth:`MetricAccumulator.summary` (fractions in [0, 1] and counts).
        settings: how the numbers were made (text variant, threshold, seed, image size, date, ...);
            callers add their own keys (the CLI adds checkpoint and data).
    """

    per_sample: list[dict]
    means: dict[str, float | int]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self, path: str | Path) -> Path:
        """Write ``{"settings", "means", "per_sample"}`` as indented JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": self.settings, "means": self.means, "per_sample": self.per_sample}
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        return path

    def markdown_table(self) -> str:
        """One-row markdown table in percent: text variant, n, per-image Dice, the wrong-lesion rate (when
        measured), mIoU, oIoU (= pooled IoU), precision@K, pooled Dice (:data:`CONVENTIONS` says which is
        which)."""
        precision_keys = [key for key in self.means if key.startswith("precision@")]
        wrong_lesion = ["wrong_lesion"] if "wrong_lesion" in self.means else []
        # Pooled Dice comes last so that the columns before it keep their historical order.
        headers = (
            ["text", "n", "Dice (%)"]
            + ["wrong lesion (%)" for _ in wrong_lesion]
            + ["mIoU (%)", "oIoU (%)"]
            + [f"P@{key[10:]} (%)" for key in precision_keys]
            + ["pooled Dice (%)"]
        )
        keys = ["dice", *wrong_lesion, "miou", "oiou", *precision_keys, "pooled_dice"]
        values = [str(self.settings.get("text_variant", "")), str(self.means["n"])] + [
            f"{100 * self.means[key]:.2f}" for key in keys
        ]
        lines = [
            "| " + " | ".join(headers) + " |",
            "|" + "---|" * len(headers),
            "| " + " | ".join(values) + " |",
        ]
        return "\n".join(lines)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def evaluate(
    model: nn.Module,
    samples: Sequence[ReferringSample],
    *,
    image_size: tuple[int, int],
    text_variant: str = "full",
    batch_size: int = 8,
    threshold: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    window: str | CTWindow | tuple[float, float] | None = None,
    num_workers: int = 0,
    precision: str = "auto",
    lesions: LesionMap | None = None,
) -> EvaluationResult:
    """Predict every sample and score it against its original-resolution mask.

    Images are resized to ``image_size`` (H, W) by :class:`ReferringDataset`; the logits (B,1,H,W) are
    upsampled bilinearly to each original mask's size, passed through a sigmoid and thresholded
    (``probability > threshold``), then scored by :class:`MetricAccumulator`. The model runs on the
    device of its parameters, in eval mode under ``torch.inference_mode``; its training mode is
    restored afterwards. ``seed`` only drives the ``shuffled`` text variant's derangement.

    Args:
        window: CT window for DICOM/NIfTI images: a preset name (``"liver"``), ``"level,width"``, a
            (level, width) pair or a ``CTWindow``; ``None`` keeps the dataset's default scaling.
        precision: autocast precision of the forward pass (:mod:`lsms.runtime`; ``auto``: bfloat16
            where the hardware has it). The one used is recorded in ``settings["precision"]``.
        lesions: the other lesions of each sample's slice (:func:`lsms.evaluation.referring.load_lesion_map`);
            given, each row gets a ``wrong_lesion`` flag and the means its rate.
    """
    if not samples:
        raise DataError("evaluation: no samples to evaluate (empty split or manifest?)")
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold: expected a probability strictly between 0 and 1, got {threshold}")
    if batch_size < 1:
        raise ConfigError(f"batch size: expected a positive integer, got {batch_size}")
    texts = apply_text_variant(samples, text_variant, seed)
    ct_window = parse_window(window)
    check_input_size(model, tuple(image_size), "image size")
    uses_text = bool(getattr(model, "uses_text", False))
    device = _model_device(model)
    dtype = autocast_dtype(precision, device)
    dataset = ReferringDataset(samples, image_size=tuple(image_size), augment=False, window=ct_window)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_referring
    )
    accumulator = MetricAccumulator()
    rows: list[dict] = []
    with (
        eval_mode(model),
        autocast(device, dtype),
        tqdm(total=len(samples), desc="eval", unit="img", disable=not progress) as bar,
    ):
        for batch in loader:
            indices = [int(index) for index in batch["index"]]
            image = batch["image"].to(device)
            if uses_text:
                tokens = model.tokenize([texts[index] for index in indices])
                logits = model(image, tokens["input_ids"].to(device), tokens["attention_mask"].to(device))
            else:
                logits = model(image)
            if logits.shape[1] != 1:
                raise ValueError(
                    f"evaluation expects single-channel logits (B,1,H,W), got {tuple(logits.shape)}"
                )
            for logit, index in zip(logits, indices, strict=True):
                sample = samples[index]
                target = load_mask(sample.mask, sample.slice)
                pred = _threshold_at_size(logit, target.shape, threshold)
                others = lesions.other_masks(sample) if lesions is not None else None
                row = accumulator.update(pred, target, sample.id, others)
                rows.append({**row, "text": texts[index] if uses_text else None})
            bar.update(len(indices))
    settings = {
        "text_variant": text_variant,
        "threshold": threshold,
        "seed": seed,
        "image_size": list(image_size),
        "window": None if ct_window is None else [ct_window.level, ct_window.width],
        "uses_text": uses_text,
        "precision": precision_name(dtype),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if text_variant == "shuffled":
        settings["n_shuffled_text_unchanged"] = sum(
            text == sample.text for text, sample in zip(texts, samples, strict=True)
        )
    return EvaluationResult(per_sample=rows, means=accumulator.summary(), settings=settings)


def _threshold_at_size(logit: torch.Tensor, size: tuple[int, ...], threshold: float) -> torch.Tensor:
    """Logit (1,h,w) -> bool mask (H,W) at the original size: bilinear upsampling, sigmoid, threshold."""
    if len(size) != 2:
        raise DataError(f"evaluation: expected a 2-D ground-truth mask, got shape {tuple(size)}")
    if tuple(logit.shape[-2:]) != tuple(size):
        logit = F.interpolate(logit[None].float(), size=tuple(size), mode="bilinear", align_corners=False)[0]
    return (torch.sigmoid(logit.float()) > threshold)[0].cpu()
