"""Referring samples (one image, one referred object, one sentence): the types and the text rules;
:mod:`lsms.data.loading` reads them from a manifest or an LViT folder."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from lsms.errors import DataError

SPLITS = ("train", "val", "test")
TEXT_VARIANTS = ("full", "half", "quarter")
# Training may also draw one of them per sample and epoch ("mixed"), or a fresh expression of any of
# their sizes from the lesions.csv of synthetic data ("sampled"); see ReferringDataset.
TRAINING_TEXT_VARIANTS = (*TEXT_VARIANTS, "mixed", "sampled")
# Variants that draw the text per epoch: a run trained on them is validated on the full expressions.
DRAWN_TEXT_VARIANTS = ("mixed", "sampled")
_VARIANT_FRACTION = {"half": 0.5, "quarter": 0.25}
_VARIANT_FIELD = {"full": "text", "half": "text_half", "quarter": "text_quarter"}
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class ReferringSample:
    """One (image, referred object) row. ``image``/``mask`` are absolute paths; ``slice`` indexes the
    Z axis of a volume (None for 2D images); ``text_half``/``text_quarter`` are the optional partial
    expressions (the paper's 50 % / 25 % text)."""

    id: str
    image: Path
    mask: Path
    text: str
    case_id: str | None = None
    split: str | None = None
    slice: int | None = None
    text_half: str | None = None
    text_quarter: str | None = None

    def to_row(self) -> dict[str, object]:
        """The manifest columns as a dict (None for absent optional values)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Problem:
    """A data problem found while reading: ``where`` names the file or row. ``sample`` is set when
    the problem makes that (already parsed) sample object unusable; ``fatal`` problems stop loading unless
    ``skip_invalid`` is set, others (orphan files, unused text rows) are only reported."""

    where: str
    message: str
    sample: ReferringSample | None = field(default=None, compare=False, repr=False)
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def normalize_text(text: object) -> str:
    """Collapse whitespace runs (double spaces, newlines, tabs) to one space and strip; words are kept
    as written (LViT's typos included). Missing values (None/NaN) become ""."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return _WHITESPACE.sub(" ", str(text)).strip()


def parse_split(split: str | None) -> str | None:
    """Normalise a split name ("Train", "val", ...) to one of SPLITS; None stays None."""
    if split is None:
        return None
    name = str(split).strip().lower()
    name = {"validation": "val", "valid": "val", "training": "train", "testing": "test"}.get(name, name)
    if name not in SPLITS:
        raise DataError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    return name


def drop_clauses(text: str, fraction: float) -> str:
    """Keep about ``fraction`` of the comma-separated clauses, deterministically: the first clause,
    then every 1/fraction-th remaining clause (every other for 0.5, every fourth for 0.25), at most
    round(n * fraction) clauses (at least one). A final full stop is kept."""
    body = text.strip()
    stop = body.endswith(".")
    clauses = [c.strip() for c in body.rstrip(".").split(",") if c.strip()]
    if not clauses:
        return body
    step = max(1, round(1 / fraction))
    keep = max(1, math.floor(len(clauses) * fraction + 0.5))
    kept = ([clauses[0]] + clauses[1::step])[:keep]
    return ", ".join(kept) + ("." if stop else "")


def partial_text(sample: ReferringSample, variant: str = "full") -> str:
    """The sentence for ``variant``: "full" is ``sample.text``; "half"/"quarter" use the manifest's
    ``text_half``/``text_quarter`` when present, else ``drop_clauses(sample.text, 0.5 / 0.25)``."""
    if variant not in TEXT_VARIANTS:
        raise DataError(f"text variant {variant!r}: expected one of {', '.join(TEXT_VARIANTS)}")
    given = getattr(sample, _VARIANT_FIELD[variant])
    if given:
        return given
    return drop_clauses(sample.text, _VARIANT_FRACTION[variant])
