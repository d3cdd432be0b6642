"""Bad input through the real ``lsms`` entry point: each case gives its documented exit code and one
line naming the file, row or option (never a traceback). The cases extend the probe of issue 14;
docs/data.md counts them ("Bad input"), so add a row there when you add one here."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image
from tests.inference.inference_helpers import predict_argv

import lsms
from lsms.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SENTENCE = "a bright square in the upper left part"


def _pair(folder: Path, name: str, size: int = 64) -> tuple[Path, Path]:
    """A uint8 PNG image with a bright square and its 0/255 mask."""
    image = np.full((size, size), 40, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    side = max(1, size // 4)
    image[:side, :side], mask[:side, :side] = 220, 255
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_mask.png")
    return folder / f"{name}.png", folder / f"{name}_mask.png"


def _nan_tiff(path: Path, shape: tuple[int, int] = (64, 64), nan_rows: slice = slice(None)) -> Path:
    pixels = np.full(shape, 0.5, np.float32)
    pixels[nan_rows] = np.nan
    Image.fromarray(pixels).save(path, format="TIFF")
    return path


def _manifest(folder: Path, name: str = "m.csv", encoding: str = "utf-8", **changes: object) -> Path:
    """Four rows of 64x64 pairs; ``changes`` replace the first row's fields (image, mask, text)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(4):
        image, mask = _pair(folder, f"i{index}")
        rows.append({"id": f"s{index}", "image": image.name, "mask": mask.name, "text": SENTENCE})
    rows[0].update(changes)
    path = folder / name
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding=encoding)
        return path
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def checkpoint(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = lsms.create_model("lsms-nano", text_encoder=str(tiny_bert_dir))
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt"), preprocess={"image_size": [64, 64]})


def _broken_checkpoint(checkpoint: Path, folder: Path, keep_checksum: bool) -> Path:
    """A copy of ``checkpoint`` with 4 KB of 0xFF in the middle of its weights (NaN as float32)."""
    import shutil

    copy = Path(shutil.copytree(checkpoint, folder / "broken"))
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = b"\xff" * 4096
    weights.write_bytes(bytes(data))
    if not keep_checksum:
        config = json.loads((copy / "config.json").read_text())
        del config["weights_sha256"]
        (copy / "config.json").write_text(json.dumps(config))
    return copy


def _train_config(folder: Path, manifest: Path, tiny_bert_dir: Path, **data: object) -> Path:
    import yaml

    config = {
        "model": {"name": "lsms-nano", "overrides": {"text_encoder": str(tiny_bert_dir)}},
        "data": {"train": str(manifest), "image_size": [64, 64], **data},
        "train": {"max_steps": 1, "batch_size": 2, "progress": False, "run_dir": str(folder / "run")},
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# Each case: (tmp folder, checkpoint, tiny BERT folder) -> argv; the expected exit code; a regex the one
# error line (exit 2/3, stderr) or problem line (exit 1, stdout) must match; for exit 0, a stdout line.
Case = Callable[[Path, Path, Path], list[str]]


def _check(**changes: object) -> Case:
    return lambda tmp, ckpt, bert: ["data", "check", str(_manifest(tmp, **changes))]


def _nan_nifti(tmp: Path) -> Path:
    data = np.random.default_rng(0).normal(0, 100, (64, 64, 5)).astype(np.float32)
    data[:10, :10, :] = np.nan  # 100 NaN voxels per slice
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp / "nan.nii.gz"))
    return tmp / "nan.nii.gz"


def _tiny_images(tmp: Path) -> Path:
    manifest = _manifest(tmp)
    one = _pair(tmp, "one", size=1)
    forty = _pair(tmp, "forty", size=40)
    with open(manifest, "a", newline="", encoding="utf-8") as handle:
        handle.write(f"t1,{one[0].name},{one[1].name},{SENTENCE}\n")
        handle.write(f"t40,{forty[0].name},{forty[1].name},{SENTENCE}\n")
    return manifest


