"""Segmentation metrics for referring segmentation (docs/metrics.md gives the exact rules).

- Per image, as LViT reports them (the paper's "Dice" and "mIoU"; also LSMS, RecLMIS, C2Seg): Dice and
  IoU of the thresholded prediction against the ground truth, averaged over images.
- Pooled over the data set, as GuideDecoder (Ariadne's Thread) reports them with torchmetrics: the same
  formulas applied to the pixel counts summed over all images. The pooled IoU is LAVT's overall IoU
  (oIoU); the pooled Dice is its Dice counterpart.
- As LAVT reports them: precision@K (fraction of images whose IoU is at least K).
- Where the other lesions of each image are known (the synthetic benchmark's lesions.csv): the
  wrong-lesion rate, the fraction of images whose prediction overlaps another lesion of the image in
  more pixels than the referred one.

Empty masks are handled explicitly: an empty ground truth with an empty prediction scores Dice 1 and
IoU 1 (a correct "nothing here"); any other case with an empty union cannot happen, and an empty
ground truth with a non-empty prediction scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

PRECISION_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)

ArrayLike = np.ndarray | torch.Tensor


def _as_bool_array(mask: ArrayLike, name: str) -> np.ndarray:
    """A bool numpy array; integer or float masks must hold only 0 and 1 (probabilities are refused)."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.dtype == np.bool_:
        return array
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: expected a binary mask (bool or values 0/1), got values outside {{0, 1}}")
    return array.astype(bool)


@dataclass(frozen=True)
class OverlapCounts:
    """Pixel counts of one prediction against one ground truth."""

    intersection: int
    union: int
    pred_pixels: int
    target_pixels: int

    @property
    def dice(self) -> float:
        """2|P∩G| / (|P| + |G|); 1 when both are empty."""
        total = self.pred_pixels + self.target_pixels
        return 1.0 if total == 0 else 2.0 * self.intersection / total

    @property
    def iou(self) -> float:
        """|P∩G| / |P∪G|; 1 when both are empty."""
        return 1.0 if self.union == 0 else self.intersection / self.union


def overlap_counts(pred: ArrayLike, target: ArrayLike) -> OverlapCounts:
    """Counts for a binary prediction and ground truth of one shape (any number of dimensions)."""
    pred_array = _as_bool_array(pred, "prediction")
    target_array = _as_bool_array(target, "target")
    if pred_array.shape != target_array.shape:
        raise ValueError(f"prediction {pred_array.shape} and target {target_array.shape} must have one shape")
    return OverlapCounts(
        intersection=int(np.count_nonzero(pred_array & target_array)),
        union=int(np.count_nonzero(pred_array | target_array)),
        pred_pixels=int(np.count_nonzero(pred_array)),
        target_pixels=int(np.count_nonzero(target_array)),
    )


def dice_iou(pred_bool: ArrayLike, target_bool: ArrayLike) -> tuple[float, float]:
    """Dice and IoU of one binary prediction against its ground truth (numpy or torch, same shape).

    Both empty -> (1.0, 1.0); empty ground truth with a non-empty prediction (or the reverse) -> (0.0, 0.0).
    """
    counts = overlap_counts(pred_bool, target_bool)
    return counts.dice, counts.iou


def hits_other_lesion(pred: ArrayLike, target: ArrayLike, other_lesions: Sequence[ArrayLike]) -> bool:
    """Whether ``pred`` overlaps some lesion of ``other_lesions`` in more pixels than ``target`` (the
    referred lesion): the model picked the wrong lesion, rather than misdrawing the right one."""
    pred_array = _as_bool_array(pred, "prediction")
    referred = overlap_counts(pred_array, target).intersection
    return any(overlap_counts(pred_array, other).intersection > referred for other in other_lesions)


class MetricAccumulator:
    """Collects per-image results and summarises them per image (LViT) and pooled (GuideDecoder, LAVT).

    Args:
        precision_thresholds: IoU levels K for precision@K (an image counts when IoU >= K, as in LAVT).
    """

    def __init__(self, precision_thresholds: tuple[float, ...] = PRECISION_THRESHOLDS) -> None:
        self.precision_thresholds = tuple(precision_thresholds)
        self.rows: list[dict] = []

    def update(
        self,
        pred: ArrayLike,
        target: ArrayLike,
        sample_id: str,
        other_lesions: Sequence[ArrayLike] | None = None,
    ) -> dict:
        """Score one image (binary masks of one shape); returns and keeps its row.

        Row keys: ``id, dice, iou, intersection, union, pred_pixels, target_pixels``, and
        ``wrong_lesion`` (:func:`hits_other_lesion`) when ``other_lesions`` (the masks of the image's
        other lesions, possibly none) is given.
        """
        counts = overlap_counts(pred, target)
        row = {
            "id": sample_id,
            "dice": counts.dice,
            "iou": counts.iou,
            "intersection": counts.intersection,
            "union": counts.union,
            "pred_pixels": counts.pred_pixels,
            "target_pixels": counts.target_pixels,
        }
        if other_lesions is not None:
            row["wrong_lesion"] = hits_other_lesion(pred, target, other_lesions)
        self.rows.append(row)
        return row

    def summary(self) -> dict:
        """Means over the images seen so far.

        Keys: ``dice`` and ``miou`` (means of per-image Dice and IoU: LViT's convention), ``pooled_dice``
        and ``oiou`` (Dice and IoU of the pixel counts summed over all images: the pooled convention of
        GuideDecoder / torchmetrics; ``oiou`` is the pooled IoU, LAVT's overall IoU; each is 1.0 when
        every mask and prediction was empty), ``precision@K`` for each K, ``n`` (images),
        ``n_empty_target`` (images with an empty ground truth), ``n_empty_target_with_pred`` (of those,
        images with a non-empty prediction, which score 0), and ``wrong_lesion`` (share of the rows
        with a ``wrong_lesion`` flag that have it set) when any row has the flag. All metrics are
        fractions in [0, 1].
        """
        if not self.rows:
            raise ValueError("no images were scored: call update() before summary()")
        ious = np.array([row["iou"] for row in self.rows])
        # The pooled convention is the per-image formula applied to the counts summed over the split.
        pooled = OverlapCounts(
            **{f.name: sum(row[f.name] for row in self.rows) for f in fields(OverlapCounts)}
        )
        result: dict = {
            "dice": float(np.mean([row["dice"] for row in self.rows])),
            "miou": float(ious.mean()),
            "oiou": pooled.iou,
            "pooled_dice": pooled.dice,
        }
        flags = [row["wrong_lesion"] for row in self.rows if "wrong_lesion" in row]
        if flags:
            result["wrong_lesion"] = float(np.mean(flags))
        for level in self.precision_thresholds:
            result[f"precision@{level:g}"] = float(np.mean(ious >= level))
        empty_target = [row for row in self.rows if row["target_pixels"] == 0]
        result["n"] = len(self.rows)
        result["n_empty_target"] = len(empty_target)
        result["n_empty_target_with_pred"] = sum(row["pred_pixels"] > 0 for row in empty_target)
        return result
