"""Read medical images and masks (PNG/JPG/TIFF, DICOM, NIfTI) into one orientation and range.

Conventions (see docs/data.md):

- A 2D image is a float32 array (H, W) in [0, 1]; rows run top to bottom and columns left to right as
  a viewer shows the image. A mask is a bool array (H, W).
- A volume is (Z, H, W) plus a 4x4 ``affine`` that maps the index (z, h, w, 1) to RAS+ millimetres.
  NIfTI volumes are reoriented to the closest of (Z: inferior->superior, H: anterior->posterior,
  W: patient right->left), i.e. axial slices in the radiological display; DICOM series keep their
  stored in-plane order with slices sorted along the slice normal. Masks are written back as NIfTI in
  the input's own (X, Y, Z) axis order, as SimpleITK and dcm2niix write them.
- Every value must be finite: an image, volume or mask holding NaN or infinity is refused with one
  line naming the file (for a volume, also its slices), since it would silently poison the min-max
  scale, the model's output or training. A volume is refused whole, not slice by slice: its
  intensity scale is shared by all its slices.
- CT intensities are Hounsfield units (DICOM rescale slope/intercept applied); a ``CTWindow`` maps
  them to [0, 1]. Without a window, 8-bit images are divided by 255, 16-bit by 65535, and DICOM/NIfTI
  volumes are min-max scaled over the whole volume (so all slices of one volume share one scale).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lsms.errors import DataError

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Axis codes of the (Z, H, W) array for NIfTI input: slices go up, rows go back, columns go to the
# patient's left (radiological display of axial slices).
DISPLAY_AXCODES = ("S", "P", "L")
_RGB_TO_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma


@dataclass(frozen=True)
class CTWindow:
    """A display window: ``level`` (centre) and ``width`` in HU (or raw units for non-CT data)."""

    level: float
    width: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise DataError(f"CT window width must be > 0, got {self.width}")

    def apply(self, values: np.ndarray) -> np.ndarray:
        """Map values to float32 [0, 1]: level - width/2 -> 0, level + width/2 -> 1, clipped."""
        low = self.level - self.width / 2.0
        scaled = (np.asarray(values, dtype=np.float32) - np.float32(low)) / np.float32(self.width)
        return np.clip(scaled, 0.0, 1.0, out=scaled)


WINDOWS: dict[str, CTWindow] = {
    "liver": CTWindow(60, 400),
    "abdomen": CTWindow(40, 400),
    "lung": CTWindow(-600, 1500),
    "bone": CTWindow(400, 1800),
    "mediastinum": CTWindow(50, 350),
    "brain": CTWindow(40, 80),
}


def parse_window(spec: str | CTWindow | tuple[float, float] | None) -> CTWindow | None:
    """``"lung"`` (a preset of WINDOWS), ``"40,400"`` (level,width), a tuple or a CTWindow; None stays None."""
    if spec is None or isinstance(spec, CTWindow):
        return spec
    if isinstance(spec, tuple | list):
        if len(spec) != 2:
            raise DataError(f"window {spec!r}: expected (level, width)")
        return CTWindow(float(spec[0]), float(spec[1]))
    text = str(spec).strip().lower()
    if text in WINDOWS:
        return WINDOWS[text]
    try:
        level, width = (float(part) for part in text.split(","))
    except ValueError:
        presets = ", ".join(WINDOWS)
        raise DataError(
            f"window {spec!r}: expected a preset ({presets}) or 'level,width' such as '40,400'"
        ) from None
    return CTWindow(level, width)


@dataclass
class Volume:
    """A 3D image: ``array`` float32 (Z, H, W) in HU (CT) or raw units; ``affine`` (4, 4) maps
    (z, h, w, 1) to RAS+ mm; ``spacing`` (dz, dh, dw) mm; ``kind`` "nifti" or "dicom"; ``source`` the
    nibabel image or the DICOM files read (a series in slice order); ``orientation`` the nibabel
    orientation transform from the file's axes to (Z, H, W) (NIfTI only), used to write results back."""

    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    kind: str
    path: Path
    source: Any = field(repr=False, default=None)
    orientation: np.ndarray | None = field(repr=False, default=None)


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_dicom(path: Path) -> bool:
    """A folder (a series), a file with a DICOM suffix, or a file with the 'DICM' preamble marker."""
    if path.is_dir():
        return True
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix.lower() in RASTER_SUFFIXES or is_nifti(path):
        return False
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: file not found")


def require_finite(array: np.ndarray, where: object) -> None:
    """DataError naming ``where`` when a float array holds NaN or infinity; (Z, H, W) names the slices."""
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    located = ""
    if array.ndim == 3 and array.shape[0] > 1:
        slices = np.flatnonzero(bad.reshape(array.shape[0], -1).any(axis=1)).tolist()
        shown = ", ".join(map(str, slices[:5])) + (", ..." if len(slices) > 5 else "")
        located = f" in {len(slices)} of {array.shape[0]} slices ({shown})"
    raise DataError(
        f"{where}: {int(bad.sum())} of {array.size} values are NaN or infinite{located}; "
        "expected finite intensities"
    )