CASES: dict[str, tuple[Case, int, str]] = {
    # item 1: non-finite values where data enter
    "check: all-NaN NIfTI image": (
        lambda tmp, ckpt, bert: [
            "data",
            "check",
            str(_manifest(tmp, image=_nan_nifti(tmp).name, mask="i0_mask.png")),
        ],
        1,
        r"^sample s0: .*nan\.nii\.gz: 500 of 20480 values are NaN or infinite in 5 of 5 slices \(0, 1, 2, 3, 4\)",
    ),
    "check: NaN float TIFF image": (
        lambda tmp, ckpt, bert: ["data", "check", str(_manifest(tmp, image=_nan_tiff(tmp / "n.tif").name))],
        1,
        r"^sample s0: .*n\.tif: 4096 of 4096 values are NaN or infinite; expected finite",
    ),
    "check: NaN float TIFF mask": (
        lambda tmp, ckpt, bert: [
            "data",
            "check",
            str(_manifest(tmp, mask=_nan_tiff(tmp / "m.tif", nan_rows=slice(0, 1)).name)),
        ],
        1,
        r"^sample s0: .*m\.tif: 64 of 4096 values are NaN or infinite",
    ),
    "train: NaN float TIFF image": (
        lambda tmp, ckpt, bert: [
            "train",
            "--config",
            str(_train_config(tmp, _manifest(tmp, image=_nan_tiff(tmp / "n.tif").name), bert)),
        ],
        2,
        r"^lsms train: error: .*n\.tif: 4096 of 4096 values are NaN or infinite",
    ),
    "eval --workers 1: NaN float TIFF image (raised in a loader worker)": (
        lambda tmp, ckpt, bert: [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(_manifest(tmp, image=_nan_tiff(tmp / "n.tif").name)),
            "--split",
            "all",
            "--workers",
            "1",
            "--no-progress",
            "--out",
            str(tmp / "out"),
        ],
        2,
        r"^lsms eval: error: \S*n\.tif: 4096 of 4096 values are NaN or infinite; expected finite intensities$",
    ),
    "predict: NIfTI with NaN voxels in every slice": (
        lambda tmp, ckpt, bert: predict_argv(
            ckpt, _nan_nifti(tmp), tmp / "out", "--no-progress", text=SENTENCE
        ),
        2,
        r"^lsms predict: error: .*nan\.nii\.gz: 500 of 20480 values are NaN or infinite in 5 of 5 slices",
    ),
    "predict: NaN float TIFF image": (
        lambda tmp, ckpt, bert: predict_argv(
            ckpt, _nan_tiff(tmp / "n.tif", nan_rows=slice(3, 4)), tmp / "out", text=SENTENCE
        ),
        2,
        r"^lsms predict: error: .*n\.tif: 64 of 4096 values are NaN or infinite",
    ),
    "predict: 0xFF bytes in model.safetensors (checksum)": (
        lambda tmp, ckpt, bert: predict_argv(
            _broken_checkpoint(ckpt, tmp, keep_checksum=True), _pair(tmp, "x")[0], tmp / "out", text=SENTENCE
        ),
        2,
        r"^lsms predict: error: .*model\.safetensors: SHA-256 \w+\.\.\. differs from the recorded",
    ),
    "predict: 0xFF bytes in model.safetensors (no checksum recorded)": (
        lambda tmp, ckpt, bert: predict_argv(
            _broken_checkpoint(ckpt, tmp, keep_checksum=False), _pair(tmp, "x")[0], tmp / "out", text=SENTENCE
        ),
        2,
        r"^lsms predict: error: .*model\.safetensors: 1 tensor\(s\) hold NaN or infinite values",
    ),
    # item 5: tracebacks that became one line
    "train: empty sentence in the manifest": (
        lambda tmp, ckpt, bert: [
            "train",
            "--config",
            str(_train_config(tmp, _manifest(tmp, text=" "), bert)),
        ],
        2,
        r"^lsms train: error: sample s0: empty text; expected a referring sentence$",
    ),
    "eval: empty sentence in the manifest": (
        lambda tmp, ckpt, bert: [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(_manifest(tmp, text="")),
            "--split",
            "all",
            "--out",
            str(tmp / "out"),
        ],
        2,
        r"^lsms eval: error: sample s0: empty text; expected a referring sentence$",
    ),
    "check: latin-1 CSV": (
        lambda tmp, ckpt, bert: ["data", "check", str(_manifest(tmp, encoding="latin-1", text="lésion"))],
        2,
        r"^lsms data: error: .*m\.csv line 2: byte 0xe9 is not UTF-8; expected a UTF-8 manifest",
    ),
    "check: latin-1 JSONL": (
        lambda tmp, ckpt, bert: [
            "data",
            "check",
            str(_manifest(tmp, "m.jsonl", encoding="latin-1", text="lésion")),
        ],
        2,
        r"^lsms data: error: .*m\.jsonl line 1: byte 0xe9 is not UTF-8",
    ),
    "train: latin-1 CSV": (
        lambda tmp, ckpt, bert: [
            "train",
            "--config",
            str(_train_config(tmp, _manifest(tmp, encoding="latin-1", text="lésion"), bert)),
        ],
        2,
        r"^lsms train: error: .*m\.csv line 2: byte 0xe9 is not UTF-8",
    ),
    "eval: latin-1 CSV": (
        lambda tmp, ckpt, bert: [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(_manifest(tmp, encoding="latin-1", text="lésion")),
            "--split",
            "all",
        ],
        2,
        r"^lsms eval: error: .*m\.csv line 2: byte 0xe9 is not UTF-8",
    ),
    "predict --manifest: latin-1 CSV": (
        lambda tmp, ckpt, bert: [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--manifest",
            str(_manifest(tmp, encoding="latin-1", text="lésion")),
            "--out",
            str(tmp / "out"),
        ],
        2,
        r"^lsms predict: error: .*m\.csv line 2: byte 0xe9 is not UTF-8",
    ),
    "predict: --text with a non-UTF-8 byte": (
        lambda tmp, ckpt, bert: [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--image",
            str(_pair(tmp, "x")[0]),
            "--text",
            "l\udce9sion",  # how Python passes the command-line byte 0xe9 (surrogateescape)
            "--out",
            str(tmp / "out"),
        ],
        2,
        r"^lsms predict: error: sentence .*: holds bytes that are not UTF-8; expected UTF-8 text$",
    ),
    "eval: --size 32": (
        lambda tmp, ckpt, bert: [
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data",
            str(_manifest(tmp)),
            "--split",
            "all",
            "--size",
            "32",
            "--out",
            str(tmp / "out"),
        ],
        2,
        r"^lsms eval: error: image size 32x32: lsms-nano needs input sides of at least 64 pixels$",
    ),
    "train: data.image_size=32": (
        lambda tmp, ckpt, bert: [
            "train",
            "--config",
            str(_train_config(tmp, _manifest(tmp), bert)),
            "data.image_size=32",
        ],
        2,
        r"^lsms train: error: data\.image_size 32x32: lsms-nano needs input sides of at least 64 pixels$",
    ),
    "train: model.overrides={kernel_sizes: 7}": (
        lambda tmp, ckpt, bert: [
            "train",
            "--config",
            str(_train_config(tmp, _manifest(tmp), bert)),
            "model.overrides={kernel_sizes: 7}",
        ],
        2,
        r"^lsms train: error: model\.overrides for 'lsms-nano': kernel_sizes: expected a list of numbers "
        r"such as \[7, 11, 21\], got 7$",
    ),
    # item 7: images far smaller than the model input are flagged (a warning: exit status 0)
    "check: 1x1 and 40x40 images": (
        lambda tmp, ckpt, bert: ["data", "check", str(_tiny_images(tmp))],
        0,
        r"^warning: sample t40: image forty\.png is 40x40, far smaller than the model input 224x224",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_one_line_and_its_exit_code(
    case: str, tmp_path: Path, checkpoint: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_argv, code, pattern = CASES[case]
    argv = make_argv(tmp_path, checkpoint, tiny_bert_dir)
    capsys.readouterr()
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    if code >= 2:
        errors = [line for line in err.splitlines() if line.startswith("lsms ")]
        assert len(errors) == 1 and "Original Traceback" not in err, err
        assert re.search(pattern, errors[0]), errors[0]
    else:
        assert any(re.search(pattern, line) for line in out.splitlines()), out
    if case == "check: 1x1 and 40x40 images":
        assert "warning: sample t1: image one.png is 1x1" in out and "0 problem(s), 2 warning(s)" in out
