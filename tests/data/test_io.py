from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import tifffile
from nibabel.testing import data_path
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.uid import HTJ2KLossless
from tests.conftest import write_ct_series, write_enhanced_ct

from lsms.data import io
from lsms.data.io import (
    WINDOWS,
    CTWindow,
    load_image,
    load_mask,
    load_volume,
    parse_window,
    save_volume_like,
)
from lsms.errors import DataError

CT_SMALL = get_testdata_file("CT_small.dcm")


def test_windows_and_parsing() -> None:
    assert parse_window("Lung") == WINDOWS["lung"] == CTWindow(-600, 1500)
    assert parse_window("40,400") == CTWindow(40.0, 400.0)
    assert parse_window((60, 400)) == WINDOWS["liver"]
    assert parse_window(None) is None
    np.testing.assert_allclose(
        CTWindow(40, 400).apply(np.array([-160.0, 40.0, 240.0, 1000.0])), [0, 0.5, 1, 1]
    )
    with pytest.raises(DataError, match="expected a preset"):
        parse_window("soft")
    with pytest.raises(DataError, match="width must be > 0"):
        parse_window("40,0")


def test_png_8_and_16_bit_and_rgb(tmp_path: Path) -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_allclose(load_image(tmp_path / "g.png"), gray / 255.0, atol=1e-6)
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    loaded = load_image(tmp_path / "d.png")
    assert loaded.dtype == np.float32 and loaded.shape == (8, 8)
    np.testing.assert_allclose(loaded, deep / 65535.0, atol=1e-6)
    # a window applies to the raw 16-bit values instead of /65535
    np.testing.assert_allclose(load_image(tmp_path / "d.png", window="1000,2000")[0, :3], [0.0, 0.5, 1.0])
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 255  # pure green -> luma 0.587
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_allclose(load_image(tmp_path / "c.png"), 0.587, atol=1e-5)


def test_tiff_16_bit_stack_and_float(tmp_path: Path) -> None:
    stack = np.stack([np.full((6, 5), v, np.uint16) for v in (0, 30000, 65535)])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    assert load_image(tmp_path / "s.tif", slice_index=2).min() == 1.0
    with pytest.raises(DataError, match="a volume of 3 slices; give a slice index"):
        load_image(tmp_path / "s.tif")
    tifffile.imwrite(tmp_path / "f.tiff", np.full((4, 4), 0.25, np.float32))
    assert load_image(tmp_path / "f.tiff").max() == pytest.approx(0.25)
    tifffile.imwrite(tmp_path / "hu.tiff", np.full((4, 4), -1000.0, np.float32))
    with pytest.raises(
        DataError, match=r"float pixels in \[-1000, -1000\]; expected \[0, 1\] or give a window"
    ):
        load_image(tmp_path / "hu.tiff")
    # lung window: level -600, width 1500 -> [-1350, 150]
    assert load_image(tmp_path / "hu.tiff", window="lung").max() == pytest.approx(350 / 1500, abs=1e-6)


def test_masks_binary_rules(tmp_path: Path) -> None:
    mask = np.zeros((6, 6), np.uint8)
    mask[1:3, 2:4] = 7  # {0, v} with v != 255 is fine
    Image.fromarray(mask).save(tmp_path / "m.png")
    loaded = load_mask(tmp_path / "m.png")
    assert loaded.dtype == bool and loaded.sum() == 4
    mask[5, 5] = 9
    Image.fromarray(mask).save(tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"bad.png: mask values \{0, 7, 9\}; expected a binary mask"):
        load_mask(tmp_path / "bad.png")
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    Image.fromarray(colour).save(tmp_path / "red.png")
    with pytest.raises(DataError, match="colour mask with different channels"):
        load_mask(tmp_path / "red.png")


def test_corrupt_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DataError, match=r"broken.png: unreadable image") as error:
        load_image(tmp_path / "broken.png")
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="nothere.png: file not found"):
        load_mask(tmp_path / "nothere.png")
    (tmp_path / "junk.dcm").write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match=r"junk.dcm: unreadable DICOM"):
        load_image(tmp_path / "junk.dcm")