# ---------------------------------------------------------------- raster (PNG/JPG/BMP/TIFF) files


def _read_raster(path: Path) -> tuple[np.ndarray, bool]:
    """Raw pixels and whether the last axis is colour: (H, W), (H, W, C) colour, or (Z, H, W) for
    a multi-page TIFF stack (a colour stack keeps its first page)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                array, axes = series.asarray(), series.axes
            if "S" in axes:  # samples per pixel (colour): put them last
                array = np.moveaxis(array, axes.index("S"), -1)
                return (array.reshape((-1,) + array.shape[-3:])[0] if array.ndim > 3 else array), True
            return (array.reshape((-1,) + array.shape[-2:]) if array.ndim > 2 else array), False
        from PIL import Image

        with Image.open(path) as image:
            if image.mode == "P":  # palette: expand to real colours
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            array = np.array(image)
        return array, array.ndim == 3
    except Exception as error:  # any decoder failure is a bad file, reported in one line
        raise DataError(f"{path}: unreadable image ({type(error).__name__}: {error})") from None


def _raster_plane(path: Path, slice_index: int | None) -> tuple[np.ndarray, bool]:
    """One plane of a raster file: (H, W) or (H, W, C) colour, and whether it is colour."""
    raw, color = _read_raster(path)
    if color:
        _select_slice(raw[..., 0], slice_index, path)  # only validates the index
        return raw, True
    return _select_slice(raw, slice_index, path), False


def unit_scale(array: np.ndarray, where: object) -> np.ndarray:
    """Integer/bool/float pixels to float32 [0, 1] without a window, by the dtype's range: the one rule
    for files and in-memory images alike. ``where`` names the source in errors."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind == "f":
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        if low >= 0.0 and high <= 1.0:
            return array.astype(np.float32)
        raise DataError(
            f"{where}: float pixels in [{low:g}, {high:g}]; expected [0, 1] or give a window "
            "(values outside [0, 1], such as HU, need a window)"
        )
    raise DataError(f"{where}: {array.dtype} pixels have no fixed range; give a window such as '40,400'")


def _to_gray(array: np.ndarray) -> np.ndarray:
    """(..., H, W, C) colour -> (..., H, W) luma; alpha is dropped; (H, W) passes through."""
    if array.ndim >= 3 and array.shape[-1] in (2, 3, 4):
        if array.shape[-1] == 2:  # gray + alpha
            return array[..., 0]
        return array[..., :3].astype(np.float32) @ _RGB_TO_GRAY
    return array


def _select_slice(array: np.ndarray, slice_index: int | None, path: Path) -> np.ndarray:
    """(Z, H, W) -> (H, W) at ``slice_index``; a single slice needs no index."""
    if array.ndim == 2:
        if slice_index not in (None, 0):
            raise DataError(f"{path}: slice {slice_index} requested but the file is a 2D image")
        return array
    if slice_index is None:
        if array.shape[0] == 1:
            return array[0]
        raise DataError(f"{path}: a volume of {array.shape[0]} slices; give a slice index")
    if not 0 <= slice_index < array.shape[0]:
        raise DataError(f"{path}: slice {slice_index} out of range (the volume has {array.shape[0]} slices)")
    return array[slice_index]


# ---------------------------------------------------------------- DICOM
# Read through SimpleITK (ITK's GDCM reader): it sorts a series along the slice normal, takes the
# geometry of enhanced multi-frame files from their functional groups and decodes the JPEG, JPEG-LS,
# JPEG 2000 and RLE transfer syntaxes itself (docs/data.md says why this reader).

_POSITION_TAG = "0020|0032"


def _undecodable(path: Path, file: str, error: Exception) -> DataError:
    """One line naming ``path`` and, when ``file`` (the one read, or a series' first) is compressed,
    its transfer syntax."""
    import pydicom

    try:
        syntax = pydicom.dcmread(file, stop_before_pixels=True).file_meta.TransferSyntaxUID
    except Exception:  # not even a DICOM header: the reason below says what SimpleITK saw
        syntax = None
    if syntax is not None and syntax.is_compressed:
        return DataError(f"{path}: cannot decode DICOM transfer syntax {syntax.name} ({syntax})")
    reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
    return DataError(f"{path}: unreadable DICOM ({reason})")


def _execute(reader: Any, path: Path, file: str) -> Any:
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise _undecodable(path, file, error) from None


