"""``lsms predict``: output files, sizes and geometry, overwrite rules, manifests."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from inference_helpers import SENTENCE, gray_image, predict_argv, run_cli
from PIL import Image

from lsms.inference import load_predictor


def test_predict_2d_writes_mask_overlay_probabilities(
    checkpoint: Path, png_image: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = predict_argv(checkpoint, png_image, out, "--save-probabilities", "--threshold", "0.7")
    assert run_cli(argv) == 0
    mask = np.asarray(Image.open(out / "scan_mask.png"))
    assert mask.shape == (70, 90) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    probabilities = np.asarray(Image.open(out / "scan_probabilities.png"))
    assert probabilities.dtype == np.uint16 and probabilities.shape == (70, 90)
    expected = load_predictor(checkpoint, threshold=0.7, backend="auto").predict_2d(png_image, SENTENCE)
    np.testing.assert_array_equal(mask == 255, expected.mask)
    np.testing.assert_allclose(probabilities / 65535.0, expected.probabilities, atol=1e-4)
    overlay = Image.open(out / "scan_overlay.png")
    assert overlay.mode == "RGB" and overlay.width >= 90 and overlay.height > 70  # the caption band
    rgb = np.asarray(overlay)
    # predicted pixels are tinted green (the paper's prediction colour), the caption band is black + white text
    scale = overlay.width // 90
    top = rgb[: 70 * scale : scale, ::scale]
    assert (top[expected.mask][:, 1] >= top[expected.mask][:, 0]).all()
    assert rgb[70 * scale :].max() == 255


def test_existing_outputs_need_overwrite(checkpoint: Path, png_image: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    argv = predict_argv(checkpoint, png_image, out)
    assert run_cli(argv) == 0
    before = (out / "scan_mask.png").stat().st_mtime_ns
    capsys.readouterr()
    assert run_cli(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "scan_mask.png: already exists; pass --overwrite" in error
    assert (out / "scan_mask.png").stat().st_mtime_ns == before
    assert run_cli(argv + ["--overwrite"]) == 0


def test_inputs_are_never_overwritten(checkpoint: Path, tmp_path: Path, capsys) -> None:
    # an input named like the output another input would produce, in the output folder itself
    folder = tmp_path / "data"
    folder.mkdir()
    Image.fromarray(gray_image(64, 64)).save(folder / "a.png")
    Image.fromarray(gray_image(64, 64, seed=5)).save(folder / "a_mask.png")
    original = (folder / "a_mask.png").read_bytes()
    argv = predict_argv(checkpoint, folder / "a.png", folder, "--overwrite")
    manifest = folder / "rows.csv"
    manifest.write_text(f"id,image,mask,text\na,a.png,a_mask.png,{SENTENCE}\n")
    assert (
        run_cli(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--manifest",
                str(manifest),
                "--out",
                str(folder),
                "--overwrite",
            ]
        )
        == 2
    )
    assert "a_mask.png: is an input file" in capsys.readouterr().err
    assert (folder / "a_mask.png").read_bytes() == original
    # a plain --image run has no ground-truth input, so its own mask path is just an existing output
    assert run_cli(argv[:-1]) == 2
    assert (folder / "a_mask.png").read_bytes() == original


def test_missing_sentence_and_bad_options_fail_cleanly(
    checkpoint: Path, png_image: Path, tmp_path: Path, capsys
) -> None:
    base = [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--image",
        str(png_image),
        "--out",
        str(tmp_path / "o"),
    ]
    assert run_cli(base) == 2
    assert "--text" in capsys.readouterr().err
    assert run_cli(base + ["--text", SENTENCE, "--slices", "0:1"]) == 2
    assert "only for volumes" in capsys.readouterr().err
    assert run_cli(base + ["--text", SENTENCE, "--backend", "onnx", "--precision", "bf16"]) == 2
    assert "ONNX Runtime runs float32" in capsys.readouterr().err
    assert run_cli(base + ["--text", SENTENCE, "--backend", "pytorch", "--onnx", "m.onnx"]) == 2
    assert "backend 'pytorch'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_predict_volume_keeps_geometry_and_slice_range(
    checkpoint: Path, nifti_volume: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = predict_argv(
        checkpoint,
        nifti_volume,
        out,
        "--slices",
        "2:4",
        "--batch-size",
        "2",
        "--no-progress",
        "--threshold",
        "0.6",
    )
    assert run_cli(argv) == 0
    written, source = nib.load(str(out / "ct_mask.nii.gz")), nib.load(str(nifti_volume))
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.header.get_zooms() == source.header.get_zooms()
    data = np.asarray(written.dataobj)
    expected = load_predictor(checkpoint, threshold=0.6, backend="auto").predict_volume(
        nifti_volume, SENTENCE, "2:4", False
    )
    assert not data[..., [0, 1, 4]].any()
    assert data.sum() == expected.mask.sum() > 0


def test_predict_manifest_names_outputs_by_row_id(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    for name, (h, w) in {"x1": (64, 72), "x2": (80, 64)}.items():
        Image.fromarray(gray_image(h, w)).save(folder / f"{name}.png")
        truth = np.zeros((h, w), np.uint8)
        truth[10:30, 20:40] = 255
        Image.fromarray(truth).save(folder / f"{name}_gt.png")
    manifest = folder / "rows.jsonl"
    manifest.write_text(
        '{"id": "case/1", "image": "x1.png", "mask": "x1_gt.png", "text": "upper lesion"}\n'
        '{"id": "case-2", "image": "x2.png", "mask": "x2_gt.png", "text": "lower lesion"}\n'
    )
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--manifest",
                str(manifest),
                "--out",
                str(out),
                "--no-progress",
                "--save-probabilities",
                "npy",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "case-2_mask.png",
        "case-2_overlay.png",
        "case-2_probabilities.npy",
        "case_1_mask.png",
        "case_1_overlay.png",
        "case_1_probabilities.npy",
    ]
    assert np.asarray(Image.open(out / "case-2_mask.png")).shape == (80, 64)
    probabilities = np.load(out / "case_1_probabilities.npy")
    expected = load_predictor(checkpoint, backend="auto").predict_2d(folder / "x1.png", "upper lesion")
    np.testing.assert_allclose(probabilities, expected.probabilities, atol=1e-6)
    # the ground truth is drawn red in the manifest overlays
    overlay = np.asarray(Image.open(out / "case_1_overlay.png"))
    scale = overlay.shape[1] // 72
    pixel = overlay[20 * scale, 30 * scale]
    assert pixel[0] > pixel[2]


@pytest.mark.parametrize("flag", ["--text", "--slices"])
def test_manifest_refuses_image_options(checkpoint: Path, tmp_path: Path, flag: str) -> None:
    manifest = tmp_path / "rows.csv"
    manifest.write_text("image,mask,text\n")
    assert (
        run_cli(
            [
                "predict",
                "--checkpoint",
                str(checkpoint),
                "--manifest",
                str(manifest),
                "--out",
                str(tmp_path / "o"),
                flag,
                "1:2",
            ]
        )
        == 2
    )


def test_predict_single_dicom_file_is_2d(checkpoint: Path, tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    source = Path(get_testdata_file("CT_small.dcm"))  # one 128x128 CT slice shipped with pydicom
    image = tmp_path / "ct_small.dcm"
    image.write_bytes(source.read_bytes())
    out = tmp_path / "out"
    argv = predict_argv(checkpoint, image, out, "--window", "40,400")
    assert run_cli(argv) == 0
    mask = np.asarray(Image.open(out / "ct_small_mask.png"))
    expected = load_predictor(checkpoint, window="40,400").predict_2d(image, SENTENCE)
    assert mask.shape == (128, 128)
    np.testing.assert_array_equal(mask == 255, expected.mask)