def test_pydicom_ct_small_in_hounsfield_units() -> None:
    dataset = pydicom.dcmread(CT_SMALL)
    hu = dataset.pixel_array.astype(np.float32) * float(dataset.RescaleSlope) + float(
        dataset.RescaleIntercept
    )
    volume = load_volume(CT_SMALL)
    assert volume.kind == "dicom" and volume.array.shape == (1, 128, 128)
    np.testing.assert_array_equal(volume.array[0], hu)
    assert volume.spacing[1:] == pytest.approx((0.661468, 0.661468))
    # RAS affine: DICOM IPP (LPS) with x and y negated
    np.testing.assert_allclose(volume.affine[:3, 3], [158.135803, 179.035797, -75.699997], atol=1e-5)
    image = load_image(CT_SMALL, window="abdomen")
    np.testing.assert_allclose(image, np.clip((hu + 160.0) / 400.0, 0, 1), atol=1e-6)
    unwindowed = load_image(CT_SMALL)
    assert unwindowed.min() == 0.0 and unwindowed.max() == 1.0


def test_dicom_series_sorted_by_position_with_geometry(tmp_path: Path) -> None:
    hu = np.stack([np.full((4, 6), v, np.float32) for v in (-1000, 0, 400)])
    hu[1, 0, 5] = 100  # marker: slice 1, row 0, column 5
    write_ct_series(tmp_path / "series", hu)
    volume = load_volume(tmp_path / "series")
    np.testing.assert_array_equal(volume.array, hu)
    assert volume.spacing == pytest.approx((2.5, 0.5, 0.75))
    # (z=1, h=0, w=5) -> LPS (-10 + 5 * 0.75, -20, 102.5) -> RAS (6.25, 20, 102.5)
    np.testing.assert_allclose(volume.affine @ [1, 0, 5, 1], [6.25, 20.0, 102.5, 1.0])
    assert load_image(tmp_path / "series", window="0,2000", slice_index=2).max() == pytest.approx(0.7)
    mask_path = tmp_path / "seg.nii.gz"
    save_volume_like(volume.array > 50, volume, mask_path)
    # written as (X, Y, Z) = (W, H, Z), as SimpleITK writes the same series
    written = nib.load(mask_path)
    sitk.WriteImage(
        sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path / "series"))),
        str(tmp_path / "itk.nii.gz"),
    )
    itk = nib.load(tmp_path / "itk.nii.gz")
    assert written.shape == itk.shape == (6, 4, 3)
    np.testing.assert_allclose(written.affine, itk.affine, atol=1e-6)
    np.testing.assert_allclose(written.affine @ [5, 0, 1, 1], volume.affine @ [1, 0, 5, 1])
    np.testing.assert_array_equal(np.asarray(written.dataobj), (hu > 50).transpose(2, 1, 0))
    assert int(written.header["qform_code"]) == int(written.header["sform_code"]) == 1  # scanner


def test_nifti_reoriented_to_display_axes(tmp_path: Path) -> None:
    # RAS-stored volume (i: toward the patient's right, j: to the front, k: up), shape (5, 4, 3)
    data = np.zeros((5, 4, 3), np.int16)
    data[4, 3, 2] = 1  # the patient's rightmost, most anterior voxel of the top slice
    image = nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0]))
    nib.save(image, tmp_path / "ras.nii.gz")
    volume = load_volume(tmp_path / "ras.nii.gz")
    assert volume.array.shape == (3, 4, 5)
    assert nib.aff2axcodes(volume.affine) == ("S", "P", "L")
    # top slice (z = 2), first row (anterior), first column (patient right, radiological display)
    assert np.argwhere(volume.array).tolist() == [[2, 0, 0]]
    assert volume.spacing == pytest.approx((4.0, 3.0, 2.0))
    np.testing.assert_allclose(volume.affine @ [2, 0, 0, 1], image.affine @ [4, 3, 2, 1])
    assert load_mask(tmp_path / "ras.nii.gz", slice_index=2).sum() == 1


def test_nibabel_file_round_trip_keeps_geometry(tmp_path: Path) -> None:
    source_path = Path(data_path) / "anatomical.nii"
    source = nib.load(source_path)
    volume = load_volume(source_path)
    assert source.shape == (33, 41, 25) and nib.aff2axcodes(source.affine) == ("L", "A", "S")
    assert volume.array.shape == (25, 41, 33)  # (k, j, i): slices up, rows flipped to go back
    np.testing.assert_array_equal(volume.array, np.asarray(source.dataobj).transpose(2, 1, 0)[:, ::-1, :])
    mask = np.zeros(volume.array.shape, bool)
    mask[3, 10, 20] = True
    out = save_volume_like(mask, volume, tmp_path / "pred.nii.gz")
    written = nib.load(out)
    assert written.shape == source.shape
    np.testing.assert_allclose(written.affine, source.affine)
    for key in ("qform_code", "sform_code", "pixdim", "dim"):
        np.testing.assert_array_equal(written.header[key], source.header[key])
    (voxel,) = np.argwhere(np.asarray(written.dataobj))
    np.testing.assert_allclose(source.affine @ [*voxel, 1], volume.affine @ [3, 10, 20, 1])
    np.testing.assert_array_equal(load_volume(out).array > 0, mask)
    with pytest.raises(DataError, match="does not match the reference"):
        save_volume_like(mask[:1], volume, tmp_path / "bad.nii.gz")


