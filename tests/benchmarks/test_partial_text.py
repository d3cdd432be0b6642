"""benchmarks/partial_text.py: the breakdown on hand-made rows, and one run on a model trained for 2 steps."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import partial_text  # noqa: E402

FULL = "A cyst in the VI segment of the right lobe of the liver, with a diameter of 20.0mm, round shape."


def _row(text: str, dice: float, wrong_lesion: bool) -> dict:
    return {"text": text, "dice": dice, "wrong_lesion": wrong_lesion}


def test_breakdown_pairs_full_and_partial_rows_by_attribute_kept():
    rows = {
        "full": [_row(FULL, 0.9, False), _row(FULL, 0.8, False), _row(FULL, 0.2, True)],
        "half": [
            _row("A cyst with a round shape.", 0.1, True),
            _row("A lesion in the VI segment of the right lobe of the liver.", 0.7, False),
            _row("The larger cyst with a round shape.", 0.3, False),
        ],
        "quarter": [_row("A cyst.", 0.6, False)] * 3,
    }
    report = partial_text.breakdown(rows)
    assert report["rows"]["half"][2]["kept"] == ["type", "shape", "relation"]
    half = report["variants"]["half"]
    assert half["dice"] == pytest.approx(1.1 / 3) and half["wrong_lesion"] == pytest.approx(1 / 3)
    assert half["failed"] == pytest.approx(2 / 3)  # rows 0 and 2, one on another lesion, one not
    assert half["failed_other_lesion"] == half["failed_referred_lesion"] == pytest.approx(1 / 3)
    by_attribute = {(e["variant"], e["kept"]): e for e in report["by_attribute"]}
    shape = by_attribute["half", "shape"]
    assert shape["n"] == 2 and shape["dice_full"] == pytest.approx(0.55) and shape["dice_partial"] == 0.2
    assert shape["wrong_lesion_full"] == 0.5 and shape["wrong_lesion_partial"] == 0.5
    assert ("half", "diameter") not in by_attribute and by_attribute["quarter", "type"]["n"] == 3
    assert [(e["variant"], e["kept"], e["n"]) for e in report["by_kept_set"]] == [
        ("half", "location", 1),
        ("half", "type+shape", 1),
        ("half", "type+shape+relation", 1),
        ("quarter", "type", 3),
    ]
    table = partial_text.markdown(report, min_n=2)
    assert "| quarter | type | 3 | 63.33 | 60.00 | 33.33 | 0.00 | -3.33 |" in table
    assert "type+shape+relation" not in table  # fewer than min_n rows


@pytest.mark.slow
def test_a_model_trained_for_two_steps_gets_both_tables(tmp_path, tiny_bert_dir):
    from lsms.data.synth import generate_dataset
    from lsms.training import train
    from lsms.training.config import Config, DataConfig, ModelConfig, TrainConfig

    manifest = generate_dataset(
        tmp_path / "data", cases=3, size=64, seed=3, volume_size=192, min_lesion_px=20, write_volumes=False
    )
    config = Config(
        model=ModelConfig(name="lsms-nano", overrides={"text_encoder": str(tiny_bert_dir)}),
        data=DataConfig(train=str(manifest), train_split="train", image_size=[64, 64], text_variant="mixed"),
        train=TrainConfig(max_steps=2, batch_size=4, seed=0, run_dir=str(tmp_path / "run"), progress=False),
    )
    run_dir = train(config)
    out = tmp_path / "out"
    args = ["--model", str(run_dir / "best"), "--data", str(tmp_path / "data"), "--split", "all"]
    assert partial_text.main([*args, "--out", str(out), "--min-n", "1"]) == 0
    report = json.loads((out / "partial_text.json").read_text())
    n = len(report["rows"]["full"])
    assert n > 0 and {v: s["n"] for v, s in report["variants"].items()} == dict.fromkeys(
        ("full", "half", "quarter"), n
    )
    assert all(0.0 <= s["wrong_lesion"] <= 1.0 for s in report["variants"].values())
    assert {e["variant"] for e in report["by_attribute"]} == {"half", "quarter"}
    assert "## Per attribute kept" in (out / "partial_text.md").read_text()
