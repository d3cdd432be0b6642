from __future__ import annotations

import numpy as np
import pytest

from lsms.errors import DataError
from lsms.viz.overlay import overlay_mask


def test_overlay_colours() -> None:
    image = np.full((4, 4), 0.5, np.float32)
    truth = np.zeros((4, 4), bool)
    truth[0, :2] = True
    prediction = np.zeros((1, 4, 4), np.float32)
    prediction[0, 0, 1:3] = 0.9  # probabilities, (1, H, W)
    rgb = overlay_mask(image, truth, prediction, alpha=0.5)
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 4, 3)
    assert tuple(rgb[3, 3]) == (128, 128, 128)  # untouched gray
    assert tuple(rgb[0, 0]) == (191, 64, 64)  # ground truth only: red
    assert tuple(rgb[0, 2]) == (64, 191, 64)  # prediction only: green
    assert tuple(rgb[0, 1]) == (191, 191, 64)  # both: yellow
    assert np.array_equal(
        overlay_mask(image), np.repeat((image * 255).round()[..., None], 3, -1).astype(np.uint8)
    )


def test_overlay_shape_mismatch() -> None:
    with pytest.raises(DataError, match=r"mask of shape \(3, 3\); expected the image shape \(4, 4\)"):
        overlay_mask(np.zeros((4, 4)), np.zeros((3, 3)))
