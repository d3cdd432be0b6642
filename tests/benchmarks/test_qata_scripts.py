"""benchmarks/qata_recipe.py (placeholders, table) and benchmarks/qata_figure.py (the median row)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import qata_figure  # noqa: E402
import qata_recipe  # noqa: E402


def test_placeholders_leave_yaml_braces_alone() -> None:
    assert qata_recipe.fill("optim.warmup_steps={warmup}", {"warmup": 30}) == "optim.warmup_steps=30"
    affine = f"data.augment={qata_recipe.AFFINE}"
    assert qata_recipe.fill(affine, {"warmup": 30}) == affine


def test_report_orders_variants_as_declared(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(qata_recipe, "OUT", tmp_path)
    for name, dice in (("warmup", 74.0), ("base", 70.0)):
        row = {"variant": name, "what": name, "holdout_dice": dice, "holdout_miou": dice - 10}
        row |= {"holdout_pooled_dice": dice + 5, "train_seconds": 300.0, "images_per_s": 7.0}
        (tmp_path / f"{name}.json").write_text(json.dumps(row))
    table = qata_recipe.report()
    assert table.index("| base |") < table.index("| warmup |") and "| 74.00 | 64.00 | 79.00 " in table
    assert (tmp_path / "table.md").read_text() == table


def test_median_row_is_the_lower_middle(tmp_path: Path) -> None:
    rows = [{"id": f"r{i}", "dice": dice} for i, dice in enumerate([0.9, 0.1, 0.5, 0.7])]
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"per_sample": rows}))
    assert qata_figure.median_row(summary)["id"] == "r2"
