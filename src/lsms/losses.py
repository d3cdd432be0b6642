"""Training loss: soft Dice (MONAI) plus binary cross-entropy on logits, the usual pair in LViT-style work."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import DiceLoss

from lsms.errors import ConfigError


class DiceBCELoss(nn.Module):
    """``dice_weight * Dice + bce_weight * BCE`` on single-channel logits.

    The Dice term is MONAI's ``DiceLoss(sigmoid=True)``: soft Dice per image (not over the whole batch),
    ``1 - (2 * sum(p * g) + smooth) / (sum(p) + sum(g) + smooth)``, averaged over the batch, so an image
    whose target is empty scores a loss near 0 when the prediction is empty too. The BCE term is the
    pixel mean of ``binary_cross_entropy_with_logits``.

    Args:
        dice_weight: weight of the Dice term (>= 0).
        bce_weight: weight of the BCE term (>= 0); at least one weight must be positive.
        smooth: added to the Dice numerator and denominator.
    """

    def __init__(self, dice_weight: float = 1.0, bce_weight: float = 1.0, smooth: float = 1e-5) -> None:
        super().__init__()
        if dice_weight < 0 or bce_weight < 0 or dice_weight + bce_weight <= 0:
            raise ConfigError(
                f"loss weights: expected dice_weight >= 0 and bce_weight >= 0, not both 0; "
                f"got dice_weight={dice_weight}, bce_weight={bce_weight}"
            )
        if smooth < 0:
            raise ConfigError(f"loss smooth: expected a value >= 0, got {smooth}")
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)
        self.dice = DiceLoss(sigmoid=True, smooth_nr=smooth, smooth_dr=smooth)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``logits`` (B,1,H,W) raw scores, ``target`` (B,1,H,W) in {0,1} -> scalar loss (float32)."""
        if logits.shape != target.shape:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have one shape"
            )
        # float32 even under autocast: per-image sums of half-precision probabilities can overflow.
        logits = logits.float()
        target = target.float()
        loss = logits.new_zeros(())
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits, target)
        if self.bce_weight:
            loss = loss + self.bce_weight * F.binary_cross_entropy_with_logits(logits, target)
        return loss