def test_nifti_4d_and_label_volume_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"example4d.nii.gz: NIfTI of shape \(128, 96, 24, 2\); expected a 3D volume"
    ):
        load_volume(Path(data_path) / "example4d.nii.gz")
    labels = np.zeros((4, 4, 2), np.uint8)
    labels[0, 0, 0], labels[1, 1, 1] = 1, 2  # slice 0 alone looks binary, the volume is not
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "labels.nii.gz")
    with pytest.raises(DataError, match=r"mask values \{0, 1, 2\}"):
        load_mask(tmp_path / "labels.nii.gz", slice_index=0)


def test_enhanced_multi_frame_dicom_geometry_comes_from_the_functional_groups(tmp_path: Path) -> None:
    hu = np.random.default_rng(0).integers(-500, 500, (5, 6, 7)).astype(np.float32) * 2
    path = write_enhanced_ct(tmp_path / "enhanced.dcm", hu)  # sagittal, frames 2 mm apart
    volume = load_volume(path)
    np.testing.assert_array_equal(volume.array, hu)  # shared rescale slope/intercept applied
    assert volume.spacing == pytest.approx((2.0, 0.8, 0.6))
    # LPS: frames step along the normal (-1, 0, 0), rows along (0, 0, -1), columns along (0, 1, 0);
    # origin (30, -40, 120). RAS negates x and y.
    expected = np.array([[2.0, 0, 0, -30], [0, 0, -0.6, 40], [0, -0.8, 0, 120], [0, 0, 0, 1]])
    np.testing.assert_allclose(volume.affine, expected, atol=1e-6)
    assert nib.aff2axcodes(volume.affine) == ("R", "I", "P")
    out = save_volume_like(volume.array > 0, volume, tmp_path / "mask.nii.gz")
    written = nib.load(out)
    assert written.shape == (7, 6, 5)
    np.testing.assert_allclose(written.affine, expected[:, [2, 1, 0, 3]], atol=1e-6)


def test_monochrome1_is_shown_dense_bright(tmp_path: Path) -> None:
    dataset = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.save_as(tmp_path / "inverted.dcm")
    np.testing.assert_allclose(
        load_image(tmp_path / "inverted.dcm"), 1.0 - load_image(get_testdata_file("MR_small.dcm")), atol=1e-6
    )


def test_compressed_transfer_syntaxes(tmp_path: Path) -> None:
    reference = load_volume(get_testdata_file("MR_small.dcm")).array
    for name in ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"):
        np.testing.assert_array_equal(load_volume(get_testdata_file(name)).array, reference)
    # a syntax the reader cannot decode (HTJ2K) is one line naming the file and the syntax
    dataset = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    dataset.file_meta.TransferSyntaxUID = HTJ2KLossless
    dataset.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(64)])
    dataset["PixelData"].VR = "OB"
    dataset.save_as(tmp_path / "htj2k.dcm", enforce_file_format=True)
    with pytest.raises(DataError) as error:
        load_volume(tmp_path / "htj2k.dcm")
    assert str(error.value) == (
        f"{tmp_path / 'htj2k.dcm'}: cannot decode DICOM transfer syntax "
        f"High-Throughput JPEG 2000 Image Compression (Lossless Only) ({HTJ2KLossless})"
    )


def test_dicom_series_with_two_slices_at_one_position_is_refused(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "series", np.zeros((2, 4, 4), np.float32), spacing=0.0)
    with pytest.raises(DataError, match="two DICOM slices share one position"):
        load_volume(series)


def test_mask_volume_is_read_and_checked_once_for_all_its_slices(tmp_path: Path, monkeypatch) -> None:
    labels = np.zeros((4, 4, 3), np.uint8)
    labels[1, 1, :] = 1
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "mask.nii.gz")
    reads = []
    monkeypatch.setattr(io, "load_volume", lambda path: reads.append(path) or load_volume(path))
    masks = [load_mask(tmp_path / "mask.nii.gz", slice_index=z) for z in range(3)]
    assert len(reads) == 1 and all(mask.sum() == 1 and mask.flags.writeable for mask in masks)