def _read_dicom_image(path: Path) -> tuple[Any, tuple[str, ...]]:
    """The SimpleITK image of a file or a one-series folder, and its files (a series in slice order)."""
    import SimpleITK as sitk

    files: tuple[str, ...] = (str(path),)
    if path.is_dir():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if not series:
            raise DataError(f"{path}: no DICOM image files in the folder")
        if len(series) > 1:
            raise DataError(f"{path}: holds {len(series)} DICOM series; expected one series per folder")
        files = tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
    if len(files) == 1:
        reader = sitk.ImageFileReader()
        reader.SetFileName(files[0])
        return _execute(reader, path, files[0]), files
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = _execute(reader, path, files[0])
    # ITK stacks slices that share a position without complaint; the volume would be wrong
    positions = [
        reader.GetMetaData(i, _POSITION_TAG)
        for i in range(len(files))
        if reader.HasMetaDataKey(i, _POSITION_TAG)
    ]
    if len(set(positions)) != len(positions):
        raise DataError(f"{path}: two DICOM slices share one position; expected one slice per position")
    return image, files


def _sitk_affine(image: Any) -> np.ndarray:
    """4x4 affine from the (z, h, w) index of ``GetArrayFromImage`` to RAS+ mm."""
    direction = np.reshape(image.GetDirection(), (3, 3))  # columns: the x (w), y (h), z axes in LPS
    lps = np.eye(4)
    lps[:3, :3] = (direction * np.asarray(image.GetSpacing()))[:, ::-1]
    lps[:3, 3] = image.GetOrigin()
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM LPS -> RAS


def _load_dicom_volume(path: Path) -> Volume:
    import SimpleITK as sitk

    image, files = _read_dicom_image(path)
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    # (Z, H, W), or (Z, H, W, C) for colour; MONOCHROME1 comes inverted to MONOCHROME2 (dense is bright)
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = _to_gray(array)
    affine = _sitk_affine(image)
    return Volume(
        array=np.ascontiguousarray(array, dtype=np.float32),
        affine=affine,
        spacing=_spacing(affine),
        kind="dicom",
        path=path,
        source=files,
    )


# ---------------------------------------------------------------- NIfTI


def _load_nifti_volume(path: Path) -> Volume:
    import nibabel as nib
    from nibabel import orientations

    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as error:
        raise DataError(f"{path}: unreadable NIfTI ({type(error).__name__}: {error})") from None
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: NIfTI of shape {data.shape}; expected a 3D volume")
    transform = orientations.ornt_transform(
        orientations.io_orientation(image.affine), orientations.axcodes2ornt(DISPLAY_AXCODES)
    )
    array = orientations.apply_orientation(data, transform)
    affine = image.affine @ orientations.inv_ornt_aff(transform, data.shape)
    return Volume(
        array=np.ascontiguousarray(array, dtype=np.float32),
        affine=affine,
        spacing=_spacing(affine),
        kind="nifti",
        path=path,
        source=image,
        orientation=transform,
    )


def _spacing(affine: np.ndarray) -> tuple[float, float, float]:
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    return (float(norms[0]), float(norms[1]), float(norms[2]))


# ---------------------------------------------------------------- public API


def load_volume(path: str | os.PathLike) -> Volume:
    """A NIfTI file (.nii/.nii.gz), a DICOM file or a DICOM series folder as a ``Volume`` (Z, H, W)."""
    path = Path(path)
    _require_file(path)
    if is_nifti(path):
        volume = _load_nifti_volume(path)
    elif is_dicom(path):
        volume = _load_dicom_volume(path)
    else:
        raise DataError(
            f"{path}: not a volume; expected .nii, .nii.gz, a DICOM file or a DICOM series folder"
        )
    require_finite(volume.array, path)
    return volume


@functools.lru_cache(maxsize=2)
def _cached_volume(path: str, mtime_ns: int) -> Volume:
    """Volumes read for one slice at a time (manifest rows with ``slice``): keep the last two."""
    volume = load_volume(path)
    volume.array.setflags(write=False)
    return volume


