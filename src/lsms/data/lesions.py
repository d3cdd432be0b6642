"""The ``lesions.csv`` that ``lsms data synth`` and ``lsms data describe`` write beside their manifest: one
row per referring row with its ``id``, ``case_id``, slice ``z`` and the lesion's attributes. Rows that
share (case_id, z) are the lesions of one slice."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

from lsms.errors import DataError

if TYPE_CHECKING:  # lsms.data.synth loads the generator (nibabel, scipy): only where facts are rebuilt
    from lsms.data.synth.expressions import LesionFacts

    # The lesions of one slice and which of them a row refers to.
    SliceFacts = tuple[tuple[LesionFacts, ...], int]

LESIONS_CSV = "lesions.csv"
# What rebuilds a synthetic lesion's LesionFacts (cx_mm/cy_mm: data generated since the sampled variant).
FACT_COLUMNS = (
    "case_id",
    "z",
    "type",
    "segment",
    "diameter_mm",
    "shape",
    "boundary",
    "ring",
    "cx_mm",
    "cy_mm",
)


def read_lesion_table(data: str | os.PathLike) -> dict[str, dict[str, str]] | None:
    """The rows of the ``lesions.csv`` beside manifest ``data``, by id; None when there is none (an
    LViT folder, a manifest of another source)."""
    path = Path(data)
    table = path.parent / LESIONS_CSV
    if not path.is_file() or not table.is_file():
        return None
    with table.open(newline="", encoding="utf-8") as handle:
        return {row["id"]: row for row in csv.DictReader(handle)}


def slice_rows(table: dict[str, dict[str, str]]) -> list[list[str]]:
    """The row ids of ``table`` grouped by slice (case_id, z), in table order."""
    by_slice: dict[tuple[str, str], list[str]] = {}
    for row_id, row in table.items():
        by_slice.setdefault((row["case_id"], row["z"]), []).append(row_id)
    return list(by_slice.values())


def _facts(row: dict[str, str]) -> LesionFacts:
    from lsms.data.synth.expressions import LesionFacts

    return LesionFacts(
        row["type"],
        row["segment"],
        float(row["diameter_mm"]),
        row["shape"],
        row["boundary"],
        bool(int(row["ring"])),
        float(row["cx_mm"]),
        float(row["cy_mm"]),
    )


def load_slice_facts(data: str | os.PathLike) -> dict[str, SliceFacts]:
    """Each row id of manifest ``data``'s lesions.csv -> its slice's LesionFacts and its index among
    them. Raises DataError when there is no lesions.csv or it lacks :data:`FACT_COLUMNS`."""
    table = read_lesion_table(data)
    if table is None:
        raise DataError(f"{data}: no {LESIONS_CSV} beside it (a folder of `lsms data synth`)")
    missing = [column for column in FACT_COLUMNS if table and column not in next(iter(table.values()))]
    if not table or missing:
        raise DataError(
            f"{Path(data).parent / LESIONS_CSV}: needs columns {', '.join(missing or FACT_COLUMNS)}; "
            "regenerate the data with `lsms data synth`"
        )
    result = {}
    for ids in slice_rows(table):
        facts = tuple(_facts(table[row_id]) for row_id in ids)
        result.update({row_id: (facts, i) for i, row_id in enumerate(ids)})
    return result
