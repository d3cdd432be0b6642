"""Reading lesions.csv back: the facts of every lesion of a slice, as the generator had them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lsms.data.lesions import LESIONS_CSV, load_slice_facts
from lsms.data.loading import load_samples
from lsms.data.synth.expressions import refers_to
from lsms.errors import DataError


def test_slice_facts_make_the_manifest_sentences_unique(tiny_synth: Path) -> None:
    facts = load_slice_facts(tiny_synth)
    samples = load_samples(tiny_synth)
    assert set(facts) == {sample.id for sample in samples}
    assert any(len(facts[sample.id][0]) > 1 for sample in samples)  # slices with several lesions
    # The generator checked each sentence against its facts: the rebuilt ones (centres included, for the
    # position relations) must agree on every sentence.
    for sample in samples:
        lesions, index = facts[sample.id]
        assert lesions[index].segment in sample.text
        for text in (sample.text, sample.text_half, sample.text_quarter):
            assert refers_to(list(lesions), index, text), text


def test_missing_table_or_columns_is_a_data_error(tiny_synth: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(tiny_synth.read_text())
    with pytest.raises(DataError, match="no lesions.csv"):
        load_slice_facts(manifest)
    with (tiny_synth.parent / LESIONS_CSV).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with (tmp_path / LESIONS_CSV).open("w", newline="") as handle:  # as written before cx_mm/cy_mm
        writer = csv.DictWriter(handle, fieldnames=[k for k in rows[0] if k not in ("cx_mm", "cy_mm")])
        writer.writeheader()
        writer.writerows({k: v for k, v in row.items() if k in writer.fieldnames} for row in rows)
    with pytest.raises(DataError, match="needs columns cx_mm, cy_mm"):
        load_slice_facts(manifest)
