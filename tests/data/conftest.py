"""Fixtures of the data tests; the writers live in lvit_fixtures.py (a unique module name)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_helpers import make_split


@pytest.fixture
def qata_like(tmp_path: Path) -> Path:
    """An LViT root with Train_Folder (3 images) and Val_Folder (2), QaTa naming (mask_<image name>)."""
    root = tmp_path / "qata"
    make_split(
        root / "Train_Folder",
        "Train",
        ["covid_1.png", "covid_2.png", "covid_3.png"],
        lambda n: f"mask_{n}",
        lambda n, m: m,
        texts=[
            "Bilateral pulmonary infection,  two infected areas, midlle left lung and lower right lung.",
            "unilateral pulmonary infection, one infected area,\nlower left lung.",
            "unilateral pulmonary infection, one infected area, upper right lung.",
        ],
    )
    make_split(
        root / "Val_Folder", "Val", ["covid_10.png", "covid_11.png"], lambda n: f"mask_{n}", lambda n, m: m
    )
    return root
