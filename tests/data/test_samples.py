from __future__ import annotations

from pathlib import Path

import pytest

from lsms.data.loading import load_samples
from lsms.data.samples import ReferringSample, drop_clauses, normalize_text, partial_text
from lsms.errors import DataError

PAPER = (
    "A vascular tumor in the VI segment of the liver, with a diameter of 7.5mm, irregular shape, "
    "clear boundary, and no ring enhancement."
)
QATA = "bilateral pulmonary infection, two infected areas, lower left lung and lower right lung."


def _sample(**kwargs: object) -> ReferringSample:
    return ReferringSample("s", Path("/i.png"), Path("/m.png"), kwargs.pop("text", PAPER), **kwargs)


def test_drop_clauses_is_deterministic_and_keeps_the_first_clause() -> None:
    assert drop_clauses(PAPER, 0.5) == (
        "A vascular tumor in the VI segment of the liver, with a diameter of 7.5mm, clear boundary."
    )
    assert drop_clauses(PAPER, 0.25) == "A vascular tumor in the VI segment of the liver."
    assert drop_clauses(QATA, 0.5) == "bilateral pulmonary infection, two infected areas."
    assert drop_clauses(QATA, 0.25) == "bilateral pulmonary infection."
    assert drop_clauses("no commas here", 0.25) == "no commas here"


def test_partial_text_prefers_the_manifest_text() -> None:
    sample = _sample(text_half="A vascular tumor in the VI segment of the liver, with an irregular shape.")
    assert partial_text(sample, "full") == PAPER
    assert partial_text(sample, "half").endswith("with an irregular shape.")
    assert partial_text(sample, "quarter") == "A vascular tumor in the VI segment of the liver."
    with pytest.raises(DataError, match="text variant 'tenth'"):
        partial_text(sample, "tenth")


def test_normalize_text_and_sources() -> None:
    assert normalize_text("  midlle  left\n lung ") == "midlle left lung"
    assert normalize_text(float("nan")) == "" and normalize_text(None) == ""
    with pytest.raises(DataError, match="not found"):
        load_samples("/no/such/dataset")
    with pytest.raises(DataError, match=r"split 'dev': expected one of train, val, test"):
        load_samples("/", split="dev")


def test_unknown_manifest_type(tmp_path: Path) -> None:
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(DataError, match=r"m.txt: unknown manifest type; expected a .csv or .jsonl file"):
        load_samples(tmp_path / "m.txt")
