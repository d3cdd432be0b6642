"""Fixtures of the inference tests: tiny checkpoints (nano LSMS + 1-layer random BERT), images, volumes."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from inference_helpers import gray_image
from PIL import Image
from tests.conftest import write_ct_series

import lsms

PREPROCESS = {"image_size": [64, 64], "window": None}


def _save_nano(folder: Path, **overrides) -> Path:
    torch.manual_seed(0)
    # No zero-initialised branches: the language branch must change the output from the start.
    model = lsms.create_model("lsms-nano", zero_init_branches=False, **overrides)
    # Random BatchNorm statistics, so that an untrained model gives input-dependent outputs.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(folder, preprocess=PREPROCESS)
    return folder


@pytest.fixture(scope="session")
def checkpoint(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained lsms-nano text model saved with preprocess image_size 64x64, no window."""
    return _save_nano(tmp_path_factory.mktemp("ckpt_text"), text_encoder=str(tiny_bert_dir))


@pytest.fixture(scope="session")
def text_free_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained text-free lsms-nano."""
    return _save_nano(tmp_path_factory.mktemp("ckpt_free"), use_text=False)


@pytest.fixture
def png_image(tmp_path: Path) -> Path:
    """A 70x90 8-bit gray PNG (not the model's 64x64, to exercise resizing both ways)."""
    path = tmp_path / "inputs" / "scan.png"
    path.parent.mkdir()
    Image.fromarray(gray_image(70, 90)).save(path)
    return path


@pytest.fixture
def nifti_volume(tmp_path: Path) -> Path:
    """A (W=80, H=72, Z=5) int16 HU NIfTI in LPS-like orientation with anisotropic spacing."""
    rng = np.random.default_rng(1)
    data = (rng.normal(0, 300, (80, 72, 5)) + np.linspace(-500, 500, 80)[:, None, None]).astype(np.int16)
    affine = np.diag([-0.7, -0.8, 2.5, 1.0])
    affine[:3, 3] = [40.0, -12.0, 100.0]
    path = tmp_path / "inputs" / "ct.nii.gz"
    path.parent.mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


@pytest.fixture
def dicom_series(tmp_path: Path) -> Path:
    """A folder of 4 CT slices (66x68) written in reverse order, 3 mm apart."""
    hu = np.random.default_rng(2).integers(-1024, 976, (4, 66, 68)).astype(np.float32)
    return write_ct_series(
        tmp_path / "inputs" / "series",
        hu,
        spacing=3.0,
        pixel_spacing=(0.6, 0.65),
        origin=(-20.0, -30.0, 10.0),
        slope=1.0,
    )
