from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from data_helpers import QATA, blob_pair, run_cli, write_png

from lsms.data.check import check_dataset, format_report
from lsms.data.manifest import write_manifest


def _bad_manifest(tmp_path: Path) -> Path:
    rows = []
    for index in range(3):
        image, mask = blob_pair(index)
        rows.append(
            {
                "image": write_png(tmp_path / f"i{index}.png", image),
                "mask": write_png(tmp_path / f"m{index}.png", mask),
                "text": f"lesion {index}",
                "case_id": f"c{index}",
                "split": "train",
            }
        )
    write_png(tmp_path / "small.png", np.full((16, 16), 255, np.uint8))
    write_png(tmp_path / "empty.png", np.zeros((32, 32), np.uint8))
    gray = np.zeros((32, 32), np.uint8)
    gray[:2, :2], gray[5, 5] = 100, 200
    write_png(tmp_path / "gray.png", gray)
    (tmp_path / "corrupt.png").write_bytes(b"not a png")
    rows += [
        {**rows[0], "id": "dup"},  # same image, mask, text as row 1
        {**rows[1], "mask": tmp_path / "small.png", "id": "small"},
        {**rows[1], "mask": tmp_path / "empty.png", "id": "empty"},
        {**rows[1], "mask": tmp_path / "gray.png", "id": "gray"},
        {**rows[1], "image": tmp_path / "corrupt.png", "id": "corrupt"},
        {**rows[1], "image": tmp_path / "gone.png", "id": "gone"},
        {**rows[2], "text": " ", "id": "notext"},
        {**rows[2], "split": "val", "id": "leak", "text": "other"},
    ]
    return write_manifest(rows, tmp_path / "m.csv")


def test_check_reports_each_problem_on_one_line(tmp_path: Path) -> None:
    report = check_dataset(_bad_manifest(tmp_path))
    problems = [str(p) for p in report.problems]
    expected = [
        "sample dup: duplicate of sample i0",
        "sample notext: empty text",
        "case c2: appears in splits train, val",
        "sample small: mask is 16x16 but image is 32x32",
        "sample empty: empty mask empty.png",
        "sample gray: ",
        "sample corrupt: ",
        "sample gone: image ",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in problems), (start, problems)
    assert len(problems) == len(expected)
    assert "expected a binary mask" in next(p for p in problems if p.startswith("sample gray"))
    assert "unreadable image" in next(p for p in problems if p.startswith("sample corrupt"))
    text = format_report(report)
    assert "rows 11;" in text and "8 problem(s)" in text and "lesion area (% of image): min" in text


def test_cli_exit_status(tmp_path: Path, qata_like: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["data", "check", str(_bad_manifest(tmp_path / "bad"))]) == 1
    assert run_cli(["data", "check", str(qata_like)]) == 0
    out = capsys.readouterr().out
    assert "rows 5; images 5; cases 5; splits train 3, val 2" in out and "0 problem(s)" in out
    shutil.rmtree(qata_like / "Val_Folder" / "labelcol")
    assert run_cli(["data", "check", str(qata_like), "--split", "train"]) == 0
    assert run_cli(["data", "check", str(tmp_path / "nothing")]) == 2


@pytest.mark.slow
@pytest.mark.skipif(not QATA.is_dir(), reason="QaTa-COV19 data not present")
def test_real_qata_train_folder_checks_clean(capsys: pytest.CaptureFixture[str]) -> None:
    start = time.perf_counter()
    assert run_cli(["data", "check", str(QATA / "Train_Folder")]) == 0
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "rows 5716; images 5716" in out and "224x224 (5716)" in out and "0 problem(s)" in out
    assert elapsed < 120
