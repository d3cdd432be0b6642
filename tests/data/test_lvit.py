from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from data_helpers import QATA, make_split

from lsms.data.loading import load_samples
from lsms.data.lvit import parse_lvit, read_text_table
from lsms.errors import DataError


def test_qata_root_loads_all_splits_with_normalised_text(qata_like: Path) -> None:
    samples = load_samples(qata_like)
    assert [s.split for s in samples] == ["train"] * 3 + ["val"] * 2
    first = samples[0]
    assert first.id == "covid_1" and first.case_id == "covid_1"
    assert first.image == (qata_like / "Train_Folder" / "img" / "covid_1.png").resolve()
    assert first.mask.name == "mask_covid_1.png"
    # whitespace normalised, typo ("midlle") and case kept
    assert (
        first.text
        == "Bilateral pulmonary infection, two infected areas, midlle left lung and lower right lung."
    )
    assert samples[1].text == "unilateral pulmonary infection, one infected area, lower left lung."


def test_split_selection_and_split_folder(qata_like: Path) -> None:
    assert [s.id for s in load_samples(qata_like, "val")] == ["covid_10", "covid_11"]
    assert [s.split for s in load_samples(qata_like / "Val_Folder")] == ["val", "val"]
    with pytest.raises(DataError, match="Test_Folder"):
        load_samples(qata_like, "test")
    with pytest.raises(DataError, match="val split folder"):
        load_samples(qata_like / "Val_Folder", "train")


def test_root_with_only_test_folder(tmp_path: Path) -> None:
    make_split(tmp_path / "Test_Folder", "Test", ["a.png"], lambda n: f"mask_{n}", lambda n, m: m)
    assert [(s.id, s.split) for s in load_samples(tmp_path)] == [("a", "test")]


def test_monuseg_naming_and_image_keyed_text_with_mixed_types(tmp_path: Path) -> None:
    # MoNuSeg: mask <image stem>.png; the text keyed by the image file name; .jpg/.JPEG images
    folder = tmp_path / "Train_Folder"
    make_split(
        folder,
        "Train",
        ["TCGA-1.jpg", "TCGA-2.PNG", "Slide-3.JPEG"],
        lambda n: Path(n).stem + ".png",
        lambda n, m: n.upper(),
    )
    samples = load_samples(tmp_path)
    assert sorted((s.image.name, s.mask.name) for s in samples) == [
        ("Slide-3.JPEG", "Slide-3.png"),
        ("TCGA-1.jpg", "TCGA-1.png"),
        ("TCGA-2.PNG", "TCGA-2.png"),
    ]
    assert all(s.text.endswith(".") for s in samples)


def test_text_keyed_by_stem_with_other_extension(tmp_path: Path) -> None:
    # images are .jpg but the table names the .png masks' stems with another extension
    make_split(tmp_path / "Train_Folder", "Train", ["x1.jpg"], lambda n: "MASK_x1.png", lambda n, m: "x1.bmp")
    (sample,) = load_samples(tmp_path)
    assert sample.mask.name == "MASK_x1.png" and "lower left lung 0" in sample.text


def test_missing_column_is_one_line_error(qata_like: Path) -> None:
    xlsx = qata_like / "Train_Folder" / "Train_text.xlsx"
    pd.DataFrame({"Image": ["mask_covid_1.png"], "Text": ["x"]}).to_excel(xlsx, index=False)
    with pytest.raises(DataError, match=r"Train_text.xlsx: missing column Description") as error:
        load_samples(qata_like)
    assert "\n" not in str(error.value)


def test_missing_text_row_raises_or_is_skipped(qata_like: Path, caplog: pytest.LogCaptureFixture) -> None:
    xlsx = qata_like / "Train_Folder" / "Train_text.xlsx"
    frame = pd.read_excel(xlsx)
    frame[frame["Image"] != "mask_covid_2.png"].to_excel(xlsx, index=False)
    with pytest.raises(DataError, match=r"img/covid_2.png: no row in Train_text.xlsx"):
        load_samples(qata_like, "train")
    with caplog.at_level(logging.WARNING, logger="lsms.data"):
        samples = load_samples(qata_like, "train", skip_invalid=True)
    assert [s.id for s in samples] == ["covid_1", "covid_3"]
    assert "skipped: Train_Folder/img/covid_2.png" in caplog.text


def test_missing_mask_and_orphans_reported(qata_like: Path) -> None:
    (qata_like / "Val_Folder" / "labelcol" / "mask_covid_10.png").rename(
        qata_like / "Val_Folder" / "labelcol" / "mask_other.png"
    )
    samples, problems = parse_lvit(qata_like, "val")
    messages = [str(p) for p in problems]
    assert any("img/covid_10.png: no mask in labelcol/" in m for m in messages)
    assert any("labelcol/mask_other.png: mask without an image" in m for m in messages)
    assert any("row 2: text for mask_covid_10.png matches no image" in m for m in messages)
    assert [s.id for s in samples] == ["covid_11"]


def test_conflicting_duplicate_text_rows(tmp_path: Path) -> None:
    xlsx = tmp_path / "t.xlsx"
    pd.DataFrame(
        {" image ": ["a.png", "A.PNG", "b.png", "b.png"], "DESCRIPTION": ["x", "y", "z", "z"]}
    ).to_excel(xlsx, index=False)
    table = read_text_table(xlsx)
    assert table.lookup("a.png") == (2, "x")
    assert [(p.where, p.fatal) for p in table.problems] == [("t.xlsx row 3", True), ("t.xlsx row 5", False)]


def test_not_an_lvit_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not an LViT dataset"):
        load_samples(tmp_path)


@pytest.mark.skipif(not QATA.is_dir(), reason="QaTa-COV19 data not present")
def test_real_qata_layout() -> None:
    train = load_samples(QATA, "train")
    val = load_samples(QATA / "Val_Folder")
    assert len(train) == 5716 and len(val) == 1429
    by_id = {s.id: s for s in train}
    sample = by_id["covid_1"]
    assert sample.mask.name == "mask_covid_1.png" and sample.image.is_file() and sample.mask.is_file()
    assert sample.text.startswith("bilateral pulmonary infection, five infected areas")
    assert all(s.text and "  " not in s.text for s in train)
