"""``lsms data describe``: measured attributes, orientation, relations, uniqueness, input forms, bad input."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from data_helpers import run_cli
from describe_helpers import LESIONS, PIXEL_MM, SHAPE, LesionSpec, make_volume, save_nifti, write_forms
from PIL import Image

from lsms.data.check import check_dataset
from lsms.data.describe import describe_case, describe_dataset, load_case
from lsms.data.describe.core import format_summary
from lsms.data.describe.text import VOCABULARY
from lsms.data.synth.expressions import identifies
from lsms.errors import DataError

# What the test volume's lesions are (see describe_helpers.LESIONS), as describe should measure them.
_ALIKE = {"side": "right", "depth": "anterior", "level": "lower", "shape": "round", "density": "hypodense"}
EXPECTED = (
    {**_ALIKE, "margin": "well-defined"},
    {**_ALIKE, "margin": "well-defined"},
    {"side": "left", "depth": "posterior", "level": "upper", "shape": "oval", "density": "hyperdense"}
    | {"margin": "ill-defined"},
    {"side": "left", "depth": "anterior", "level": "upper", "shape": "irregular", "density": "hypodense"}
    | {"margin": "well-defined"},
)

RELATION_COLUMNS = ("relation_full", "relation_half", "relation_quarter")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _spec_index(mask_png: Path, mirrored: bool = False) -> int:
    """Which of LESIONS a mask shows: the nearest centre (w mirrored for a left-right flipped file)."""
    h, w = np.nonzero(np.asarray(Image.open(mask_png)) > 0)
    w_mean = SHAPE[2] - 1 - w.mean() if mirrored else w.mean()
    return int(np.argmin([np.hypot(h.mean() - s.centre[0], w_mean - s.centre[1]) for s in LESIONS]))


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_forms(tmp_path_factory.mktemp("describe") / "in")


@pytest.fixture(scope="module")
def described(forms: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("described")
    describe_dataset(forms["ct"], forms["labels"], out)
    return out


def test_measured_attributes(described: Path) -> None:
    rows = {row["id"]: row for row in _read_csv(described / "manifest.csv")}
    table = _read_csv(described / "lesions.csv")
    assert len(table) == len(rows) == 11  # 2 lesions x 3 slices + 2 x 2 + 1: every slice x lesion
    for lesion in table:
        index = _spec_index(described / rows[lesion["id"]]["mask"])
        assert abs(float(lesion["diameter_mm"]) - LESIONS[index].diameter_mm) <= PIXEL_MM, lesion["id"]
        for attribute, value in EXPECTED[index].items():
            assert lesion[attribute] == value, (lesion["id"], attribute)
        assert lesion["type"] == "tumor" and not lesion["segment"]


def test_relations_when_attributes_do_not_separate(described: Path) -> None:
    rows = {row["id"]: row for row in _read_csv(described / "manifest.csv")}
    for lesion in _read_csv(described / "lesions.csv"):
        index = _spec_index(described / rows[lesion["id"]]["mask"])
        text = rows[lesion["id"]]["text"]
        if index in (0, 1):  # alike but 22.5 mm apart: the one further to the patient's right
            side, other = ("right", 2) if index == 0 else ("left", 1)
            assert lesion["relation_full"] == side
            assert text.startswith(f"The more {side}-sided hypodense tumor")
            assert lesion["relations"] == f"more {side}-sided than l{other}"  # same size: no larger/smaller
        else:  # the upper lesions differ in density, depth, shape and margin: no relation needed
            assert lesion["relation_full"] == "" and text.startswith("A hypo" if index == 3 else "A hyper")
            # 36 mm apart front to back, 9 mm side to side (under the 15 mm margin), the same diameter
            expected = {"3": "more anterior than l4", "4": "more posterior than l3"}[lesion["lesion"]]
            assert lesion["relations"] == (expected if lesion["z"] != "5" else "")  # alone on slice 5
    assert rows["ct_z3_l4"]["text"] == (
        "A hyperdense tumor in the upper left posterior part of the liver, with a diameter of 28.1mm, "
        "oval shape, and ill-defined margin."
    )


def test_worked_example_in_the_docs_is_current(described: Path) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "data.md").read_text(encoding="utf-8")
    rows = {row["id"]: row for row in _read_csv(described / "manifest.csv")}
    for row_id in ("ct_z0_l1", "ct_z0_l2", "ct_z3_l3", "ct_z3_l4"):
        row = rows[row_id]
        assert f"| {row_id} | {row['text']} | {row['text_half']} | {row['text_quarter']} |" in docs, row_id


def test_left_right_follow_the_affine_not_the_array(forms: dict[str, Path], tmp_path: Path) -> None:
    # The same arrays stored with the patient's left-right axis reversed: the lesions swap sides.
    hu, liver, masks = make_volume()
    labels = liver.astype(np.uint8)
    for mask in masks:
        labels[mask] = 2
    ct = save_nifti(hu, tmp_path / "in" / "ct.nii.gz", flip_lr=True)
    describe_dataset(
        ct, save_nifti(labels, tmp_path / "in" / "labels.nii.gz", flip_lr=True), tmp_path / "out"
    )
    rows = {row["id"]: row for row in _read_csv(tmp_path / "out" / "manifest.csv")}
    for lesion in _read_csv(tmp_path / "out" / "lesions.csv"):
        index = _spec_index(tmp_path / "out" / rows[lesion["id"]]["mask"], mirrored=True)
        assert lesion["side"] == {"right": "left", "left": "right"}[EXPECTED[index]["side"]]
        if index in (0, 1):
            assert lesion["relation_full"] == ("left" if index == 0 else "right")
    # And with the array untouched: only the affine says where the patient's left is.
    case = load_case(forms["ct"], forms["labels"])
    mirror = np.eye(4)
    mirror[2, 2], mirror[2, 3] = -1.0, SHAPE[2] - 1  # w -> W - 1 - w
    case.ct.affine = case.ct.affine @ mirror
    facts = {(row.z, row.facts.lesion): row for row in describe_case(case).rows}
    assert facts[(0, 1)].facts.side == "left" and facts[(0, 1)].full.relation == "left"
    assert facts[(0, 2)].facts.side == "left" and facts[(0, 2)].full.relation == "right"


def test_every_expression_identifies_its_lesion_only(forms: dict[str, Path], described: Path) -> None:
    result = describe_case(load_case(forms["ct"], forms["labels"]))
    assert len(result.rows) == 11
    by_slice: dict[int, list] = {}
    for row in result.rows:
        by_slice.setdefault(row.z, []).append(row)
    for rows in by_slice.values():
        facts = [row.facts for row in rows]  # every lesion of these slices has a row
        for index, row in enumerate(rows):
            for expression in (row.full, row.half, row.quarter):
                assert identifies(facts, index, expression.attributes, expression.relation, VOCABULARY)
        for variant in ("full", "half", "quarter"):
            texts = [getattr(row, variant).text for row in rows]
            assert len(set(texts)) == len(texts)
    manifest = _read_csv(described / "manifest.csv")
    assert all(len(row["text_quarter"]) < len(row["text"]) for row in manifest)
    # Read back, every sentence is true of its own lesion's measurements (lesions.csv).
    table = {row["id"]: row for row in _read_csv(described / "lesions.csv")}
    for row in manifest:
        lesion = table[row["id"]]
        for variant, column in zip(("text", "text_half", "text_quarter"), RELATION_COLUMNS, strict=True):
            text = row[variant]
            if match := re.search(r"in the ((?:\w+ )+)part of the liver", text):
                assert set(match.group(1).split()) <= {lesion["side"], lesion["depth"], lesion["level"]}, text
            if match := re.search(r"diameter of ([\d.]+)mm", text):
                assert match.group(1) == lesion["diameter_mm"], text
            if match := re.search(r"(\w+) shape", text):
                assert match.group(1) == lesion["shape"], text
            if match := re.search(r"([\w-]+) margin", text):
                assert match.group(1) == lesion["margin"], text
            if match := re.search(r"(\w+dense)", text):
                assert match.group(1) == lesion["density"], text
            said = re.match(r"The (?:more |most )?([a-z]+)", text)  # "The larger", "The most anterior"
            said = (
                {"largest": "larger", "smallest": "smaller"}.get(said.group(1), said.group(1)) if said else ""
            )
            assert said == lesion[column], text


def test_each_input_form_gives_the_same_manifest(
    forms: dict[str, Path], described: Path, tmp_path: Path
) -> None:
    describe_dataset(
        forms["ct"],
        forms["instances"],
        tmp_path / "instances",
        instances=True,
        organ_mask=forms["liver"],
        lesion_type="tumor",
    )
    summary = describe_dataset(forms["ct"], forms["masks"], tmp_path / "masks")  # DICOM series per structure
    describe_dataset(forms["ct_series"], forms["labels"], tmp_path / "dicom_ct")  # the CT as a DICOM series
    assert summary["skipped"]["structures_ignored"] == {"ct": ["portalvein"]}
    files = sorted(p.relative_to(described) for p in described.rglob("*") if p.suffix in (".csv", ".png"))
    for form in ("instances", "masks", "dicom_ct"):
        assert (
            sorted(
                p.relative_to(tmp_path / form)
                for p in (tmp_path / form).rglob("*")
                if p.suffix in (".csv", ".png")
            )
            == files
        )
        for relative in files:
            assert (tmp_path / form / relative).read_bytes() == (described / relative).read_bytes(), (
                form,
                relative,
            )


def test_same_input_same_bytes(forms: dict[str, Path], described: Path, tmp_path: Path) -> None:
    describe_dataset(forms["ct"], forms["labels"], tmp_path)
    for path in described.rglob("*"):
        if path.is_file():
            assert (tmp_path / path.relative_to(described)).read_bytes() == path.read_bytes(), path


def test_segment_map_gives_couinaud_locations(forms: dict[str, Path], tmp_path: Path) -> None:
    _, liver, _ = make_volume()
    left_half = np.arange(SHAPE[2]) >= SHAPE[2] // 2  # w runs to the patient's left
    segments = np.where(liver, np.where(left_half, 3, 6), 0).astype(np.uint8)  # III left, VI right
    path = save_nifti(segments, tmp_path / "segments.nii.gz")
    describe_dataset(forms["ct"], forms["labels"], tmp_path / "out", segments=path)
    table = {row["id"]: row for row in _read_csv(tmp_path / "out" / "lesions.csv")}
    texts = {row["id"]: row["text"] for row in _read_csv(tmp_path / "out" / "manifest.csv")}
    assert table["ct_z0_l1"]["segment"] == "VI" and table["ct_z3_l4"]["segment"] == "III"
    assert "in the VI segment of the right lobe of the liver" in texts["ct_z0_l1"]
    assert "part of the liver" not in " ".join(texts.values())  # the segment stands for the location


def test_manifest_passes_check_and_trains(forms: dict[str, Path], tmp_path: Path) -> None:
    from tests.training.conftest import _tiny_config

    from lsms.training import Config, train

    cases, labels = tmp_path / "cases", tmp_path / "labels"
    for number in range(3):  # a folder of cases: the split is by case (train, val, test)
        hu, liver, masks = make_volume(seed=number)
        values = liver.astype(np.uint8)
        for mask in masks:
            values[mask] = 2
        save_nifti(hu, cases / f"volume-{number}.nii.gz")
        save_nifti(values, labels / f"segmentation-{number}.nii.gz")  # LiTS naming: matched by number
    summary = describe_dataset(cases, labels, tmp_path / "out")
    assert summary["cases"] == 3 and summary["rows"] == 33
    manifest = tmp_path / "out" / "manifest.csv"
    report = check_dataset(manifest)
    assert report.ok, [str(p) for p in report.problems]
    assert {row["split"] for row in _read_csv(manifest)} == {"train", "val", "test"}
    config = _tiny_config(manifest, tmp_path / "run", train={"max_steps": 2, "val_every": 2})
    run_dir = train(Config.from_dict(config))
    assert (run_dir / "log.csv").read_text().count("\n") >= 3


def test_bad_input(forms: dict[str, Path], tmp_path: Path) -> None:
    hu, liver, masks = make_volume()
    with pytest.raises(DataError, match=r"shape \(6, 80, 90\) differs from the CT") as error:
        describe_dataset(
            forms["ct"],
            save_nifti(np.zeros((6, 80, 90), np.uint8), tmp_path / "small.nii.gz"),
            tmp_path / "o",
        )
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match="no lesion voxels"):
        describe_dataset(
            forms["ct"], save_nifti(np.zeros(SHAPE, np.uint8), tmp_path / "empty.nii.gz"), tmp_path / "o"
        )
    with pytest.raises(DataError, match="organ .liver. has no voxels"):
        only_lesions = np.zeros(SHAPE, np.uint8)
        only_lesions[masks[0]] = 2
        describe_dataset(forms["ct"], save_nifti(only_lesions, tmp_path / "no_liver.nii.gz"), tmp_path / "o")
    with pytest.raises(DataError, match="no mask named 'kidney'"):
        describe_dataset(forms["ct"], forms["masks"], tmp_path / "o", organ="kidney")


def test_lesion_outside_the_organ_and_inseparable_lesions_are_counted(tmp_path: Path) -> None:
    lesions = LESIONS[:2] + (
        LesionSpec(centre=(4.0, 4.0), semi_axes=(3.0, 3.0), slices=(0, 1), hu=40.0),  # in the body wall
        LesionSpec(
            centre=(60.0, 40.0), semi_axes=(4.0, 4.0), slices=(4, 4), hu=40.0
        ),  # two alike, 12.5 mm apart
        LesionSpec(centre=(60.0, 50.0), semi_axes=(4.0, 4.0), slices=(4, 4), hu=40.0),
    )
    paths = write_forms(tmp_path / "in", lesions)
    summary = describe_dataset(paths["ct"], paths["labels"], tmp_path / "out")
    assert summary["skipped"]["lesions_outside_organ"] == {"ct": [1]}
    assert summary["skipped"]["rows_not_separable"] == ["ct_z4_l4", "ct_z4_l5"]
    assert summary["rows"] == 6
    report = format_summary(summary)
    assert "skipped 1 lesion(s) outside the organ in ct: [1]" in report
    assert "dropped 2 row(s) where nothing separates the lesion: ct_z4_l4, ct_z4_l5" in report


def test_cli(forms: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "data",
        "describe",
        "--image",
        str(forms["ct"]),
        "--labels",
        str(forms["labels"]),
        "--out",
        str(tmp_path / "a"),
    ]
    assert run_cli(argv + ["--organ", "liver=1", "--lesion", "2=tumour", "--window", "40,400"]) == 0
    assert "11 rows from 4 lesions in 1 case(s)" in capsys.readouterr().out
    assert run_cli(argv[:-1] + [str(tmp_path / "b"), "--lesion", "3=cyst"]) == 2  # no label 3: one-line error


def test_folder_of_cases_reports_a_bad_case_and_goes_on(forms: dict[str, Path], tmp_path: Path) -> None:
    cases, labels = tmp_path / "cases", tmp_path / "labels"
    cases.mkdir(), labels.mkdir()
    for name in ("a", "b"):
        shutil.copy(forms["ct"], cases / f"{name}.nii.gz")
    shutil.copy(forms["labels"], labels / "a.nii.gz")
    save_nifti(np.zeros((6, 80, 90), np.uint8), labels / "b.nii.gz")
    summary = describe_dataset(cases, labels, tmp_path / "out")
    assert summary["cases"] == 1 and summary["rows"] == 11
    assert list(summary["skipped"]["cases"]) == ["b"]
    assert "skipped case b: " in format_summary(summary) and "differs from the CT" in format_summary(summary)
    shutil.copy(forms["ct"], cases / "c.nii.gz")
    summary = describe_dataset(cases, labels, tmp_path / "out")
    assert "no labels for case 'c'" in summary["skipped"]["cases"]["c"]
