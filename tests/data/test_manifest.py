from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import blob_pair, write_png

from lsms.data.loading import load_samples
from lsms.data.manifest import parse_manifest, write_manifest
from lsms.data.samples import ReferringSample
from lsms.errors import DataError


def _files(tmp_path: Path) -> tuple[Path, Path]:
    image, mask = blob_pair(0)
    return write_png(tmp_path / "data" / "img" / "c1.png", image), write_png(
        tmp_path / "data" / "mask" / "c1.png", mask
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_write_read_round_trip_with_relative_paths(tmp_path: Path, suffix: str) -> None:
    image, mask = _files(tmp_path)
    rows = [
        ReferringSample(
            "a",
            image,
            mask,
            "A tumour in segment VI, irregular shape.",
            "case1",
            "train",
            None,
            "A tumour in segment VI.",
            None,
        ),
        {
            "image": image,
            "mask": mask,
            "text": "Second  lesion,\tround.",
            "case_id": "case1",
            "split": "train",
        },
    ]
    path = write_manifest(rows, tmp_path / "data" / f"m{suffix}")
    raw = path.read_text()
    assert str(tmp_path) not in raw and "img/c1.png" in raw  # written relative to the manifest
    samples = load_samples(path)
    assert samples[0] == rows[0]
    assert samples[1].id == "c1" and samples[1].text == "Second lesion, round."  # default id, whitespace
    assert samples[1].text_half is None and samples[1].image == image.resolve()


def test_default_ids_number_lesions_of_one_image(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        {"image": "vol.nii.gz", "mask": f"l{i}.nii.gz", "text": f"lesion {i}", "slice": s}
        for i, s in enumerate([3, 3, 4])
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    samples, problems = parse_manifest(path)
    assert problems == []
    assert [s.id for s in samples] == ["vol_z3-1", "vol_z3-2", "vol_z4"]
    assert [s.slice for s in samples] == [3, 3, 4]


def test_row_problems_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "image,mask,text,slice,split,id\n"
        "a.png,a_m.png,ok,,train,x\n"
        "b.png,,no mask,,train,y\n"
        "c.png,c_m.png,bad slice,1.5,train,z\n"
        "d.png,d_m.png,bad split,,holdout,w\n"
        "e.png,e_m.png,same id,,val,x\n"
    )
    samples, problems = parse_manifest(path)
    assert [str(p) for p in problems] == [
        "m.csv line 3: empty mask path",
        "m.csv line 4: slice '1.5'; expected a non-negative integer",
        "m.csv line 5: split 'holdout': expected one of train, val, test",
        "m.csv line 6: duplicate id 'x'",
    ]
    with pytest.raises(
        DataError, match=r"^m.csv line 3: empty mask path \(and 3 more; run `lsms data check`\)$"
    ):
        load_samples(path)
    kept = load_samples(path, skip_invalid=True)
    assert [(s.id, s.text) for s in kept] == [("x", "ok")]  # the later row with id x is dropped
