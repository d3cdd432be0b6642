"""``lsms demo`` end to end at a tiny budget: data, training, evaluation, report files."""

from __future__ import annotations

import json

import pytest

from lsms.cli import main


@pytest.mark.slow
def test_demo_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "demo",
            "--out",
            str(out),
            "--cases",
            "12",
            "--size",
            "64",
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--no-progress",
        ]
    )
    assert code == 0
    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics) == {"full", "half", "quarter", "shuffled", "none"}
    assert all(0.0 <= values["dice"] <= 1.0 and values["n"] > 0 for values in metrics.values())
    assert all(0.0 <= values["wrong_lesion"] <= 1.0 for values in metrics.values())
    for name in (
        "metrics.md",
        "loss.png",
        "overlays.png",
        "same_image_different_sentences.png",
        "summary_full.json",
    ):
        assert (report / name).is_file(), name
    assert "| shuffled |" in capsys.readouterr().out


def test_demo_refuses_a_non_empty_output_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert main(["demo", "--out", str(tmp_path)]) == 2
    assert "use --overwrite" in capsys.readouterr().err
