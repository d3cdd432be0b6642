"""Evaluation: per-image Dice/IoU (LViT), pooled Dice and IoU (GuideDecoder; the pooled IoU is LAVT's overall
IoU), precision@K (LAVT), text ablations."""

from lsms.evaluation.evaluate import EvaluationResult, evaluate
from lsms.evaluation.metrics import PRECISION_THRESHOLDS, MetricAccumulator, dice_iou
from lsms.evaluation.text_variants import TEXT_VARIANTS, apply_text_variant

__all__ = [
    "PRECISION_THRESHOLDS",
    "TEXT_VARIANTS",
    "EvaluationResult",
    "MetricAccumulator",
    "apply_text_variant",
    "dice_iou",
    "evaluate",
]
