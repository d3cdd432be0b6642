"""The CPU recipe's knobs: warm-up, held-out selection, moving average of the weights, progressive
resizing and geometric augmentation; all of them together still resume exactly."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lsms
from lsms.errors import ConfigError
from lsms.training import Config, train
from lsms.training.trainer import Trainer, split_holdout

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

RECIPE = {
    "data": {
        "val_split": None,
        "holdout": 2,
        "augment": {"hflip": 0.5, "rotate": 10, "scale": 0.1, "translate": 0.05},
        "image_size": [96, 96],
        "size_schedule": [[0, 64, 64], [0.5, 96, 96]],
    },
    "optim": {"warmup_steps": 2},
    "train": {"ema": 0.9, "max_steps": 6, "val_every": 3},
}


@pytest.fixture
def run(tiny_manifest: Path, tiny_config) -> Callable[..., Path]:
    def _run(run_dir: Path, resume: bool = False, **sections: dict) -> Path:
        merged = {key: {**RECIPE.get(key, {}), **sections.get(key, {})} for key in {*RECIPE, *sections}}
        return train(Config.from_dict(tiny_config(tiny_manifest, run_dir, **merged)), resume=resume)

    return _run


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _latest(run_dir: Path, name: str) -> dict[str, torch.Tensor]:
    step = (run_dir / "checkpoint" / "latest").read_text().strip()
    return load_file(run_dir / "checkpoint" / step / name)


def test_the_recipe_resumes_exactly_and_selects_the_moving_average(run, tmp_path: Path) -> None:
    full = run(tmp_path / "full")
    part = run(tmp_path / "part", train={"stop_after_steps": 2})
    resumed = run(part, resume=True)
    for name in ("model.safetensors", "ema.safetensors"):
        expected, got = _latest(full, name), _latest(resumed, name)
        assert all(torch.equal(expected[key], got[key]) for key in expected), name
    assert [r["loss"] for r in _rows(full)] == [r["loss"] for r in _rows(resumed)]
    assert [r["val_dice"] for r in _rows(full)] == [r["val_dice"] for r in _rows(resumed)]
    # the averaged weights differ from the trained ones, and they are what best/ holds
    model, ema = _latest(full, "model.safetensors"), _latest(full, "ema.safetensors")
    assert any(not torch.equal(model[key], ema[key]) for key in model)
    best = lsms.from_pretrained(full / "best").state_dict()
    val = [float(r["val_dice"]) for r in _rows(full) if r["val_dice"]]
    if val[-1] > val[0]:
        assert all(torch.equal(best[key], ema[key]) for key in ema)


def test_warmup_then_polynomial_decay(run, tmp_path: Path) -> None:
    run_dir = run(tmp_path / "run", optim={"warmup_steps": 3}, train={"max_steps": 4, "ema": None})
    lr = [float(r["lr"]) for r in _rows(run_dir) if r["lr"]]
    # logged after step k: the learning rate of step k + 1
    expected = [1e-3 * min(1, (k + 1) / 3) * (1 - k / 4) ** 0.9 for k in range(1, 5)]
    assert lr == pytest.approx(expected)


def test_size_schedule_sets_the_training_size(tiny_manifest: Path, tiny_config, tmp_path: Path) -> None:
    trainer = Trainer(Config.from_dict(tiny_config(tiny_manifest, tmp_path / "run", **RECIPE)))
    sizes = []
    for step in range(6):
        trainer.position.step = step
        sizes.append(trainer._train_size())
    assert sizes == [(64, 64)] * 3 + [(96, 96)] * 3


def test_holdout_is_fixed_disjoint_and_checked(tiny_manifest: Path, tiny_config, tmp_path: Path) -> None:
    trainer = Trainer(Config.from_dict(tiny_config(tiny_manifest, tmp_path / "run", **RECIPE)))
    held = {sample.id for sample in trainer.val_samples}
    trained = {sample.id for sample in trainer.dataset.samples}
    assert len(held) == 2 and not held & trained and len(trained) == 6
    samples = list(range(10))
    assert split_holdout(samples, 3) == split_holdout(samples, 3)  # whatever train.seed is
    with pytest.raises(ConfigError, match="data.holdout: 8 held-out samples leave none of the 8"):
        split_holdout(list(range(8)), 8)
