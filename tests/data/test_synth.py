"""The synthetic referring benchmark: expressions, generated files, geometry, statistics and CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from lsms.data.stats import dataset_statistics
from lsms.data.synth import generate_dataset
from lsms.data.synth.expressions import (
    RELATIONS,
    LesionFacts,
    find_relation,
    identifies,
    make_expression,
    mentioned_attributes,
    mentioned_relation,
    render_text,
)
from lsms.data.synth.generate import _downsample, generate_case, window_to_uint8
from lsms.data.synth.phantom import FOV_MM

SMALL = {"size": 64, "volume_size": 192, "min_lesion_px": 20}


def _facts(**changes: object) -> LesionFacts:
    base = {
        "kind": "cyst",
        "segment": "VI",
        "diameter": 20.0,
        "shape": "round",
        "boundary": "clear",
        "ring": False,
        "cx": -60.0,
        "cy": 0.0,
    }
    return LesionFacts(**{**base, **changes})


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth") / "a", cases=5, seed=3, **SMALL)


def test_full_expression_in_refhl_style() -> None:
    fact = _facts(kind="hemangioma", diameter=7.5, shape="irregular")
    text = render_text(fact, ("type", "location", "diameter", "shape", "boundary", "enhancement"))
    assert text == (
        "A vascular tumor in the VI segment of the right lobe of the liver, with a diameter of "
        "7.5mm, irregular shape, clear boundary, and no ring enhancement."
    )
    assert render_text(fact, ("type", "location", "shape")) == (
        "A vascular tumor in the VI segment of the right lobe of the liver, with an irregular shape."
    )


def test_ambiguous_slice_gets_a_relation() -> None:
    rng = np.random.default_rng(0)
    # Two cysts alike in every attribute (20 vs 24 mm is not a visible size difference): position decides.
    facts = [_facts(diameter=20.0), _facts(diameter=24.0, cx=-20.0)]
    right, left = make_expression(facts, 0, 6, rng), make_expression(facts, 1, 6, rng)
    assert right.relation == "right" and right.text.startswith("The more right-sided cyst in the VI segment")
    assert left.relation == "left" and left.text.startswith("The more left-sided cyst")
    assert not identifies(facts, 0, right.attributes) and identifies(facts, 0, right.attributes, "right")
    # Without the diameter, a visible size difference gives "the larger"/"the smaller".
    facts = [_facts(diameter=20.0), _facts(diameter=32.0, cx=-20.0)]
    assert find_relation(facts, 0, ("type", "location")) == "smaller"
    assert find_relation(facts, 1, ("type", "location")) == "larger"
    assert find_relation(facts, 1, ("type", "diameter")) is None
    assert render_text(facts[1], ("type", "shape"), "larger").startswith("The larger cyst with a round shape")
    # Three alike: superlatives (x grows towards the patient's left).
    facts = [_facts(cx=-90.0), _facts(cx=-60.0), _facts(cx=-30.0, cy=-40.0)]
    most_right = make_expression(facts, 0, 6, rng)
    assert most_right.relation == "right" and most_right.text.startswith("The most right-sided cyst")
    # Two lesions that nothing visible tells apart cannot be referred to.
    with pytest.raises(LookupError):
        make_expression([_facts(), _facts(cx=-55.0)], 0, 6, rng)


def test_partial_expressions_are_unique_and_shorter() -> None:
    facts = [
        _facts(),
        _facts(kind="hcc", ring=True, segment="VII", diameter=30.0, cx=0.0),
        _facts(kind="fnh", segment="IV", shape="oval", cx=40.0),
    ]
    rng = np.random.default_rng(1)
    for index in range(3):
        half, quarter = make_expression(facts, index, 3, rng), make_expression(facts, index, 2, rng)
        assert (len(half.attributes), len(quarter.attributes)) == (3, 2)
        assert identifies(facts, index, half.attributes, half.relation)
        assert identifies(facts, index, quarter.attributes, quarter.relation)


def test_same_seed_same_bytes(dataset: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "b", cases=5, seed=3, **SMALL)
    first = sorted(p.relative_to(dataset.parent) for p in dataset.parent.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again.parent) for p in again.parent.rglob("*") if p.is_file())
    assert first == second
    for relative in first:
        assert (dataset.parent / relative).read_bytes() == (again.parent / relative).read_bytes(), relative
    other = generate_dataset(tmp_path / "c", cases=1, seed=4, **SMALL)
    assert (other.parent / "volumes/case0000_ct.nii.gz").read_bytes() != (
        dataset.parent / "volumes/case0000_ct.nii.gz"
    ).read_bytes()


def test_manifest_rows_masks_and_splits(dataset: Path) -> None:
    root = dataset.parent
    rows = _read_csv(dataset)
    assert {"id", "image", "mask", "text", "text_half", "text_quarter", "case_id", "split"} <= set(rows[0])
    assert "slice" not in rows[0]
    split_of_case: dict[str, set[str]] = {}
    for row in rows:
        split_of_case.setdefault(row["case_id"], set()).add(row["split"])
        assert row["text"] and row["text_half"] and row["text_quarter"]
        assert len(row["text_quarter"]) < len(row["text"])
    assert all(len(splits) == 1 for splits in split_of_case.values())
    assert {s for splits in split_of_case.values() for s in splits} == {"train", "val", "test"}
    # One image per slice, shared by its rows; every referred lesion is non-empty, learnably large
    # and inside the liver (Couinaud labels of the volume, at the PNG's resolution).
    truth = {row["id"]: row for row in _read_csv(root / "lesions.csv")}
    for row in rows:
        mask = np.asarray(Image.open(root / row["mask"]))
        image = np.asarray(Image.open(root / row["image"]))
        assert mask.shape == image.shape == (64, 64) and set(np.unique(mask)) == {0, 255}
        assert (mask > 0).sum() >= 20
        case, z = row["case_id"], int(truth[row["id"]]["z"])
        liver = nib.load(root / f"volumes/{case}_liver.nii.gz").get_fdata()[..., z].T > 0
        liver_png = _downsample(liver.astype(np.float32), 64) >= 0.5
        assert not ((mask > 0) & ~liver_png).any(), row["id"]
    assert len({row["image"] for row in rows}) < len(rows)


def test_nifti_geometry_matches_pngs(dataset: Path) -> None:
    root = dataset.parent
    rows = [row for row in _read_csv(dataset) if row["case_id"] == "case0001"]
    truth = {row["id"]: row for row in _read_csv(root / "lesions.csv")}
    ct = nib.load(root / "volumes/case0001_ct.nii.gz")
    labels = nib.load(root / "volumes/case0001_lesions.nii.gz")
    assert nib.aff2axcodes(ct.affine) == ("L", "P", "S")  # array x: patient's left, y: posterior
    assert np.allclose(ct.header.get_zooms(), (FOV_MM / 192, FOV_MM / 192, 5.0))
    assert ct.get_data_dtype() == np.int16 and np.allclose(labels.affine, ct.affine)
    hu = np.asarray(ct.dataobj)
    assert hu.shape[:2] == (192, 192) and hu.shape[2] == len({truth[r["id"]]["z"] for r in rows})
    instances = np.asarray(labels.dataobj)
    liver = np.asarray(nib.load(root / "volumes/case0001_liver.nii.gz").dataobj) > 0
    assert hu.min() >= -1024 and 85 < np.median(hu[liver & (instances == 0)]) < 135  # portal venous liver
    for row in rows:
        z, lesion = int(truth[row["id"]]["z"]), int(truth[row["id"]]["lesion_id"])
        png = np.asarray(Image.open(root / row["image"])).astype(int)
        windowed = window_to_uint8(_downsample(hu[..., z].T.astype(np.float32), 64)).astype(int)
        assert np.abs(png - windowed).max() <= 1  # the PNG is the volume slice, windowed
        mask = _downsample((instances[..., z].T == lesion).astype(np.float32), 64) >= 0.5
        assert np.array_equal(mask, np.asarray(Image.open(root / row["mask"])) > 0)


def test_referred_lesion_is_uniform_not_largest(dataset: Path) -> None:
    stats = dataset_statistics(dataset)
    floor = stats["text_free_floor"]
    # Every lesion of a slice is referred once, so the largest is referred on 1/(mean count) of rows.
    assert floor["fraction_referring_largest"] == pytest.approx(1.0 / stats["lesions_per_slice"]["mean"])
    assert floor["fraction_referring_largest"] < 0.9
    assert stats["lesions_per_slice"]["max"] >= 2


def test_lesion_types_look_different(dataset: Path) -> None:
    root = dataset.parent
    rows = {row["id"]: row for row in _read_csv(dataset)}
    by_type: dict[str, list[float]] = {}
    for truth in _read_csv(root / "lesions.csv"):
        row = rows[truth["id"]]
        mask = np.asarray(Image.open(root / row["mask"])) > 0
        image = np.asarray(Image.open(root / row["image"])).astype(float)
        by_type.setdefault(truth["type"], []).append(float(image[mask].mean()))
    means = {kind: float(np.mean(values)) for kind, values in by_type.items()}
    # Liver ~108 HU is grey ~150 in the window (60, 400); cysts are water, FNH hyperdense.
    assert means.get("cyst", 0.0) < 110 and means.get("fnh", 255.0) > 150


def test_statistics_floor_on_a_hand_made_manifest(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "image.png")
    small, large = np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8)
    small[0:2, 0:2] = 255  # 4 px
    large[4:8, 4:7] = 255  # 12 px
    Image.fromarray(small).save(tmp_path / "small.png")
    Image.fromarray(large).save(tmp_path / "large.png")
    (tmp_path / "m.csv").write_text(
        "id,image,mask,text\na,image.png,small.png,the small one\nb,image.png,large.png,the large one\n"
    )
    floor = dataset_statistics(tmp_path / "m.csv")["text_free_floor"]
    assert floor["dice_all_lesions"] == pytest.approx((2 * 4 / 20 + 2 * 12 / 28) / 2)
    assert floor["dice_largest_lesion"] == pytest.approx(0.5)
    assert floor["dice_random_lesion"] == pytest.approx(0.5)
    assert floor["floor_dice"] == floor["dice_all_lesions"] and floor["best_guess"] == "all"


def test_attributes_and_relation_are_read_back_from_sentences() -> None:
    expressions = [
        expression
        for case in range(4)
        for row in generate_case(case, seed=1, **SMALL).rows
        for expression in (row.full, row.half, row.quarter)
    ]
    for expression in expressions:
        assert mentioned_attributes(expression.text) == expression.attributes, expression.text
        assert mentioned_relation(expression.text) == expression.relation, expression.text
    # Relations are rare in generated data: every one, comparative (2 candidates) and superlative (3).
    for relation in RELATIONS:
        for n_candidates in (2, 3):
            text = render_text(_facts(), ("shape", "enhancement"), relation, n_candidates)
            assert mentioned_relation(text) == relation and mentioned_attributes(text) == (
                "shape",
                "enhancement",
            )