def _volume_for_slices(path: Path) -> Volume:
    return _cached_volume(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _cached_mask(path: str, mtime_ns: int) -> np.ndarray:
    """A mask volume as read-only bool (Z, H, W), checked to be binary once, not once per slice row;
    kept apart from the image cache, so a manifest alternating images and masks reads each once."""
    mask = _binarize(load_volume(path).array, Path(path))
    mask.setflags(write=False)
    return mask


def window_volume(volume: Volume, values: np.ndarray, window: CTWindow | None) -> np.ndarray:
    """Slices ``values`` of ``volume`` in [0, 1]: through ``window``, else min-max over the whole volume
    (so every slice is scaled alike). MONOCHROME1 files arrive inverted to MONOCHROME2 by the reader."""
    if window is not None:
        return window.apply(values)
    low, high = float(volume.array.min()), float(volume.array.max())
    return (values.astype(np.float32) - low) / np.float32(high - low if high > low else 1.0)


def load_image(
    path: str | os.PathLike,
    window: str | CTWindow | tuple[float, float] | None = None,
    slice_index: int | None = None,
) -> np.ndarray:
    """An image as float32 (H, W) in [0, 1]; colour is converted to gray.

    Rasters: 8-bit / 255, 16-bit / 65535, or the raw values through ``window`` when one is given.
    DICOM/NIfTI: HU (or raw units) through ``window``; without one, min-max over the whole volume.
    ``slice_index`` picks a slice of a volume (required when it has more than one slice).
    """
    path = Path(path)
    _require_file(path)
    window = parse_window(window)
    if is_nifti(path) or is_dicom(path):
        volume = _volume_for_slices(path)
        return window_volume(volume, _select_slice(volume.array, slice_index, path), window)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        raise DataError(f"{path}: unknown image type; expected PNG, JPG, BMP, TIFF, DICOM or NIfTI")
    pixels, _ = _raster_plane(path, slice_index)
    require_finite(pixels, path)
    if window is not None:
        return window.apply(_to_gray(pixels))
    # scale by the integer range first so the luma weights see [0, 1] values
    return _to_gray(unit_scale(pixels, path)).astype(np.float32)


def _binarize(values: np.ndarray, where: Path) -> np.ndarray:
    """{0, v} -> bool (v is foreground); anything else is not a binary mask."""
    require_finite(values, where)
    unique = np.unique(values)
    if unique.size > 2 or (unique.size == 2 and unique[0] != 0) or (unique.size == 1 and unique[0] < 0):
        shown = ", ".join(f"{v:g}" for v in unique[:6].tolist()) + (", ..." if unique.size > 6 else "")
        raise DataError(f"{where}: mask values {{{shown}}}; expected a binary mask (0 and one other value)")
    return values > 0


def load_mask(path: str | os.PathLike, slice_index: int | None = None) -> np.ndarray:
    """A binary mask as bool (H, W). Values must be {0, v} (v > 0 is foreground) over the whole file;
    colour masks must have equal colour channels."""
    path = Path(path)
    _require_file(path)
    if is_nifti(path) or is_dicom(path):
        mask = _cached_mask(str(path.resolve()), path.stat().st_mtime_ns)
        return _select_slice(mask, slice_index, path).copy()  # the cached volume stays read-only
    if path.suffix.lower() not in RASTER_SUFFIXES:
        raise DataError(f"{path}: unknown mask type; expected PNG, BMP, TIFF, DICOM or NIfTI")
    pixels, color = _raster_plane(path, slice_index)
    if color:
        channels = pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1]
        if not (channels == channels[..., :1]).all():
            raise DataError(f"{path}: colour mask with different channels; expected a gray binary mask")
        pixels = channels[..., 0]
    return _binarize(pixels, path)


def save_volume_like(mask_zhw: np.ndarray, reference: Volume, path: str | os.PathLike) -> Path:
    """Write a (Z, H, W) mask (uint8 0/1) as NIfTI with exactly the reference's geometry.

    For a NIfTI reference the array is put back into the file's own axis order and written with its
    header (affine, qform/sform codes, pixel dimensions). For a DICOM reference it is written as
    (X, Y, Z) = (columns, rows, slices) with the matching RAS affine (scanner qform/sform): the array and
    affine SimpleITK writes for the series, and dcm2niix's axis order, so it lines up with the user's NIfTI.
    """
    import nibabel as nib
    from nibabel import orientations

    path = Path(path)
    mask = np.asarray(mask_zhw)
    if mask.shape != reference.array.shape:
        raise DataError(
            f"{path}: mask shape {mask.shape} does not match the reference {reference.array.shape}"
        )
    if not is_nifti(path):
        raise DataError(f"{path}: masks are written as NIfTI; expected a .nii or .nii.gz path")
    data = (mask > 0).astype(np.uint8)
    if reference.kind == "nifti":
        source = reference.source
        back = orientations.ornt_transform(
            orientations.axcodes2ornt(DISPLAY_AXCODES), orientations.io_orientation(source.affine)
        )
        data = orientations.apply_orientation(data, back).reshape(source.shape)
        header = source.header.copy()
        header.set_data_dtype(np.uint8)
        image = type(source)(data, source.affine, header=header)
        image.header.set_slope_inter(1.0, 0.0)
        image.set_qform(source.get_qform(), code=int(source.header["qform_code"]))
        image.set_sform(source.get_sform(), code=int(source.header["sform_code"]))
    else:
        affine = reference.affine[:, [2, 1, 0, 3]]  # index (w, h, z) = (x, y, z)
        image = nib.Nifti1Image(data.transpose(2, 1, 0), affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path
