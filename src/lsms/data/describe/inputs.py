"""Read a CT and its labels in the forms public data sets use, into one ``LabelledCase``.

Forms of ``labels`` (all on the CT's voxel grid; read with ``lsms.data.io.load_volume``, so every
array below is (Z, H, W) in that module's orientation):

- **label map** (LiTS, MSD Liver, KiTS): one integer volume with an organ label and lesion labels
  (default: organ 1 = liver, lesion 2 = tumor); each lesion label is split into 3D connected
  components (26-connectivity), one lesion each.
- **instance map**: every non-zero value is one lesion (kept whole, even when in pieces); the organ
  comes from a separate mask (``organ_mask``) or, failing that, from the segment map.
- **folder of masks** (3D-IRCADb's MASKS_DICOM): one NIfTI file or DICOM series folder per
  structure, named after it. The organ is the entry named like the organ (``liver``); lesions are the
  entries whose name holds a lesion word (``livertumor01``, ``liverkyst``, ``livercyst``...: see
  ``LESION_WORDS``), split into 3D connected components; other structures are ignored (and listed).

Lesions are numbered 1, 2, ... in the raster order (z, h, w) of their first voxel, whatever the form,
so the same lesions give the same numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from lsms.data.io import NIFTI_SUFFIXES, Volume, is_dicom, is_nifti, load_volume
from lsms.errors import DataError

# Words that make a mask name a lesion, and the noun the expressions use (None: "lesion").
LESION_WORDS: dict[str, str | None] = {
    "tumor": "tumor",
    "tumour": "tumor",
    "cyst": "cyst",
    "kyst": "cyst",  # 3D-IRCADb's spelling
    "metastasis": "metastasis",
    "metastases": "metastasis",
    "hemangioma": "hemangioma",
    "angioma": "hemangioma",
    "abscess": "abscess",
    "nodule": "nodule",
    "lesion": None,
}
_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
_AFFINE_TOLERANCE_MM = 0.01


@dataclass
class LesionMask:
    """One lesion: ``box`` the (z, h, w) slices of its bounding box in the volume, ``mask`` bool of the
    box's shape, ``kind`` the noun of its type (None when the input does not name it), ``source``
    where it came from (for messages)."""

    box: tuple[slice, slice, slice]
    mask: np.ndarray
    kind: str | None
    source: str

    def first_voxel(self) -> tuple[int, int, int]:
        """(z, h, w) of the first voxel in raster order: the lesion's sort key."""
        z, h, w = np.unravel_index(int(np.argmax(self.mask)), self.mask.shape)
        return (self.box[0].start + int(z), self.box[1].start + int(h), self.box[2].start + int(w))

    def crop(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """The lesion's mask on another ``box`` of the volume: bool of that box's shape."""
        out = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
        source, target = [], []
        for own, other in zip(self.box, box, strict=True):
            low, high = max(own.start, other.start), min(own.stop, other.stop)
            if low >= high:
                return out
            source.append(slice(low - own.start, high - own.start))
            target.append(slice(low - other.start, high - other.start))
        out[tuple(target)] = self.mask[tuple(source)]
        return out


@dataclass
class LabelledCase:
    """A CT (``ct.array`` HU (Z, H, W), ``ct.affine`` to RAS+ mm), the organ mask bool (Z, H, W), its
    lesions in canonical order, an optional Couinaud segment map (Z, H, W) int (1-8, 0 outside), the
    organ's name, and notes on what was ignored."""

    case_id: str
    ct: Volume
    organ: np.ndarray
    organ_name: str
    lesions: list[LesionMask]
    segments: np.ndarray | None = None
    ignored: list[str] = field(default_factory=list)


def parse_organ(spec: str | None) -> tuple[str, int | None]:
    """``"liver"``, ``"1"`` or ``"kidney=1"`` -> (name, label or None). Default: liver, label 1."""
    if spec is None or not str(spec).strip():
        return "liver", 1
    text = str(spec).strip().lower()
    name, _, label = text.partition("=") if "=" in text else ("", "", text)
    if label.isdigit():
        return name or "liver", int(label)
    if not name and re.fullmatch(r"[a-z][a-z _-]*", text):
        return text, None
    raise DataError(f"--organ {spec!r}: expected a name (liver), a label (1) or name=label (kidney=1)")


def parse_lesion_labels(specs: list[str] | None) -> dict[int, str | None]:
    """``["2=tumor", "3=cyst"]`` -> {2: "tumor", 3: "cyst"}; a bare ``"2"`` has no type.
    Default (LiTS, MSD Liver): {2: "tumor"}."""
    if not specs:
        return {2: "tumor"}
    labels: dict[int, str | None] = {}
    for spec in specs:
        value, _, kind = str(spec).partition("=")
        if not value.strip().isdigit():
            raise DataError(f"--lesion {spec!r}: expected label=type such as 2=tumor, or a label")
        labels[int(value)] = lesion_kind(kind) if kind.strip() else None
    return labels


def lesion_kind(word: str) -> str | None:
    """The noun for a type word: a known word (``kyst`` -> cyst), else the word itself in lower case."""
    word = word.strip().lower()
    return LESION_WORDS.get(word, word) if word else None


def kind_from_name(name: str) -> tuple[bool, str | None]:
    """Whether a structure name (``livertumor01``) is a lesion, and its noun (tumor)."""
    letters = re.sub(r"[^a-z]", "", name.lower())
    for word, noun in LESION_WORDS.items():
        if word in letters:
            return True, noun
    return False, None


def structure_name(path: Path) -> str:
    """A mask's structure name: its file or folder name without NIfTI suffix, in lower case."""
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES[::-1]:  # .nii.gz before .nii
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_series_folder(path: Path) -> bool:
    """A folder that holds DICOM files itself (a series), not a folder of masks or cases."""
    if not path.is_dir():
        return False
    return any(
        p.is_file() and not p.name.startswith(".") and not is_nifti(p) and is_dicom(p) for p in path.iterdir()
    )


def _check_grid(ct: Volume, other: Volume) -> None:
    if other.array.shape != ct.array.shape:
        raise DataError(
            f"{other.path}: shape {other.array.shape} differs from the CT {ct.path.name} "
            f"{ct.array.shape}; expected masks on the CT's voxel grid"
        )
    gap = float(np.abs(other.affine - ct.affine).max())
    if gap > _AFFINE_TOLERANCE_MM:
        raise DataError(
            f"{other.path}: geometry (affine) differs from the CT {ct.path.name} by {gap:.3g} mm; "
            "expected masks on the CT's voxel grid"
        )


def _load_on_grid(path: Path, ct: Volume) -> np.ndarray:
    """A label/mask volume on the CT's grid as int32 (Z, H, W)."""
    volume = load_volume(path)
    _check_grid(ct, volume)
    values = np.rint(volume.array)
    if np.abs(values - volume.array).max(initial=0.0) > 1e-3:
        raise DataError(f"{path}: non-integer values; expected a label map or mask")
    return values.astype(np.int32)


def _components(mask: np.ndarray, kind: str | None, source: str) -> list[LesionMask]:
    labelled, count = ndimage.label(mask, structure=_FULL_CONNECTIVITY)
    boxes = ndimage.find_objects(labelled)
    return [
        LesionMask(
            box, labelled[box] == number, kind, f"{source} component {number}" if count > 1 else source
        )
        for number, box in enumerate(boxes, start=1)
    ]


def _instances(labels: np.ndarray, kind: str | None, source: str) -> list[LesionMask]:
    boxes = ndimage.find_objects(labels.clip(min=0))
    return [
        LesionMask(box, labels[box] == value, kind, f"{source} instance {value}")
        for value, box in enumerate(boxes, start=1)
        if box is not None
    ]


def load_case(
    image: str | Path,
    labels: str | Path,
    *,
    case_id: str | None = None,
    organ: str | None = None,
    lesion_labels: list[str] | None = None,
    instances: bool = False,
    organ_mask: str | Path | None = None,
    lesion_type: str | None = None,
    segments: str | Path | None = None,
) -> LabelledCase:
    """Read one case. ``labels`` is a folder of masks when it is a folder but not a DICOM series;
    else a label map, or an instance map with ``instances=True`` (organ from ``organ_mask`` or
    ``segments``). Raises DataError (one line) on a grid mismatch, no organ or no lesion."""
    image, labels = Path(image), Path(labels)
    ct = load_volume(image)
    name, organ_label = parse_organ(organ)
    ignored: list[str] = []
    segment_map = _load_on_grid(Path(segments), ct) if segments is not None else None
    if segment_map is not None and (segment_map.min() < 0 or segment_map.max() > 8):
        raise DataError(f"{segments}: segment labels outside 0-8; expected Couinaud segments 1-8")
    if labels.is_dir() and not is_series_folder(labels):
        organ_volume, lesions, ignored = _read_mask_folder(labels, ct, name)
    elif instances:
        values = _load_on_grid(labels, ct)
        lesions = _instances(values, lesion_kind(lesion_type or ""), labels.name)
        if organ_mask is not None:
            organ_volume = _load_on_grid(Path(organ_mask), ct) > 0
        elif segment_map is not None:
            organ_volume = segment_map > 0
        else:
            raise DataError(f"{labels}: an instance map needs the organ: give --organ-mask (or --segments)")
    else:
        if organ_label is None:
            raise DataError(f"--organ {organ!r}: a label map needs the organ's label, e.g. 1 or {name}=1")
        values = _load_on_grid(labels, ct)
        organ_volume = values == organ_label
        lesions = []
        for value, kind in parse_lesion_labels(lesion_labels).items():
            lesions += _components(values == value, kind, f"{labels.name} label {value}")
        present = sorted(int(v) for v in np.unique(values) if v)
        if not lesions:
            raise DataError(
                f"{labels}: no lesion voxels (labels present: {present or 'none'}); expected lesion "
                f"label(s) {', '.join(str(v) for v in parse_lesion_labels(lesion_labels))}"
            )
    if not organ_volume.any():
        raise DataError(f"{labels}: the organ ({name}) has no voxels; expected an organ mask or label")
    if not lesions:
        raise DataError(f"{labels}: no lesion voxels; expected at least one lesion")
    lesions.sort(key=LesionMask.first_voxel)
    return LabelledCase(
        case_id=case_id or structure_name(image),
        ct=ct,
        organ=organ_volume,
        organ_name=name,
        lesions=lesions,
        segments=segment_map,
        ignored=ignored,
    )


def _read_mask_folder(folder: Path, ct: Volume, organ: str) -> tuple[np.ndarray, list[LesionMask], list[str]]:
    """(organ mask, lesions, names of ignored structures) of a folder of per-structure masks."""
    entries = sorted(
        p for p in folder.iterdir() if not p.name.startswith(".") and (p.is_dir() or is_nifti(p))
    )
    organ_volume: np.ndarray | None = None
    lesions: list[LesionMask] = []
    ignored: list[str] = []
    for entry in entries:
        name = structure_name(entry)
        is_lesion, kind = kind_from_name(name)
        if name == organ:
            organ_volume = _load_on_grid(entry, ct) > 0
        elif is_lesion:
            lesions += _components(_load_on_grid(entry, ct) > 0, kind, entry.name)
        else:
            ignored.append(entry.name)
    if organ_volume is None:
        names = ", ".join(structure_name(e) for e in entries) or "nothing"
        raise DataError(f"{folder}: no mask named {organ!r} (found {names}); name the organ with --organ")
    return organ_volume, lesions, ignored
