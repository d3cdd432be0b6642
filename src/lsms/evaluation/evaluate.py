"""Evaluate a predictor on referring samples at each mask's original resolution (used by ``lsms eval`` and
by the trainer's validation)."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from lsms.atomic import atomic_write_text
from lsms.data.io import load_mask
from lsms.errors import DataError
from lsms.evaluation.metrics import MetricAccumulator
from lsms.evaluation.text_variants import apply_text_variant
from lsms.inference.outputs import mask_to_png_array, safe_name, save_png

if TYPE_CHECKING:
    from lsms.data.samples import ReferringSample
    from lsms.evaluation.referring import LesionMap
    from lsms.predictor import Predictor


logger = logging.getLogger("lsms.evaluation")

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
        payload = {"settings": self.settings, "means": self.means, "per_sample": self.per_sample}
        return atomic_write_text(path, json.dumps(payload, indent=2) + "\n")

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


def evaluate(
    predictor: Predictor,
    samples: Sequence[ReferringSample],
    *,
    text_variant: str = "full",
    seed: int = 0,
    progress: bool = True,
    num_workers: int = 0,
    mask_dir: str | Path | None = None,
    lesions: LesionMap | None = None,
) -> EvaluationResult:
    """Predict every sample with ``predictor`` (the path of ``lsms predict`` and ``segment``: its
    preprocessing, batch size, precision and threshold) and score the mask against the sample's mask at
    its original resolution with :class:`MetricAccumulator`. The model's training mode is restored
    afterwards. ``seed`` only drives the ``shuffled`` text variant's derangement; ``num_workers``
    processes read the images; with ``mask_dir`` each predicted mask is also written there as
    ``ID_mask.png`` (0/255, as ``lsms predict`` writes it). ``lesions``: the other lesions of each
    sample's slice (:func:`lsms.evaluation.referring.load_lesion_map`); given, each row gets a
    ``wrong_lesion`` flag and the means its rate.
    """
    if not samples:
        raise DataError("evaluation: no samples to evaluate (empty split or manifest?)")
    texts = apply_text_variant(samples, text_variant, seed)
    uses_text = predictor.uses_text
    accumulator = MetricAccumulator()
    rows: list[dict] = []
    predictions = predictor.predict_samples(samples, texts, num_workers=num_workers, check_texts=False)
    with tqdm(total=len(samples), desc="eval", unit="img", disable=not progress) as bar:
        for index, (sample, prediction) in enumerate(predictions):
            target = load_mask(sample.mask, sample.slice)
            if target.shape != prediction.mask.shape:
                raise DataError(
                    f"sample {sample.id}: mask {sample.mask.name} is {target.shape[0]}x{target.shape[1]} but "
                    f"image {sample.image.name} is {prediction.mask.shape[0]}x{prediction.mask.shape[1]}; "
                    "expected the same size"
                )
            if mask_dir is not None:
                save_png(
                    mask_to_png_array(prediction.mask), Path(mask_dir) / f"{safe_name(sample.id)}_mask.png"
                )
            others = lesions.other_masks(sample) if lesions is not None else None
            row = accumulator.update(prediction.mask, target, sample.id, others)
            rows.append({**row, "text": texts[index] if uses_text else None})
            bar.update(1)
    window = predictor.preprocess.window
    settings = {
        "text_variant": text_variant,
        "threshold": predictor.threshold,
        "seed": seed,
        "image_size": list(predictor.image_size),
        "window": None if window is None else [window.level, window.width],
        "uses_text": uses_text,
        "precision": predictor.precision,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if text_variant == "shuffled":
        settings["n_shuffled_text_unchanged"] = sum(
            text == sample.text for text, sample in zip(texts, samples, strict=True)
        )
    means = accumulator.summary()
    logger.info(
        "evaluated %d samples (%s text): Dice %.4f, mIoU %.4f, pooled Dice %.4f",
        means["n"],
        text_variant,
        means["dice"],
        means["miou"],
        means["pooled_dice"],
    )
    return EvaluationResult(per_sample=rows, means=means, settings=settings)
