"""Checkpoints: atomic writes, the ``latest`` pointer, RNG round trip, weights_only loading, clear errors."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from lsms.atomic import atomic_write, atomic_write_text, clean_interrupted_writes, replace_dir
from lsms.errors import CheckpointError
from lsms.training.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")

    def failing(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, failing)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary left behind


def test_atomic_writes_use_the_umask_mode_and_leftovers_are_cleaned(tmp_path: Path) -> None:
    umask = os.umask(0o027)
    try:
        # safetensors creates its files 0600; an atomic write gives them the usual 0666 & ~umask
        atomic_write(tmp_path / "w.bin", lambda tmp: (tmp.write_bytes(b"x"), tmp.chmod(0o600)))
        replace_dir(tmp_path / "d", lambda tmp: (tmp.mkdir(), atomic_write_text(tmp / "f", "new")))
    finally:
        os.umask(umask)
    assert (tmp_path / "w.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d" / "f").stat().st_mode & 0o777 == 0o640
    (tmp_path / ".w.bin.tmp-99").write_text("half")  # killed while writing a file
    (tmp_path / ".d.tmp-99").mkdir()  # killed while filling a folder
    os.replace(tmp_path / "d", tmp_path / ".d.old-99")  # killed between the two renames of a swap
    (tmp_path / ".e.old-98").mkdir()  # a swap whose second rename happened: the old copy goes
    (tmp_path / "e").mkdir()
    assert clean_interrupted_writes(tmp_path) == [".d.old-99", ".d.tmp-99", ".e.old-98", ".w.bin.tmp-99"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "e", "w.bin"]
    assert (tmp_path / "d" / "f").read_text() == "new"


def test_rng_state_round_trip() -> None:
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(1)  # move on
    restore_rng_state(state)
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(3), expected[2])


def test_save_and_load_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "rng": [capture_rng_state()], "position": {"step": 5}}
    save_checkpoint(tmp_path, 5, model, state)
    save_checkpoint(tmp_path, 7, model, state)
    folder = latest_checkpoint(tmp_path)
    assert folder is not None and folder.name == "step-000007"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000007"]  # older step removed

    fresh = nn.Linear(3, 2)
    loaded = load_checkpoint(folder, fresh)  # torch.load(weights_only=True) inside
    assert torch.equal(fresh.weight, model.weight) and torch.equal(fresh.bias, model.bias)
    assert loaded["step"] == 7 and loaded["position"] == {"step": 5}
    restored = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    restored.load_state_dict(loaded["optimizer"])
    assert torch.equal(
        restored.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )


def test_missing_or_broken_checkpoints(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    model = nn.Linear(3, 2)
    folder = save_checkpoint(tmp_path, 1, model, {})
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(folder, nn.Linear(4, 2))  # shapes do not match
    (folder / "state.pt").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="state.pt"):
        load_checkpoint(folder, model)
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="lacks"):
        latest_checkpoint(tmp_path)
