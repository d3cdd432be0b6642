"""A small labelled CT for the ``lsms data describe`` tests and the worked example of docs/data.md.

The volume is (Z, H, W) = (6, 80, 96) in the display orientation of ``lsms.data.io``: w runs to the
patient's left, h to posterior, z upwards; 1.25 mm pixels, 4 mm slices. The liver is an ellipse on
every slice (100 HU, noise 6 HU); lesions are elliptic cylinders over a few slices, so their true
in-plane diameter is ``2 * max(semi-axes) * 1.25`` mm on every slice they cross.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from tests.conftest import write_ct_series

SHAPE = (6, 80, 96)
PIXEL_MM, SLICE_MM = 1.25, 4.0
LIVER = {"centre": (40.0, 48.0), "semi_axes": (34.0, 45.0), "hu": 100.0}


@dataclass(frozen=True)
class LesionSpec:
    """A lesion: centre (h, w) px, semi-axes (along h, along w) px, slices z_first..z_last, HU, blur
    (edge blended over about 2 * blur px; 0 is a step edge), extra discs (h, w, radius) px unioned
    with the ellipse (lobulated outlines)."""

    centre: tuple[float, float]
    semi_axes: tuple[float, float]
    slices: tuple[int, int]
    hu: float
    blur: float = 0.0
    lobes: tuple[tuple[float, float, float], ...] = ()

    @property
    def diameter_mm(self) -> float:
        if self.lobes:  # farthest pair of disc edges (the ellipse is a disc inside the lobes here)
            discs = [(*self.centre, self.semi_axes[0]), *self.lobes]
            return PIXEL_MM * max(
                np.hypot(a[0] - b[0], a[1] - b[1]) + a[2] + b[2] for a in discs for b in discs
            )
        return 2 * max(self.semi_axes) * PIXEL_MM


# Two alike tumours on the lower slices (only position separates them: "the more right-sided"), a
# hyperdense oval one with a blurred edge and a lobulated one on the upper slices.
LESIONS = (
    LesionSpec(centre=(22.0, 14.0), semi_axes=(6.0, 6.0), slices=(0, 2), hu=40.0),
    LesionSpec(centre=(22.0, 32.0), semi_axes=(6.0, 6.0), slices=(0, 2), hu=40.0),
    LesionSpec(centre=(56.0, 68.0), semi_axes=(6.0, 11.0), slices=(3, 5), hu=170.0, blur=3.0),
    LesionSpec(
        centre=(24.0, 70.0),
        semi_axes=(6.0, 6.0),
        slices=(3, 4),
        hu=45.0,
        lobes=((24.0, 81.0, 5.0), (34.0, 75.0, 5.0)),
    ),
)


def _distance_inside(spec: LesionSpec, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Approximate signed distance (px) to the outline, positive inside."""
    (ch, cw), (ah, aw) = spec.centre, spec.semi_axes
    inside = (1.0 - np.hypot((h - ch) / ah, (w - cw) / aw)) * min(ah, aw)
    for lh, lw, radius in spec.lobes:
        inside = np.maximum(inside, radius - np.hypot(h - lh, w - lw))
    return inside


def make_volume(
    lesions: tuple[LesionSpec, ...] = LESIONS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(HU float32 (Z, H, W), liver bool (Z, H, W), one bool (Z, H, W) mask per lesion)."""
    h, w = np.mgrid[0 : SHAPE[1], 0 : SHAPE[2]].astype(np.float64)
    (ch, cw), (ah, aw) = LIVER["centre"], LIVER["semi_axes"]
    liver_plane = np.hypot((h - ch) / ah, (w - cw) / aw) <= 1.0
    hu = np.where(liver_plane, LIVER["hu"], -50.0)[None].repeat(SHAPE[0], axis=0)
    masks = []
    for spec in lesions:
        inside = _distance_inside(spec, h, w)
        weight = np.clip(0.5 + inside / (2 * spec.blur), 0, 1) if spec.blur else (inside >= 0).astype(float)
        mask = np.zeros(SHAPE, dtype=bool)
        for z in range(spec.slices[0], spec.slices[1] + 1):
            hu[z] += weight * (spec.hu - hu[z])
            mask[z] = inside >= 0
        masks.append(mask)
    hu += np.random.default_rng(seed).normal(0.0, 6.0, SHAPE)
    return hu.astype(np.float32), np.broadcast_to(liver_plane, SHAPE).copy(), masks


def display_affine(flip_lr: bool = False) -> np.ndarray:
    """RAS affine of an (X, Y, Z) = (w, h, z) array: x to the patient's left (or right with ``flip_lr``)."""
    affine = np.diag([PIXEL_MM if flip_lr else -PIXEL_MM, -PIXEL_MM, SLICE_MM, 1.0])
    affine[:3, 3] = [-60.0 if flip_lr else 60.0, 50.0, -10.0]
    return affine


def save_nifti(volume_zhw: np.ndarray, path: Path, flip_lr: bool = False) -> Path:
    """Write a (Z, H, W) array as (X, Y, Z) NIfTI with ``display_affine``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.int16 if volume_zhw.dtype.kind in "fi" and volume_zhw.dtype != np.bool_ else np.uint8
    data = np.rint(volume_zhw).astype(dtype) if volume_zhw.dtype.kind == "f" else volume_zhw.astype(dtype)
    nib.save(
        nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), display_affine(flip_lr)), str(path)
    )
    return path


def save_series(volume_zhw: np.ndarray, folder: Path) -> Path:
    """Write a (Z, H, W) array as a DICOM series on the grid of ``save_nifti`` (no flip)."""
    affine = display_affine()
    origin = (-affine[0, 3], -affine[1, 3], affine[2, 3])  # RAS -> DICOM LPS
    return write_ct_series(
        folder,
        volume_zhw.astype(np.float64),
        spacing=SLICE_MM,
        pixel_spacing=(PIXEL_MM, PIXEL_MM),
        origin=origin,
        slope=1.0,
    )


def write_forms(root: Path, lesions: tuple[LesionSpec, ...] = LESIONS) -> dict[str, Path]:
    """The same case in every input form: ct.nii.gz (and series/ct, the same CT as DICOM), labels.nii.gz
    (1 liver, 2 tumour), instances.nii.gz with liver.nii.gz, and masks/ (one DICOM series per
    structure: liver, livertumor01, ..., portalvein)."""
    hu, liver, masks = make_volume(lesions)
    labels = liver.astype(np.uint8)
    instances = np.zeros(SHAPE, np.uint8)
    for number, mask in enumerate(masks, start=1):
        labels[mask] = 2
        instances[mask] = 10 * number  # instance values need not be 1..n
    paths = {
        "ct": save_nifti(hu, root / "ct.nii.gz"),
        "ct_series": save_series(np.rint(hu), root / "series" / "ct"),  # the same CT as DICOM
        "labels": save_nifti(labels, root / "labels.nii.gz"),
        "instances": save_nifti(instances, root / "instances.nii.gz"),
        "liver": save_nifti(liver, root / "liver.nii.gz"),
        "masks": root / "masks",
    }
    save_series(liver.astype(np.uint8), root / "masks" / "liver")
    for number, mask in enumerate(masks, start=1):
        save_series(mask.astype(np.uint8), root / "masks" / f"livertumor{number:02d}")
    save_series(np.zeros(SHAPE, np.uint8), root / "masks" / "portalvein")  # another structure: ignored
    return paths
