"""Generate the synthetic referring benchmark: volumes, windowed PNG slices, masks and a manifest.

Layout of ``out_dir``::

    manifest.csv                 one row per lesion per slice: id,image,mask,text,text_half,
                                 text_quarter,case_id,split (paths relative to the manifest)
    lesions.csv                  the same rows' ground truth (type, segment, diameter, ..., centre
                                 cx_mm/cy_mm): enough to rebuild every lesion's LesionFacts
    synth.json                   generator parameters
    images/<case>_z<k>.png       8-bit slice, abdomen window (level 60, width 400), size x size
    masks/<case>_z<k>_l<j>.png   0/255 mask of lesion j on slice k
    volumes/<case>_ct.nii.gz     int16 HU, (X, Y, Z) with an LPS-oriented affine (radiological
                                 display: array column = image column), spacing 0.8 x 0.8 x 5 mm
    volumes/<case>_lesions.nii.gz  uint8 lesion instance ids (the j of the masks)
    volumes/<case>_liver.nii.gz  uint8 Couinaud segment labels (1-8 = I-VIII, 0 outside the liver)

Every lesion visible on a slice gets one row, so the referred lesion is uniform among the slice's
lesions (a text-free model cannot do better than the floor reported by ``lsms data stats``). Each
case (patient) draws from ``numpy.random.default_rng([seed, case_index])``: the same seed gives
byte-identical files, and a case does not depend on how many others are generated.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image
from scipy import ndimage

from lsms.atomic import atomic_write_text
from lsms.data.io import CTWindow
from lsms.data.manifest import write_manifest
from lsms.data.synth.expressions import (
    EXPRESSION_SIZES,
    Expression,
    LesionFacts,
    identifies,
    make_expression,
)
from lsms.data.synth.lesions import Lesion, sample_lesion
from lsms.data.synth.phantom import (
    FOV_MM,
    LEVEL_SEGMENTS,
    SEGMENTS,
    SLICE_THICKNESS_MM,
    Anatomy,
    lobe_of,
    pixel_grid,
    sample_anatomy,
)
from lsms.errors import ConfigError

WINDOW = (60.0, 400.0)  # abdomen window: level, width (HU)
SPLIT_FRACTIONS = (("train", 0.7), ("val", 0.1), ("test", 0.2))
_PLACEMENT_GRID = 128  # coarse grid for choosing lesion centres
_MAX_ATTEMPTS = 60


@dataclass
class SynthRow:
    """One referring row before it is written: which lesion of which slice, and its expressions."""

    case_id: str
    z: int
    lesion: Lesion
    facts: LesionFacts
    area_px: int
    full: Expression
    half: Expression
    quarter: Expression

    @property
    def id(self) -> str:
        return f"{self.case_id}_z{self.z}_l{self.lesion.lesion_id}"


@dataclass
class SynthCase:
    """One synthetic patient: HU volume (Z, H, W) int16, lesion ids and Couinaud labels (Z, H, W)
    uint8 at the volume resolution, output slices (Z, S, S) uint8, masks per (z, lesion id), rows."""

    case_id: str
    anatomy: Anatomy
    lesions: list[Lesion]
    ct: np.ndarray
    labels: np.ndarray
    segments: np.ndarray
    images: np.ndarray
    masks: dict[tuple[int, int], np.ndarray]
    rows: list[SynthRow]
    spacing: float


class _Retry(Exception):
    """This attempt at a case failed (no room, too small, ambiguous); draw again."""


def lesion_radius_range(size: int, min_lesion_px: int) -> tuple[float, float]:
    """(min, max) equivalent radius in mm so that a lesion covers at least ``min_lesion_px`` pixels
    of a ``size`` x ``size`` slice (10% margin for the mask's rasterisation)."""
    r_min = max(4.0, float(np.sqrt(min_lesion_px / np.pi)) * FOV_MM / size * 1.1)
    return r_min, min(max(3.2 * r_min, 12.0), 32.0)


def _layout(rng: np.random.Generator, n_slices: int, max_per_slice: int) -> list[tuple[int, int]]:
    """Slice spans (first, last) of lesions so that every slice shows 1..max_per_slice of them."""
    counts = rng.choice(np.arange(1, 5), size=n_slices, p=[0.2, 0.3, 0.3, 0.2]).clip(max=max_per_slice)
    spans = []
    while counts.any():
        start = int(rng.choice(np.flatnonzero(counts)))
        first = last = start
        while first > 0 and counts[first - 1] and rng.random() < 0.6:
            first -= 1
        while last < n_slices - 1 and counts[last + 1] and rng.random() < 0.6:
            last += 1
        counts[first : last + 1] -= 1
        spans.append((first, last))
    return spans


@dataclass
class _PlacementMaps:
    """Where lesion centres may go, on a coarse grid: coordinates (mm), depth inside the liver and
    inside each available segment (mm)."""

    x: np.ndarray
    y: np.ndarray
    spacing: float
    liver_depth: np.ndarray
    segment_depth: dict[str, np.ndarray]


def _placement_maps(anatomy: Anatomy) -> _PlacementMaps:
    x, y, spacing = pixel_grid(_PLACEMENT_GRID)
    segments = anatomy.segment_map(x, y)
    depth = {}
    for segment in LEVEL_SEGMENTS[anatomy.level]:
        inside = segments == SEGMENTS.index(segment) + 1
        if inside.any():
            depth[segment] = ndimage.distance_transform_edt(inside) * spacing
    return _PlacementMaps(x, y, spacing, ndimage.distance_transform_edt(segments > 0) * spacing, depth)


def _place(rng: np.random.Generator, maps: _PlacementMaps, lesions: list[Lesion]) -> None:
    """Choose each lesion's centre inside one Couinaud segment, away from the liver's edge and from
    the lesions that share a slice with it. Sets ``cx``, ``cy``, ``segment``; raises _Retry."""
    x, y = maps.x, maps.y
    placed: list[Lesion] = []
    for lesion in sorted(lesions, key=lambda item: -item.r_eq):
        reach = lesion.max_radius
        room = maps.liver_depth >= reach + 4.0
        for other in placed:
            if other.z_first <= lesion.z_last and lesion.z_first <= other.z_last:
                room &= np.hypot(x - other.cx, y - other.cy) >= reach + other.max_radius + 4.0
        fits = {s: room & (depth >= 0.5 * lesion.r_eq) for s, depth in maps.segment_depth.items()}
        choices = [s for s, cells in fits.items() if cells.any()]
        if not choices:
            raise _Retry
        segment = choices[int(rng.integers(len(choices)))]
        cells = np.flatnonzero(fits[segment])
        cell = int(cells[int(rng.integers(len(cells)))])
        lesion.cx = float(x.flat[cell] + rng.uniform(-0.3, 0.3) * maps.spacing)
        lesion.cy = float(y.flat[cell] + rng.uniform(-0.3, 0.3) * maps.spacing)
        lesion.segment = segment
        placed.append(lesion)


def _downsample(image: np.ndarray, size: int) -> np.ndarray:
    """Area-average an (n, n) float image to (size, size) float32."""
    n = image.shape[0]
    if n % size == 0:
        k = n // size
        return image.reshape(size, k, size, k).mean(axis=(1, 3), dtype=np.float32)
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize((size, size), Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.float32)


def window_to_uint8(hu: np.ndarray, level: float = WINDOW[0], width: float = WINDOW[1]) -> np.ndarray:
    """Map HU to 8-bit grey levels through a CT window (same shape, uint8)."""
    return np.round(CTWindow(level, width).apply(hu) * 255.0).astype(np.uint8)


def generate_case(
    case_index: int, seed: int = 0, size: int = 128, volume_size: int = 384, min_lesion_px: int = 40
) -> SynthCase:
    """Draw one synthetic patient with 3-5 slices through its lesions, and its verified rows."""
    rng = np.random.default_rng([seed, case_index])
    case_id = f"case{case_index:04d}"
    anatomy = sample_anatomy(rng, "cranial" if rng.random() < 0.5 else "caudal")
    n_slices = int(rng.integers(3, 6))  # 3-5 slices: --cases 250 gives about 1,000 slices
    x, y, spacing = pixel_grid(volume_size)
    liver = anatomy.liver_mask(x, y)
    background = anatomy.render(x, y, liver)
    segments = anatomy.segment_map(x, y, liver)
    maps = _placement_maps(anatomy)
    r_range = lesion_radius_range(size, min_lesion_px)
    for attempt in range(_MAX_ATTEMPTS):
        spans = _layout(rng, n_slices, max_per_slice=max(1, 4 - attempt // 12))
        lesions = [sample_lesion(rng, j + 1, first, last, r_range) for j, (first, last) in enumerate(spans)]
        try:
            _place(rng, maps, lesions)
            return _render_case(
                rng,
                case_id,
                anatomy,
                lesions,
                background,
                segments,
                x,
                y,
                spacing,
                size,
                min_lesion_px,
                n_slices,
            )
        except _Retry:
            continue
    raise ConfigError(
        f"synthetic case {case_index}: no valid lesion layout in {_MAX_ATTEMPTS} attempts; "
        f"lower --min-lesion-px or raise --size (got size={size}, min_lesion_px={min_lesion_px})"
    )


def _render_case(
    rng: np.random.Generator,
    case_id: str,
    anatomy: Anatomy,
    lesions: list[Lesion],
    background: np.ndarray,
    segments: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    spacing: float,
    size: int,
    min_lesion_px: int,
    n_slices: int,
) -> SynthCase:
    n = background.shape[0]
    ct = np.empty((n_slices, n, n), dtype=np.int16)
    labels = np.zeros((n_slices, n, n), dtype=np.uint8)
    images = np.empty((n_slices, size, size), dtype=np.uint8)
    masks: dict[tuple[int, int], np.ndarray] = {}
    rows: list[SynthRow] = []
    for z in range(n_slices):
        hu = background.copy()
        present = [lesion for lesion in lesions if lesion.z_scale(z) > 0]
        for lesion in present:
            reach = lesion.max_radius * lesion.z_scale(z) + 12.0  # + blurry rim
            cols = _index_range(lesion.cx, reach, spacing, n)
            rows_ = _index_range(lesion.cy, reach, spacing, n)
            inside = lesion.render(hu[rows_, cols], x[rows_, cols], y[rows_, cols], z, anatomy.liver_hu)
            labels[z, rows_, cols][inside] = lesion.lesion_id
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * 14.0
        ct[z] = np.clip(np.round(hu), -1024, 3071).astype(np.int16)
        images[z] = window_to_uint8(_downsample(hu, size))
        facts = []
        for lesion in present:
            mask = _downsample((labels[z] == lesion.lesion_id).astype(np.float32), size) >= 0.5
            if mask.sum() < min_lesion_px:
                raise _Retry
            masks[(z, lesion.lesion_id)] = mask
            facts.append(
                LesionFacts(
                    lesion.kind,
                    lesion.segment,
                    round(lesion.diameter(z), 1),
                    lesion.shape,
                    lesion.boundary,
                    lesion.ring,
                    lesion.cx,
                    lesion.cy,
                )
            )
        for i, lesion in enumerate(present):
            try:
                expressions = [make_expression(facts, i, k, rng) for k in EXPRESSION_SIZES]
            except LookupError as error:
                raise _Retry from error
            for expression in expressions:  # the generator's own check, independent of how it was built
                if not identifies(facts, i, expression.attributes, expression.relation):
                    raise AssertionError(f"{case_id} slice {z}: ambiguous expression {expression.text!r}")
            area = int(masks[(z, lesion.lesion_id)].sum())
            rows.append(SynthRow(case_id, z, lesion, facts[i], area, *expressions))
    return SynthCase(case_id, anatomy, lesions, ct, labels, segments, images, masks, rows, spacing)


def _index_range(centre: float, reach: float, spacing: float, n: int) -> slice:
    """Pixel index slice covering ``centre +- reach`` mm along one axis of an n-pixel grid."""
    low = int(np.floor((centre - reach + FOV_MM / 2) / spacing))
    high = int(np.ceil((centre + reach + FOV_MM / 2) / spacing)) + 1
    return slice(max(low, 0), min(high, n))


def volume_affine(spacing: float, n: int) -> np.ndarray:
    """4x4 voxel-to-RAS affine of an (X, Y, Z) array whose X runs to the patient's left (image
    right) and Y to posterior (image down), slices superior-wards; centred in-plane on the origin."""
    affine = np.diag([-spacing, -spacing, SLICE_THICKNESS_MM, 1.0])
    affine[:3, 3] = [(n - 1) / 2 * spacing, (n - 1) / 2 * spacing, 0.0]
    return affine


def _save_nifti(volume: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write a (Z, H, W) array as an (X, Y, Z) NIfTI (gzip with mtime 0, hence reproducible bytes)."""
    image = nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)


def assign_splits(n_cases: int, seed: int) -> list[str]:
    """Split name of each case (train/val/test by ``SPLIT_FRACTIONS``, every split non-empty from
    three cases on), from a permutation seeded by ``seed``."""
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(n_cases)
    n_val = max(1, round(n_cases * SPLIT_FRACTIONS[1][1])) if n_cases >= 3 else 0
    n_test = max(1, round(n_cases * SPLIT_FRACTIONS[2][1])) if n_cases >= 3 else 0
    splits = ["train"] * n_cases
    for rank, case in enumerate(order):
        if rank < n_test:
            splits[case] = "test"
        elif rank < n_test + n_val:
            splits[case] = "val"
    return splits


def generate_dataset(
    out_dir: str | Path,
    cases: int,
    size: int = 128,
    seed: int = 0,
    volume_size: int = 384,
    min_lesion_px: int = 40,
    write_volumes: bool = True,
) -> Path:
    """Generate ``cases`` synthetic patients under ``out_dir``; returns the manifest's path.

    ``size``: side of the PNG slices; ``volume_size``: in-plane side of the NIfTI volumes (spacing
    ``FOV_MM / volume_size``, 0.8 mm at 384); ``min_lesion_px``: smallest lesion area on a PNG slice.
    """
    if cases < 1:
        raise ConfigError(f"--cases must be >= 1, got {cases}")
    if not 32 <= size <= volume_size:
        raise ConfigError(f"--size must be between 32 and the volume size {volume_size}, got {size}")
    if min_lesion_px < 1:
        raise ConfigError(f"--min-lesion-px must be >= 1, got {min_lesion_px}")
    out = Path(out_dir)
    for folder in ("images", "masks", "volumes"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    splits = assign_splits(cases, seed)
    manifest_rows: list[dict[str, str]] = []
    truth_rows: list[dict[str, object]] = []
    n_images = 0
    for index in range(cases):
        case = generate_case(index, seed, size, volume_size, min_lesion_px)
        n_images += len(case.images)
        for z, image in enumerate(case.images):
            Image.fromarray(image).save(out / "images" / f"{case.case_id}_z{z}.png")
        for row in case.rows:
            mask_name = f"masks/{row.id}.png"
            Image.fromarray(case.masks[(row.z, row.lesion.lesion_id)].astype(np.uint8) * 255).save(
                out / mask_name
            )
            manifest_rows.append(
                {
                    "id": row.id,
                    "image": f"images/{case.case_id}_z{row.z}.png",
                    "mask": mask_name,
                    "text": row.full.text,
                    "text_half": row.half.text,
                    "text_quarter": row.quarter.text,
                    "case_id": case.case_id,
                    "split": splits[index],
                }
            )
            truth_rows.append(
                {
                    "id": row.id,
                    "case_id": case.case_id,
                    "z": row.z,
                    "lesion_id": row.lesion.lesion_id,
                    "level": case.anatomy.level,
                    "type": row.facts.kind,
                    "segment": row.facts.segment,
                    "lobe": lobe_of(row.facts.segment),
                    "diameter_mm": f"{row.facts.diameter:.1f}",
                    "shape": row.facts.shape,
                    "boundary": row.facts.boundary,
                    "ring": int(row.facts.ring),
                    "area_px": row.area_px,
                    "relation_full": row.full.relation or "",
                    "relation_half": row.half.relation or "",
                    "relation_quarter": row.quarter.relation or "",
                    # full precision (repr): the relations compare centres against a 15 mm gap
                    "cx_mm": repr(row.facts.cx),
                    "cy_mm": repr(row.facts.cy),
                }
            )
        if write_volumes:
            affine = volume_affine(case.spacing, case.ct.shape[1])
            _save_nifti(case.ct, affine, out / "volumes" / f"{case.case_id}_ct.nii.gz")
            _save_nifti(case.labels, affine, out / "volumes" / f"{case.case_id}_lesions.nii.gz")
            _save_nifti(
                np.broadcast_to(case.segments, case.labels.shape),
                affine,
                out / "volumes" / f"{case.case_id}_liver.nii.gz",
            )
    manifest = out / "manifest.csv"
    write_manifest(manifest_rows, manifest)
    with (out / "lesions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(truth_rows[0]))
        writer.writeheader()
        writer.writerows(truth_rows)
    parameters = {
        "generator": "lsms.data.synth",
        "cases": cases,
        "size": size,
        "seed": seed,
        "volume_size": volume_size,
        "min_lesion_px": min_lesion_px,
        "window": list(WINDOW),
        "slices": n_images,
        "rows": len(manifest_rows),
    }
    atomic_write_text(out / "synth.json", json.dumps(parameters, indent=2) + "\n")
    return manifest
