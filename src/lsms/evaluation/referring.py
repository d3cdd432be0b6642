"""The other lesions of each sample's slice, for the wrong-lesion rate (docs/metrics.md).

Data sets written by ``lsms data synth`` and ``lsms data describe`` keep a ``lesions.csv`` beside their
manifest with one row per referring row: its ``id``, ``case_id`` and slice ``z``. Every row refers to
one lesion of its slice, so the rows that share (case_id, z) are the slice's lesions, each with its
mask in the manifest. (``describe`` leaves out lesions it cannot tell apart from the others, so its
map lacks those.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsms.data.io import load_mask
from lsms.data.lesions import LESIONS_CSV, read_lesion_table, slice_rows
from lsms.data.manifest import parse_manifest
from lsms.data.samples import ReferringSample

logger = logging.getLogger("lsms.evaluation")


@dataclass(frozen=True)
class LesionMap:
    """The masks (path, slice index) of the other lesions of each row's slice, by row id."""

    others: Mapping[str, tuple[tuple[Path, int | None], ...]]

    def other_masks(self, sample: ReferringSample) -> list[np.ndarray]:
        """Bool masks of the lesions that share ``sample``'s slice, the referred one excluded."""
        return [load_mask(path, index) for path, index in self.others[sample.id]]


def load_lesion_map(data: str | os.PathLike, samples: Sequence[ReferringSample]) -> LesionMap | None:
    """The lesion map of manifest ``data`` (all its rows, so a subset of ``samples`` still sees every
    lesion of its slices). None without a ``lesions.csv``, or when it misses some of ``samples``: a
    wrong-lesion rate over part of the rows would read as one over all of them."""
    table = read_lesion_table(data)
    if table is None:
        return None
    masks = {sample.id: (sample.mask, sample.slice) for sample in parse_manifest(data)[0]}
    others = {
        row_id: tuple(masks[other] for other in ids if other != row_id and other in masks)
        for ids in slice_rows(table)
        for row_id in ids
    }
    missing = [sample.id for sample in samples if sample.id not in others]
    if missing:
        logger.warning(
            "%s: %d of %d samples (first %s) are not in %s; no wrong-lesion rate",
            Path(data).parent / LESIONS_CSV,
            len(missing),
            len(samples),
            missing[0],
            LESIONS_CSV,
        )
        return None
    return LesionMap(others)
