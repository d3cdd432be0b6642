"""Turn labelled CT cases into a referring data set: slices, masks, verified expressions, a manifest.

Layout of ``out_dir``::

    manifest.csv                 one row per slice x lesion (visible on >= min_area_px pixels, in the
                                 organ, and separable): id,image,mask,text,case_id,split,text_half,
                                 text_quarter (paths relative to the manifest)
    lesions.csv                  the same rows' measured attributes (type, position, diameter, ...)
    describe.json                parameters, counts and every skip with its reason
    images/<case>_z<k>.png       8-bit slice k of the CT (the (Z, H, W) array of lsms.data.io) in the
                                 window; shared by all rows of the slice
    masks/<case>_z<k>_l<j>.png   0/255 mask of lesion j on slice k

Row ids are ``<case>_z<k>_l<j>`` as in ``lsms data synth``. Splits are by case (``assign_splits`` of
the synthetic benchmark: 70/10/20 %). Expressions are drawn from
``numpy.random.default_rng([seed, crc32(case id)])``, so the same input gives the same files.
"""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lsms.atomic import atomic_write_text
from lsms.data.describe.inputs import LabelledCase, LesionMask, is_series_folder, load_case, structure_name
from lsms.data.describe.measure import (
    Facts,
    OrganFrame,
    Thresholds,
    in_organ,
    measure_slice,
    patient_coordinates,
    segment_of,
)
from lsms.data.describe.text import VOCABULARY, pool, relations_on_slice
from lsms.data.io import CTWindow, is_nifti, parse_window
from lsms.data.manifest import write_manifest
from lsms.data.synth.expressions import Expression, identifies, make_expression
from lsms.data.synth.generate import assign_splits
from lsms.errors import DataError

LESION_COLUMNS = (
    "id", "case_id", "z", "lesion", "type", "side", "depth", "level", "segment", "diameter_mm", "shape",
    "aspect", "solidity", "density", "delta_hu", "margin", "sharpness", "area_px", "cx_mm", "cy_mm",
    "cz_mm", "relations", "relation_full", "relation_half", "relation_quarter",
)  # fmt: skip


@dataclass
class DescribedRow:
    """One referring row: lesion ``facts.lesion`` on slice ``z`` of ``case_id`` and its expressions."""

    case_id: str
    z: int
    facts: Facts
    full: Expression
    half: Expression
    quarter: Expression
    relations: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return row_id(self.case_id, self.z, self.facts.lesion)


def row_id(case_id: str, z: int, lesion: int) -> str:
    """``<case>_z<slice>_l<lesion>``, as the synthetic benchmark names its rows."""
    return f"{case_id}_z{z}_l{lesion}"


@dataclass
class CaseResult:
    """The rows of one case, their (H, W) bool masks by (z, lesion), and what was skipped."""

    case_id: str
    lesions: int
    rows: list[DescribedRow] = field(default_factory=list)
    masks: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    outside_organ: list[int] = field(default_factory=list)
    below_min_area: int = 0
    ambiguous: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _slice_of(lesion: LesionMask, z: int, shape: tuple[int, int]) -> np.ndarray | None:
    """The lesion's (H, W) bool cross-section on slice ``z``, or None when it has no pixel there."""
    zs, hs, ws = lesion.box
    if not zs.start <= z < zs.stop or not lesion.mask[z - zs.start].any():
        return None
    plane = np.zeros(shape, dtype=bool)
    plane[hs, ws] = lesion.mask[z - zs.start]
    return plane


def _inside_flags(case: LabelledCase, t: Thresholds) -> list[bool]:
    """Whether each lesion lies in the organ (``measure.in_organ``), on a box one voxel around it."""
    flags = []
    for lesion in case.lesions:
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n))
            for s, n in zip(lesion.box, case.organ.shape, strict=True)
        )
        own = lesion.crop(box)
        others = np.logical_or.reduce(
            [o.crop(box) for o in case.lesions if o is not lesion] + [np.zeros_like(own)]
        )
        flags.append(in_organ(own, others & ~own, case.organ[box], t))
    return flags


