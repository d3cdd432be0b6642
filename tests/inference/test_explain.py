"""Pictures: captioned overlays, stage heat maps (Figure 5) and ``lsms explain``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from inference_helpers import run_cli
from PIL import Image

import lsms
from lsms.data.io import load_image
from lsms.data.transforms import resize_image
from lsms.errors import ConfigError
from lsms.inference.explain import explain, heatmap_overlay, stage_heatmaps
from lsms.predictor import Predictor
from lsms.viz.overlay import add_caption, captioned_overlay

SENTENCE = "a round bright lesion in the upper right area of the image"


def test_stage_heatmaps_normalised_at_image_size() -> None:
    feature = torch.zeros(1, 3, 4, 4)
    feature[0, :, 1, 2] = torch.tensor([3.0, -4.0, 0.0])  # L2 norm 5, mean |.| 7/3
    feature[0, 0, 3, 3] = -1.0
    l2, mean_abs = stage_heatmaps([feature], (8, 8), "l2"), stage_heatmaps([feature], (8, 8), "mean-abs")
    assert l2.shape == mean_abs.shape == (1, 8, 8) and l2.dtype == np.float32
    assert l2.min() == 0.0 and l2.max() == pytest.approx(1.0)
    # the peak sits where the strong feature is (row 1, column 2 of 4 -> rows 2-3, columns 4-5 of 8)
    assert np.unravel_index(l2[0].argmax(), (8, 8))[0] in (2, 3)
    assert np.unravel_index(l2[0].argmax(), (8, 8))[1] in (4, 5)
    # at the feature's own size: the weak spot is 1/5 of the peak (l2) or (1/3)/(7/3) (mean-abs)
    l2, mean_abs = stage_heatmaps([feature], (4, 4), "l2"), stage_heatmaps([feature], (4, 4), "mean-abs")
    assert l2[0, 3, 3] == pytest.approx(0.2) and mean_abs[0, 3, 3] == pytest.approx(1 / 7)
    assert not stage_heatmaps([torch.ones(1, 2, 3, 3)], (6, 6)).any()  # flat map -> zeros, not NaN
    with pytest.raises(ConfigError, match="reduction"):
        stage_heatmaps([feature], (8, 8), "max")


def test_heatmap_and_caption_pictures() -> None:
    image = np.full((40, 50), 0.5, dtype=np.float32)
    heat = np.zeros((40, 50), dtype=np.float32)
    heat[:, 25:] = 1.0
    rgb = heatmap_overlay(image, heat, "jet", alpha=0.5)
    assert rgb.shape == (40, 50, 3) and rgb.dtype == np.uint8
    assert rgb[0, 40, 0] > rgb[0, 40, 2] and rgb[0, 5, 2] > rgb[0, 5, 0]  # jet: hot red, cold blue
    captioned = add_caption(
        rgb, "a sentence long enough to be wrapped over several lines of the caption band"
    )
    assert captioned.shape[1] >= 384 and captioned.shape[0] > captioned.shape[1] * 40 // 50
    factor = captioned.shape[1] // 50
    np.testing.assert_array_equal(
        captioned[: 40 * factor : factor, ::factor], rgb
    )  # the picture is unchanged
    assert captioned[40 * factor :].max() == 255  # white text in the band
    prediction = np.zeros((40, 50), bool)
    prediction[5:10, 5:10] = True
    assert captioned_overlay(image, prediction).shape == (40, 50, 3)


def test_explain_features_match_the_model(checkpoint: Path, png_image: Path) -> None:
    model = lsms.from_pretrained(checkpoint)
    # float32, the reference the direct forward pass below is compared with
    result = explain(Predictor(model, precision="fp32"), png_image, SENTENCE, reduction="mean-abs")
    assert result.heatmaps.shape == (4, 70, 90)
    x = torch.from_numpy(resize_image(load_image(png_image), (64, 64)))[None, None]
    with torch.no_grad():
        _, features = model(x, **model.tokenize([SENTENCE]), return_features=True)
    np.testing.assert_allclose(result.heatmaps, stage_heatmaps(features, (70, 90), "mean-abs"), atol=1e-5)
    same = Predictor(model, precision="fp32").predict_2d(png_image, SENTENCE)
    np.testing.assert_allclose(result.prediction.probabilities, same.probabilities, atol=1e-6)


def test_explain_cli_writes_maps_overlay_and_panel(checkpoint: Path, png_image: Path, tmp_path: Path) -> None:
    out = tmp_path / "explain"
    argv = [
        "explain",
        "--checkpoint",
        str(checkpoint),
        "--image",
        str(png_image),
        "--text",
        SENTENCE,
        "--out",
        str(out),
        "--cmap",
        "inferno",
    ]
    assert run_cli(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "scan_S1.png",
        "scan_S2.png",
        "scan_S3.png",
        "scan_S4.png",
        "scan_overlay.png",
        "scan_panel.png",
    ]
    assert Image.open(out / "scan_S3.png").size == (90, 70)
    panel = Image.open(out / "scan_panel.png")
    assert panel.width > 3 * panel.height  # 1 x 5 panels side by side
    assert run_cli(argv) == 2  # outputs exist
    assert run_cli(argv[:-2] + ["--cmap", "no-such-map", "--overwrite"]) == 2
