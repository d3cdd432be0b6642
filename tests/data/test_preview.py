from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import run_cli
from PIL import Image

from lsms.data.loading import load_samples
from lsms.data.preview import choose, preview_grid
from lsms.errors import DataError


def test_preview_grid_writes_an_image_with_red_overlays(qata_like: Path, tmp_path: Path) -> None:
    out = preview_grid(load_samples(qata_like), tmp_path / "grid.png", n=4, seed=1)
    grid = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert grid.shape[0] > 200 and grid.shape[1] > 200
    reddish = (grid[..., 0] - grid[..., 1] > 60) & (grid[..., 0] - grid[..., 2] > 60)
    assert reddish.sum() > 50  # the mask overlays are drawn


def test_choose_is_seeded_and_ordered(qata_like: Path) -> None:
    samples = load_samples(qata_like)
    assert choose(samples, 3, seed=0) == choose(samples, 3, seed=0)
    picked = [samples.index(s) for s in choose(samples, 3, seed=4)]
    assert picked == sorted(picked) and len(set(picked)) == 3
    assert len(choose(samples, 99)) == len(samples)
    with pytest.raises(DataError, match="n=0"):
        choose(samples, 0)


def test_preview_cli_and_skip_invalid(
    qata_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (qata_like / "Train_Folder" / "labelcol" / "mask_covid_3.png").unlink()
    out = tmp_path / "p.png"
    assert run_cli(["data", "preview", str(qata_like), "--out", str(out), "--n", "2"]) == 2
    assert not out.exists()
    assert run_cli(["data", "preview", str(qata_like), "--out", str(out), "--n", "2", "--skip-invalid"]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