def describe_case(
    case: LabelledCase, *, min_area_px: int = 20, seed: int = 0, thresholds: Thresholds | None = None
) -> CaseResult:
    """Measure every lesion on every slice and build verified full/half/quarter expressions.

    All lesions visible on a slice (any size, in the organ or not) take part in the uniqueness check;
    rows are made for lesions in the organ covering >= ``min_area_px`` pixels. A lesion that nothing
    (attributes or a relation) separates from the others on its slice is dropped and listed.
    """
    t = thresholds or Thresholds()
    ct, shape = case.ct, case.organ.shape
    result = CaseResult(case.case_id, len(case.lesions), ignored=list(case.ignored))
    inside = _inside_flags(case, t)
    result.outside_organ = [j for j, flag in enumerate(inside, start=1) if not flag]
    region = case.organ.copy()
    centres_z = []
    for lesion, flag in zip(case.lesions, inside, strict=True):
        if flag:
            region[lesion.box] |= lesion.mask
        voxels = np.stack(np.nonzero(lesion.mask), axis=1) + [s.start for s in lesion.box]
        centres_z.append(float(patient_coordinates(ct.affine, voxels.astype(np.float64))[:, 2].mean()))
    frame = OrganFrame.of(region, ct.affine)
    rng = np.random.default_rng([seed, zlib.crc32(case.case_id.encode("utf-8"))])
    for z in range(shape[0]):
        planes = {j: _slice_of(lesion, z, shape[1:]) for j, lesion in enumerate(case.lesions, start=1)}
        planes = {j: plane for j, plane in planes.items() if plane is not None}
        if not planes:
            continue
        tissue = case.organ[z] & ~np.logical_or.reduce(list(planes.values()))
        facts = []
        for j, plane in planes.items():
            m = measure_slice(ct.array[z], plane, tissue, ct.affine, z, t)
            is_in = inside[j - 1]
            side, depth, level = frame.words(m["cx"], m["cy"], centres_z[j - 1], t.position_band)
            facts.append(
                Facts(
                    lesion=j,
                    organ=case.organ_name,
                    kind=case.lesions[j - 1].kind,
                    side=side if is_in else None,
                    depth=depth if is_in else None,
                    level=level if is_in else None,
                    segment=segment_of(None if case.segments is None else case.segments[z], plane),
                    cz=centres_z[j - 1],
                    in_organ=is_in,
                    **m,
                )
            )
        for index, fact in enumerate(facts):
            if not fact.in_organ:
                continue
            if fact.area_px < min_area_px:
                result.below_min_area += 1
                continue
            names = pool(fact)
            sizes = (len(names), max(1, (len(names) + 1) // 2), max(1, (len(names) + 2) // 4))
            try:
                expressions = [make_expression(facts, index, k, rng, VOCABULARY, names) for k in sizes]
            except LookupError:
                result.ambiguous.append(row_id(case.case_id, z, fact.lesion))
                continue
            for expression in expressions:  # the check of the synthetic generator, independent of the build
                if not identifies(facts, index, expression.attributes, expression.relation, VOCABULARY):
                    raise AssertionError(
                        f"{row_id(case.case_id, z, fact.lesion)}: ambiguous {expression.text!r}"
                    )
            relations = relations_on_slice(facts, index)
            result.rows.append(DescribedRow(case.case_id, z, fact, *expressions, relations=relations))
            result.masks[(z, fact.lesion)] = planes[fact.lesion]
    return result


def _to_uint8(hu: np.ndarray, window: CTWindow) -> np.ndarray:
    return np.round(window.apply(hu) * 255.0).astype(np.uint8)


def _write_pictures(result: CaseResult, case: LabelledCase, out: Path, window: CTWindow) -> None:
    """Write the case's windowed slices and row masks as PNG, then free the masks (a data set of many
    cases would not fit in memory)."""
    for z in sorted({row.z for row in result.rows}):
        Image.fromarray(_to_uint8(case.ct.array[z], window)).save(out / "images" / f"{case.case_id}_z{z}.png")
    for row in result.rows:
        mask = result.masks[(row.z, row.facts.lesion)]
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{row.id}.png")
    result.masks.clear()


def _lesion_row(row: DescribedRow) -> dict[str, object]:
    f = row.facts

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    return {
        "id": row.id,
        "case_id": row.case_id,
        "z": row.z,
        "lesion": f.lesion,
        "type": f.kind or "",
        "side": f.side or "",
        "depth": f.depth or "",
        "level": f.level or "",
        "segment": f.segment or "",
        "diameter_mm": number(f.diameter, 1),
        "shape": f.shape or "",
        "aspect": number(f.aspect, 2),
        "solidity": number(f.solidity, 3),
        "density": f.density or "",
        "delta_hu": number(f.delta_hu, 1),
        "margin": f.margin or "",
        "sharpness": number(f.sharpness, 2),
        "area_px": f.area_px,
        "cx_mm": number(f.cx, 1),
        "cy_mm": number(f.cy, 1),
        "cz_mm": number(f.cz, 1),
        "relations": "; ".join(row.relations),
        "relation_full": row.full.relation or "",
        "relation_half": row.half.relation or "",
        "relation_quarter": row.quarter.relation or "",
    }


def _entries(folder: Path) -> dict[str, Path]:
    """Volumes of a folder of cases by case name: NIfTI files and DICOM series folders."""
    found = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if is_nifti(path) or path.is_dir():
            found[structure_name(path)] = path
    return found


def _match(folder: Path, case: str, what: str) -> Path:
    """The entry of ``folder`` for ``case``: the same name, else the one with the same trailing number
    (LiTS: volume-7 -> segmentation-7)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder with an entry ({what}) per case")
    entries = _entries(folder)
    if case in entries:
        return entries[case]
    digits = case.rstrip("0123456789")
    number = case[len(digits) :]
    if number:
        same = [p for name, p in entries.items() if name[len(name.rstrip("0123456789")) :] == number]
        if len(same) == 1:
            return same[0]
    raise DataError(f"{folder}: no {what} for case {case!r}; expected an entry named {case!r}")


def _of_case(path: str | Path | None, case: str, what: str, several: bool) -> Path | None:
    """``path`` itself for one case, its entry for ``case`` when it is a folder of several."""
    if path is None:
        return None
    return _match(Path(path), case, what) if several else Path(path)


def find_cases(image: Path) -> tuple[dict[str, Path], bool]:
    """The CTs by case id, and whether ``image`` is a folder of cases (each NIfTI file or DICOM series
    folder in it) rather than one CT (a file or a series folder)."""
    if not image.exists():
        raise DataError(f"{image}: not found; expected a CT (NIfTI file or DICOM series) or a folder of them")
    if not image.is_dir() or is_series_folder(image):
        return {structure_name(image): image}, False
    cases = _entries(image)
    if not cases:
        raise DataError(f"{image}: no NIfTI files or DICOM series folders")
    return cases, True


def describe_dataset(
    image: str | Path,
    labels: str | Path,
    out_dir: str | Path,
    *,
    organ: str | None = None,
    lesion_labels: list[str] | None = None,
    instances: bool = False,
    organ_mask: str | Path | None = None,
    lesion_type: str | None = None,
    segments: str | Path | None = None,
    window: str | CTWindow = "liver",
    min_area_px: int = 20,
    seed: int = 0,
    thresholds: Thresholds | None = None,
) -> dict[str, object]:
    """Describe one case or a folder of cases (see ``find_cases``) into ``out_dir``; returns the summary
    also written to describe.json. With several cases, a case that cannot be read (or has no labels)
    is skipped and reported; a single case raises DataError. ``labels``, ``organ_mask`` and
    ``segments`` are files for one case, folders (see ``_match``) for several."""
    if min_area_px < 1:
        raise DataError(f"--min-area-px must be >= 1, got {min_area_px}")
    image, labels, out = Path(image), Path(labels), Path(out_dir)
    ct_window = parse_window(window)
    cases, several = find_cases(image)
    results: list[CaseResult] = []
    skipped_cases: dict[str, str] = {}
    for folder in ("images", "masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for case_id, ct_path in cases.items():
        try:
            case = load_case(
                ct_path,
                _of_case(labels, case_id, "labels", several),
                case_id=case_id,
                organ=organ,
                lesion_labels=lesion_labels,
                instances=instances,
                organ_mask=_of_case(organ_mask, case_id, "organ mask", several),
                lesion_type=lesion_type,
                segments=_of_case(segments, case_id, "segment map", several),
            )
            result = describe_case(case, min_area_px=min_area_px, seed=seed, thresholds=thresholds)
        except DataError as error:
            if not several:
                raise
            skipped_cases[case_id] = str(error)  # reported in the summary
            continue
        _write_pictures(result, case, out, ct_window)
        results.append(result)
    rows = [row for result in results for row in result.rows]
    if not rows:
        reasons = "; ".join(f"{r.case_id}: {_skips(r)}" for r in results) or "; ".join(skipped_cases.values())
        raise DataError(f"{image}: no referring rows could be made ({reasons})")
    splits = dict(zip([r.case_id for r in results], assign_splits(len(results), seed), strict=True))
    manifest_rows = []
    for result in results:
        for row in result.rows:
            manifest_rows.append(
                {
                    "id": row.id,
                    "image": f"images/{row.case_id}_z{row.z}.png",
                    "mask": f"masks/{row.id}.png",
                    "text": row.full.text,
                    "text_half": row.half.text,
                    "text_quarter": row.quarter.text,
                    "case_id": row.case_id,
                    "split": splits[row.case_id],
                }
            )
    manifest = write_manifest(manifest_rows, out / "manifest.csv")
    with (out / "lesions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=LESION_COLUMNS)
        writer.writeheader()
        writer.writerows(_lesion_row(row) for row in rows)
    summary = {
        "generator": "lsms.data.describe",
        "manifest": str(manifest),
        "window": [ct_window.level, ct_window.width],
        "min_area_px": min_area_px,
        "seed": seed,
        "thresholds": asdict(thresholds or Thresholds()),
        "cases": len(results),
        "rows": len(rows),
        "lesions": sum(r.lesions for r in results),
        "skipped": {
            "cases": skipped_cases,
            "lesions_outside_organ": {r.case_id: r.outside_organ for r in results if r.outside_organ},
            "rows_not_separable": [row_id for r in results for row_id in r.ambiguous],
            "lesion_slices_below_min_area": sum(r.below_min_area for r in results),
            "structures_ignored": {r.case_id: r.ignored for r in results if r.ignored},
        },
    }
    recorded = {
        k: v for k, v in summary.items() if k != "manifest"
    }  # no absolute path: same input, same bytes
    atomic_write_text(out / "describe.json", json.dumps(recorded, indent=2) + "\n")
    return summary


def _skips(result: CaseResult) -> str:
    parts = [f"{result.lesions} lesions"]
    if result.outside_organ:
        parts.append(f"{len(result.outside_organ)} outside the organ")
    if result.below_min_area:
        parts.append(f"{result.below_min_area} lesion-slices below the minimum area")
    if result.ambiguous:
        parts.append(f"{len(result.ambiguous)} rows not separable")
    return ", ".join(parts)


def format_summary(summary: dict[str, object]) -> str:
    """The summary as printed by ``lsms data describe``: counts, then one line per skip."""
    skipped = summary["skipped"]
    lines = [
        f"wrote {summary['manifest']}: {summary['rows']} rows from {summary['lesions']} lesions "
        f"in {summary['cases']} case(s)"
    ]
    for case, reason in skipped["cases"].items():
        lines.append(f"skipped case {case}: {reason}")
    for case, lesions in skipped["lesions_outside_organ"].items():
        lines.append(f"skipped {len(lesions)} lesion(s) outside the organ in {case}: {lesions}")
    if skipped["rows_not_separable"]:
        lines.append(
            f"dropped {len(skipped['rows_not_separable'])} row(s) where nothing separates the lesion: "
            + ", ".join(skipped["rows_not_separable"])
        )
    if skipped["lesion_slices_below_min_area"]:
        lines.append(
            f"left out {skipped['lesion_slices_below_min_area']} lesion-slice(s) below "
            f"{summary['min_area_px']} px"
        )
    for case, names in skipped["structures_ignored"].items():
        lines.append(f"ignored structures in {case}: {', '.join(names)}")
    return "\n".join(lines)
