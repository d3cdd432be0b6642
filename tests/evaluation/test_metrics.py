"""Metric values on hand-made masks: Dice/IoU, empty-mask rules, oIoU versus mIoU, pooled Dice, precision@K,
per-image Dice against MONAI."""

import numpy as np
import pytest
import torch

from lsms.evaluation.metrics import MetricAccumulator, dice_iou


def _mask(shape, *boxes):
    """Bool mask with the given (row0, row1, col0, col1) boxes set."""
    mask = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in boxes:
        mask[r0:r1, c0:c1] = True
    return mask


def test_dice_iou_known_values():
    target = _mask((10, 10), (0, 4, 0, 4))  # 16 pixels
    pred = _mask((10, 10), (0, 4, 2, 6))  # 16 pixels, 8 shared
    dice, iou = dice_iou(pred, target)
    assert dice == pytest.approx(2 * 8 / 32)
    assert iou == pytest.approx(8 / 24)


def test_dice_iou_accepts_torch_and_01_integers():
    target = _mask((6, 6), (0, 3, 0, 3))
    pred = _mask((6, 6), (0, 3, 0, 2))
    expected = (2 * 6 / 15, 6 / 9)
    assert dice_iou(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(expected)
    assert dice_iou(pred.astype(np.uint8), target.astype(np.float32)) == pytest.approx(expected)


def test_dice_iou_refuses_probabilities_and_shape_mismatch():
    with pytest.raises(ValueError, match="binary"):
        dice_iou(np.full((4, 4), 0.7), np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match="one shape"):
        dice_iou(np.zeros((4, 4), dtype=bool), np.zeros((4, 5), dtype=bool))


def test_empty_mask_rules():
    empty = np.zeros((8, 8), dtype=bool)
    some = _mask((8, 8), (2, 4, 2, 4))
    assert dice_iou(empty, empty) == (1.0, 1.0)
    assert dice_iou(some, empty) == (0.0, 0.0)  # something predicted where nothing is
    assert dice_iou(empty, some) == (0.0, 0.0)  # missed object


def test_accumulator_oiou_differs_from_miou():
    acc = MetricAccumulator()
    # Large object, well found: I=90, U=100 -> IoU 0.9.
    big_target = _mask((20, 20), (0, 10, 0, 10))
    big_pred = _mask((20, 20), (0, 9, 0, 10))
    # Small object, half found: I=2, U=4 -> IoU 0.5.
    small_target = _mask((20, 20), (0, 1, 0, 4))
    small_pred = _mask((20, 20), (0, 1, 0, 2))
    acc.update(big_pred, big_target, "big")
    acc.update(small_pred, small_target, "small")
    summary = acc.summary()
    assert summary["miou"] == pytest.approx((0.9 + 0.5) / 2)
    assert summary["oiou"] == pytest.approx((90 + 2) / (100 + 4))
    assert summary["oiou"] != pytest.approx(summary["miou"])
    assert summary["dice"] == pytest.approx((2 * 90 / 190 + 2 * 2 / 6) / 2)
    assert summary["n"] == 2 and summary["n_empty_target"] == 0


def test_precision_at_k_counts_iou_at_least_k():
    acc = MetricAccumulator()
    target = _mask((10, 10), (0, 10, 0, 10))  # 100 pixels
    for i, rows in enumerate([5, 6, 7, 8, 9, 10]):  # IoU exactly 0.5, 0.6, ..., 1.0
        acc.update(_mask((10, 10), (0, rows, 0, 10)), target, f"s{i}")
    summary = acc.summary()
    assert [summary[f"precision@{k}"] for k in ("0.5", "0.6", "0.7", "0.8", "0.9")] == pytest.approx(
        [6 / 6, 5 / 6, 4 / 6, 3 / 6, 2 / 6]
    )


def test_accumulator_counts_empty_targets():
    acc = MetricAccumulator()
    empty = np.zeros((5, 5), dtype=bool)
    some = _mask((5, 5), (0, 2, 0, 2))
    acc.update(empty, empty, "both-empty")
    acc.update(some, empty, "false-positive")
    acc.update(some, some, "perfect")
    summary = acc.summary()
    assert summary["n"] == 3
    assert summary["n_empty_target"] == 2
    assert summary["n_empty_target_with_pred"] == 1
    assert summary["dice"] == pytest.approx(2 / 3)
    assert summary["oiou"] == pytest.approx(4 / 8)
    assert [row["id"] for row in acc.rows] == ["both-empty", "false-positive", "perfect"]


def test_all_empty_gives_oiou_one_and_empty_summary_raises():
    acc = MetricAccumulator()
    with pytest.raises(ValueError, match="no images"):
        acc.summary()
    acc.update(np.zeros((3, 3), dtype=bool), np.zeros((3, 3), dtype=bool), "a")
    assert acc.summary()["oiou"] == 1.0


def test_per_image_dice_and_iou_match_monai_metrics():
    from monai.metrics import DiceMetric, MeanIoU

    rng = np.random.default_rng(0)
    preds = [rng.random((12, 16)) < p for p in (0.1, 0.3, 0.5, 0.7)]
    targets = [rng.random((12, 16)) < p for p in (0.2, 0.3, 0.6, 0.4)]
    empty = np.zeros((12, 16), dtype=bool)
    preds += [empty, preds[0], empty]  # empty/empty scores 1; a prediction on, or a miss of, nothing 0
    targets += [empty, empty, targets[0]]
    acc = MetricAccumulator()
    rows = [
        acc.update(pred, target, f"s{i}") for i, (pred, target) in enumerate(zip(preds, targets, strict=True))
    ]
    batch = torch.from_numpy(np.stack(preds)[:, None]), torch.from_numpy(np.stack(targets)[:, None])
    # MONAI's default ignore_empty=True gives NaN for an empty ground truth; False applies our rule.
    for key, metric in (("dice", DiceMetric), ("iou", MeanIoU)):
        monai = metric(include_background=True, reduction="none", ignore_empty=False)(*batch)
        assert [row[key] for row in rows] == pytest.approx(monai[:, 0].tolist()), key
    assert acc.summary()["dice"] == pytest.approx(float(DiceMetric(ignore_empty=False)(*batch).mean()))


def test_pooled_dice_and_iou_sum_the_pixels_of_the_split():
    acc = MetricAccumulator()
    # Big lesion found well (I=90, |P|=90, |G|=100) and a small one half found (I=2, |P|=2, |G|=4).
    acc.update(_mask((20, 20), (0, 9, 0, 10)), _mask((20, 20), (0, 10, 0, 10)), "big")
    acc.update(_mask((20, 20), (0, 1, 0, 2)), _mask((20, 20), (0, 1, 0, 4)), "small")
    # A false positive on an empty ground truth adds its 3 pixels to |P| and to the union only.
    acc.update(_mask((20, 20), (5, 6, 0, 3)), np.zeros((20, 20), dtype=bool), "empty")
    summary = acc.summary()
    assert summary["pooled_dice"] == pytest.approx(2 * (90 + 2) / ((90 + 2 + 3) + (100 + 4)))
    assert summary["oiou"] == pytest.approx((90 + 2) / (100 + 4 + 3))  # oIoU is the pooled IoU
    assert summary["dice"] == pytest.approx((2 * 90 / 190 + 2 * 2 / 6 + 0) / 3)  # per image, for contrast
    # Pooled numbers weigh pixels, not images: the big lesion dominates them.
    assert summary["pooled_dice"] > summary["dice"] + 0.3
    # Nothing anywhere: pooled scores follow the empty/empty rule.
    nothing = MetricAccumulator()
    nothing.update(np.zeros((3, 3), dtype=bool), np.zeros((3, 3), dtype=bool), "a")
    assert nothing.summary()["pooled_dice"] == nothing.summary()["oiou"] == 1.0


def test_wrong_lesion_flags_a_prediction_that_overlaps_another_lesion_more():
    referred, other = _mask((10, 10), (0, 4, 0, 4)), _mask((10, 10), (6, 10, 6, 10))
    accumulator = MetricAccumulator()
    on_other = accumulator.update(_mask((10, 10), (1, 4, 1, 4), (6, 10, 6, 10)), referred, "a", [other])
    misdrawn = accumulator.update(_mask((10, 10), (0, 6, 0, 6)), referred, "b", [other])
    tie = accumulator.update(_mask((10, 10), (3, 4, 3, 4), (6, 7, 6, 7)), referred, "c", [other])
    alone = accumulator.update(_mask((10, 10), (6, 10, 6, 10)), referred, "d", [])
    assert on_other["wrong_lesion"] and not misdrawn["wrong_lesion"]  # 16 px on the other vs 9
    assert not tie["wrong_lesion"] and not alone["wrong_lesion"]  # "more" is strict; no other lesion
    assert accumulator.summary()["wrong_lesion"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="one shape"):
        accumulator.update(referred, referred, "e", [np.zeros((10, 12), dtype=bool)])


def test_wrong_lesion_is_absent_not_zero_without_other_lesions():
    accumulator = MetricAccumulator()
    row = accumulator.update(_mask((4, 4), (0, 2, 0, 2)), _mask((4, 4), (0, 2, 0, 2)), "a")
    assert "wrong_lesion" not in row and "wrong_lesion" not in accumulator.summary()
