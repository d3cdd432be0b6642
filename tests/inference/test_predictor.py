"""Predictor and model.segment: preprocessing as documented, same numbers as direct model calls."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from inference_helpers import gray_image

import lsms
from lsms.data.io import load_image, load_volume, save_volume_like
from lsms.data.transforms import resize_image
from lsms.errors import ConfigError, DataError
from lsms.inference import load_predictor
from lsms.inference.outputs import check_outputs
from lsms.predictor import Predictor, parse_slice_range

SENTENCE = "a round bright lesion in the upper right area"


def direct_probabilities(model, image01: np.ndarray, text: str) -> np.ndarray:
    """The documented pipeline by hand: resize to 64x64, forward, bilinear logits back, sigmoid."""
    x = torch.from_numpy(resize_image(image01, (64, 64)))[None, None]
    tokens = model.tokenize([text]) if model.uses_text else {}
    with torch.no_grad():
        logits = model(x, **tokens)
    logits = F.interpolate(logits, size=image01.shape, mode="bilinear", align_corners=False)
    return torch.sigmoid(logits)[0, 0].numpy()


def test_predict_2d_matches_direct_model_call(checkpoint: Path, png_image: Path) -> None:
    model = lsms.from_pretrained(checkpoint)
    expected = direct_probabilities(model, load_image(png_image), SENTENCE)
    threshold = float(np.median(expected))  # splits this untrained model's output
    result = Predictor(model, threshold=threshold, precision="fp32").predict_2d(png_image, SENTENCE)
    assert result.probabilities.shape == (70, 90) and result.mask.shape == (70, 90)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    np.testing.assert_array_equal(result.mask, expected > threshold)
    assert 0 < result.mask.sum() < result.mask.size


def test_segment_api_returns_bool_mask_at_input_size(checkpoint: Path, png_image: Path) -> None:
    model = lsms.from_pretrained(checkpoint)
    mask = model.segment(png_image, SENTENCE)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (70, 90)
    mask2, probabilities = model.segment(str(png_image), SENTENCE, return_probabilities=True)
    np.testing.assert_array_equal(mask, mask2)
    assert probabilities.dtype == np.float32 and probabilities.shape == (70, 90)
    np.testing.assert_array_equal(mask, probabilities > 0.5)
    # an in-memory uint8 array is scaled by 255 like the PNG file
    from_array = model.segment(gray_image(70, 90), SENTENCE, return_probabilities=True)[1]
    np.testing.assert_allclose(from_array, probabilities, atol=1e-6)
    # the sentence matters for a text model
    other = model.segment(png_image, "nothing at all", return_probabilities=True)[1]
    assert np.abs(other - probabilities).max() > 1e-4


def test_segment_restores_training_mode_and_a_fresh_model_segments(checkpoint: Path, png_image: Path) -> None:
    model = lsms.from_pretrained(checkpoint).train()
    eval_result = lsms.from_pretrained(checkpoint).segment(png_image, SENTENCE, return_probabilities=True)[1]
    np.testing.assert_allclose(
        model.segment(png_image, SENTENCE, return_probabilities=True)[1], eval_result, atol=1e-6
    )
    assert model.training
    # A fresh model predicts at its preset's input size; image_size overrides it.
    fresh = lsms.create_model("lsms-nano", use_text=False)
    assert fresh.preprocess.image_size == (224, 224)
    assert fresh.segment(png_image).shape == (70, 90)
    assert fresh.segment(png_image, image_size=64).shape == (70, 90)
    with pytest.raises(ConfigError, match="image_size"):
        fresh.segment(png_image, image_size=0)


def test_text_free_model_ignores_the_sentence(text_free_checkpoint: Path, png_image: Path) -> None:
    model = lsms.from_pretrained(text_free_checkpoint)
    a = model.segment(png_image, "left", return_probabilities=True, precision="fp32")[1]
    b = model.segment(png_image, "", return_probabilities=True, precision="fp32")[1]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, direct_probabilities(model, load_image(png_image), ""), atol=1e-5)


def test_bad_inputs_raise_one_line_errors(checkpoint: Path, tmp_path: Path) -> None:
    predictor = load_predictor(checkpoint)
    with pytest.raises(ConfigError, match="empty sentence"):
        predictor.predict_2d(gray_image(64, 64), "   ")
    with pytest.raises(DataError, match="outside \\[0, 1\\].*window"):
        predictor.predict_2d(np.full((64, 64), 300.0, dtype=np.float32), SENTENCE)
    with pytest.raises(DataError, match="missing.png: file not found"):
        predictor.predict_2d(tmp_path / "missing.png", SENTENCE)
    with pytest.raises(ConfigError, match="threshold"):
        load_predictor(checkpoint, threshold=1.0)
    with_nan = np.full((64, 64), 0.5, dtype=np.float32)
    with_nan[0, :3] = [np.nan, np.inf, -np.inf]
    with pytest.raises(DataError, match="^image array: 3 of 4096 values are NaN or infinite"):
        predictor.predict_2d(with_nan, SENTENCE)  # min-max or windowing would hide them
    with pytest.raises(ConfigError, match="image_size 32x32: lsms-nano needs input sides of at least 64"):
        Predictor(predictor.model, image_size=32)
    # HU arrays work with a window: -1000..1000 HU through level 0 / width 2000
    hu = np.linspace(-1000, 1000, 64 * 64, dtype=np.float32).reshape(64, 64)
    windowed = load_predictor(checkpoint, window="0,2000").predict_2d(hu, SENTENCE)
    np.testing.assert_allclose(windowed.image, (hu + 1000) / 2000, atol=1e-6)


def test_predict_volume_nifti_slices_and_geometry(
    checkpoint: Path, nifti_volume: Path, tmp_path: Path
) -> None:
    predictor = load_predictor(checkpoint, batch_size=2)
    result = predictor.predict_volume(nifti_volume, SENTENCE, slices="1:4", progress=False)
    assert result.mask.shape == (5, 72, 80) and result.slices == range(1, 4)
    assert not result.mask[[0, 4]].any() and not result.probabilities[[0, 4]].any()
    # each predicted slice equals a 2D prediction of that slice (same volume-wide min-max scaling)
    for z in (1, 3):
        single = predictor.predict_2d(nifti_volume, SENTENCE, slice_index=z)
        np.testing.assert_allclose(result.probabilities[z], single.probabilities, atol=1e-5)
    # batch size does not change the numbers
    other = load_predictor(checkpoint, batch_size=3).predict_volume(nifti_volume, SENTENCE, progress=False)
    np.testing.assert_allclose(other.probabilities[1:4], result.probabilities[1:4], atol=1e-5)
    out = save_volume_like(result.mask, result.volume, tmp_path / "out" / "ct_mask.nii.gz")
    written, source = nib.load(str(out)), nib.load(str(nifti_volume))
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.header.get_zooms() == source.header.get_zooms()
    stored = np.asarray(written.dataobj)  # file axes (W, H, Z): slices 0 and 4 empty
    assert stored.dtype == np.uint8 and set(np.unique(stored)) <= {0, 1}
    assert not stored[..., [0, 4]].any() and stored.sum() == result.mask.sum()


def test_bf16_volume_prediction_agrees_with_the_fp32_reference(checkpoint: Path, nifti_volume: Path) -> None:
    # the stated parity of the CPU fast path (docs/performance.md): probabilities within 0.05 on this
    # untrained network with random branch weights (rounding errors are not damped by training)
    reference = load_predictor(checkpoint, precision="fp32").predict_volume(
        nifti_volume, SENTENCE, progress=False
    )
    bf16 = load_predictor(checkpoint, precision="bf16")
    first = bf16.predict_volume(nifti_volume, SENTENCE, progress=False).probabilities
    assert np.abs(first - reference.probabilities).max() <= 0.05
    assert np.array_equal(bf16.predict_volume(nifti_volume, SENTENCE, progress=False).probabilities, first)


def test_predict_volume_dicom_series(checkpoint: Path, dicom_series: Path, tmp_path: Path) -> None:
    predictor = load_predictor(checkpoint, window="40,400")
    result = predictor.predict_volume(dicom_series, SENTENCE, progress=False)
    volume = load_volume(dicom_series)
    assert result.mask.shape == volume.array.shape == (4, 66, 68)
    single = predictor.predict_2d(dicom_series, SENTENCE, slice_index=2)
    np.testing.assert_allclose(result.probabilities[2], single.probabilities, atol=1e-5)
    written = nib.load(str(save_volume_like(result.mask, result.volume, tmp_path / "series_mask.nii.gz")))
    assert written.shape == (68, 66, 4)  # (X, Y, Z): columns, rows, slices
    np.testing.assert_allclose(written.affine, volume.affine[:, [2, 1, 0, 3]])
    np.testing.assert_array_equal(
        np.asarray(written.dataobj), result.mask.astype(np.uint8).transpose(2, 1, 0)
    )


def test_predict_manifest_rows_in_order(checkpoint: Path, png_image: Path, tmp_path: Path) -> None:
    from PIL import Image

    second = png_image.with_name("second.png")
    Image.fromarray(gray_image(80, 64, seed=3)).save(second)
    Image.fromarray(np.zeros((70, 90), np.uint8)).save(png_image.with_name("m1.png"))
    Image.fromarray(np.zeros((80, 64), np.uint8)).save(png_image.with_name("m2.png"))
    manifest = png_image.with_name("rows.csv")
    manifest.write_text(
        f"id,image,mask,text\nr1,scan.png,m1.png,{SENTENCE}\nr2,second.png,m2.png,lower left\n"
    )
    predictor = load_predictor(checkpoint, batch_size=1)
    rows = list(predictor.predict_manifest(manifest))
    assert [sample.id for sample, _ in rows] == ["r1", "r2"]
    assert rows[1][1].mask.shape == (80, 64)
    np.testing.assert_allclose(
        rows[1][1].probabilities, predictor.predict_2d(second, "lower left").probabilities, atol=1e-5
    )


def test_slice_ranges_and_output_checks(tmp_path: Path) -> None:
    assert parse_slice_range("2:5", 10) == range(2, 5)
    assert parse_slice_range(":3", 10) == range(0, 3) and parse_slice_range("7:", 10) == range(7, 10)
    assert parse_slice_range(None, 4) == range(4)
    for bad in ("5:2", "0:11", "a:b", "3", "-1:2"):
        with pytest.raises(ConfigError, match="slices"):
            parse_slice_range(bad, 10)
    existing = tmp_path / "a_mask.png"
    existing.write_bytes(b"x")
    with pytest.raises(DataError, match=r"a_mask.png: already exists; pass --overwrite"):
        check_outputs([existing], [], overwrite=False)
    check_outputs([existing], [], overwrite=True)
    with pytest.raises(DataError, match="is an input file"):
        check_outputs([existing], [existing], overwrite=True)
    with pytest.raises(DataError, match="two results"):
        check_outputs([tmp_path / "x.png", tmp_path / "x.png"], [], overwrite=False)
