"""Loading referring samples from any source: a manifest file (.csv/.jsonl) or an LViT dataset folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lsms.data import lvit, manifest
from lsms.data.samples import Problem, ReferringSample, parse_split
from lsms.errors import DataError

logger = logging.getLogger("lsms.data")


def parse_samples(
    path: str | os.PathLike, split: str | None = None
) -> tuple[list[ReferringSample], list[Problem]]:
    """Read a manifest (.csv/.jsonl) or an LViT root/split folder without raising on row problems.

    Structural errors (missing file, missing column, not UTF-8) raise DataError; row-level problems
    (empty fields, empty text, ...) are returned.
    """
    path = Path(path)
    split = parse_split(split)
    if not path.exists():
        raise DataError(f"{path}: not found; expected a manifest (.csv/.jsonl) or an LViT dataset folder")
    if path.is_dir():
        samples, problems = lvit.parse_lvit(path, split)
    else:
        samples, problems = manifest.parse_manifest(path)
        if split is not None:
            samples = [s for s in samples if s.split == split]
    # An empty sentence cannot refer to anything (and has no partial variants): a row problem.
    problems = list(problems) + [
        Problem(f"sample {s.id}", "empty text; expected a referring sentence", sample=s)
        for s in samples
        if not s.text
    ]
    return samples, problems


def resolve_problems(
    samples: list[ReferringSample], problems: list[Problem], skip_invalid: bool
) -> list[ReferringSample]:
    """Raise on the first fatal problem, or (``skip_invalid``) drop the affected samples and log each."""
    fatal = [p for p in problems if p.fatal]
    for problem in problems:
        if not problem.fatal:
            logger.warning("%s", problem)
    if not fatal:
        return samples
    if not skip_invalid:
        more = f" (and {len(fatal) - 1} more; run `lsms data check`)" if len(fatal) > 1 else ""
        raise DataError(f"{fatal[0]}{more}")
    bad = {id(p.sample) for p in fatal if p.sample is not None}  # identity: duplicate rows compare equal
    for problem in fatal:
        logger.warning("skipped: %s", problem)
    kept = [s for s in samples if id(s) not in bad]
    logger.warning("skipped %d invalid rows or files; %d samples kept", len(fatal), len(kept))
    return kept


def load_samples(
    path: str | os.PathLike, split: str | None = None, *, skip_invalid: bool = False
) -> list[ReferringSample]:
    """Samples from a manifest file (.csv/.jsonl) or an LViT dataset root or split folder.

    ``split`` ("train", "val", "test") selects rows of a manifest or one split folder of an LViT root
    (None: all). A bad row or file raises one-line DataError, or with ``skip_invalid=True`` is
    skipped and reported on the ``lsms.data`` logger.
    """
    samples, problems = parse_samples(path, split)
    return resolve_problems(samples, problems, skip_invalid)
