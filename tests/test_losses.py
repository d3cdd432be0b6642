"""DiceBCELoss: values on known inputs, weights, validation, and that it trains a tiny model."""

import pytest
import torch
import torch.nn as nn

from lsms.errors import ConfigError
from lsms.losses import DiceBCELoss


def test_perfect_prediction_has_near_zero_loss_and_wrong_one_is_large():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    confident = (target * 2 - 1) * 20  # logits of +-20
    loss_fn = DiceBCELoss()
    assert loss_fn(confident, target).item() < 1e-3
    assert loss_fn(-confident, target).item() > 10


def test_weights_select_the_terms():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8)
    target = (torch.rand(2, 1, 8, 8) > 0.5).float()
    dice_only = DiceBCELoss(dice_weight=1.0, bce_weight=0.0)(logits, target)
    bce_only = DiceBCELoss(dice_weight=0.0, bce_weight=1.0)(logits, target)
    both = DiceBCELoss(dice_weight=2.0, bce_weight=0.5)(logits, target)
    assert bce_only.item() == pytest.approx(
        nn.functional.binary_cross_entropy_with_logits(logits, target).item()
    )
    assert both.item() == pytest.approx(2.0 * dice_only.item() + 0.5 * bce_only.item(), rel=1e-6)
    # Per-image soft Dice, averaged over the batch.
    probs = torch.sigmoid(logits)
    per_image = 1 - (2 * (probs * target).sum((1, 2, 3)) + 1e-5) / (
        probs.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1e-5
    )
    assert dice_only.item() == pytest.approx(per_image.mean().item(), rel=1e-5)


def test_empty_target_needs_a_confidently_empty_prediction():
    # With smooth 1e-5 (MONAI's default, LViT's value) soft Dice on an empty target is ~0 only when the
    # summed probabilities are well below 1e-5: documented in docs/metrics.md.
    target = torch.zeros(1, 1, 8, 8)
    loss_fn = DiceBCELoss()
    assert loss_fn(torch.full((1, 1, 8, 8), -20.0), target).item() < 0.05
    assert loss_fn(torch.full((1, 1, 8, 8), -5.0), target).item() > 0.9


def test_bad_arguments_raise():
    with pytest.raises(ConfigError, match="dice_weight"):
        DiceBCELoss(dice_weight=0.0, bce_weight=0.0)
    with pytest.raises(ConfigError, match="dice_weight"):
        DiceBCELoss(dice_weight=-1.0)
    with pytest.raises(ValueError, match="one shape"):
        DiceBCELoss()(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 4, 4))


def test_half_precision_logits_give_float32_loss():
    target = torch.ones(1, 1, 300, 300)
    loss = DiceBCELoss()(torch.full((1, 1, 300, 300), 5.0, dtype=torch.float16), target)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_loss_decreases_when_training_a_tiny_model():
    torch.manual_seed(0)
    images = torch.rand(4, 1, 16, 16)
    targets = (images > 0.6).float()  # learnable from the pixels themselves
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = DiceBCELoss()
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = loss_fn(model(images), targets)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
