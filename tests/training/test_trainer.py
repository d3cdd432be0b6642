"""End-to-end training on a tiny set with lsms-nano at 64 px: run folder, exact resume, accumulation,
early stopping, text-free models."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import yaml
from safetensors.torch import load_file, save_file

import lsms
from lsms.errors import ConfigError
from lsms.models.registration import register_model, unregister_model
from lsms.training import Config, train
from lsms.training.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def run(tiny_manifest: Path, tiny_config) -> Callable[..., Path]:
    """``run(run_dir, resume=False, **sections)``: train on the tiny set, return the run folder."""

    def _run(run_dir: Path, resume: bool = False, **sections: dict) -> Path:
        return train(Config.from_dict(tiny_config(tiny_manifest, run_dir, **sections)), resume=resume)

    return _run


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    step_folder = run_dir / "checkpoint" / (run_dir / "checkpoint" / "latest").read_text().strip()
    return load_file(step_folder / "model.safetensors")


def _log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_run_folder_contents(run, tiny_manifest: Path, tmp_path: Path) -> None:
    run_dir = run(tmp_path / "run", train={"max_steps": 4, "val_every": 2})
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["data"]["train"] == str(tiny_manifest) and saved["train"]["run_dir"] == str(run_dir)
    rows = _log(run_dir)
    train_rows = [row for row in rows if row["loss"]]
    val_rows = [row for row in rows if row["val_dice"]]
    assert [int(row["step"]) for row in train_rows] == [1, 2, 3, 4]
    assert [int(row["step"]) for row in val_rows] == [2, 4]
    assert all(0.0 <= float(row["val_pooled_dice"]) <= 1.0 for row in val_rows)  # both conventions logged
    assert all(float(row["images_per_s"]) > 0 for row in train_rows)
    # polynomial decay per iteration: lr_k = lr * (1 - k / 4) ** 0.9 after k steps
    assert [float(row["lr"]) for row in train_rows] == pytest.approx(
        [1e-3 * (1 - k / 4) ** 0.9 for k in range(1, 5)]
    )
    assert any((run_dir / "tensorboard").iterdir())
    metadata = json.loads((run_dir / "best" / "config.json").read_text())
    assert metadata["architecture"] == "lsms-nano"
    assert metadata["preprocess"] == {"image_size": [64, 64], "window": None}
    best = lsms.from_pretrained(run_dir / "best")
    same_as_last = all(torch.equal(best.state_dict()[key], value) for key, value in _weights(run_dir).items())
    dice = [float(row["val_dice"]) for row in val_rows]
    assert same_as_last == (dice[1] > dice[0])  # best/ holds the step with the higher validation Dice
    assert (run_dir / "loss.png").is_file()
    assert "evaluated 4 samples" in (run_dir / "run.log").read_text()  # each validation, in the run's log
    with pytest.raises(ConfigError, match="already holds a run"):
        run(run_dir)


def test_sampled_expressions_train_from_a_synthetic_lesion_table(
    tiny_synth: Path, tiny_manifest: Path, tiny_config, tmp_path: Path
) -> None:
    sampled = {"text_variant": "sampled", "max_val_samples": 2}
    config = tiny_config(tiny_synth, tmp_path / "run", data=sampled, train={"max_steps": 4, "val_every": 4})
    run_dir = train(Config.from_dict(config))
    assert [int(row["step"]) for row in _log(run_dir) if row["loss"]] == [1, 2, 3, 4]
    # Data without a lesions.csv (the tiny quadrant set) cannot draw expressions: one clear line.
    with pytest.raises(ConfigError, match="data.text_variant sampled: .*no lesions.csv"):
        train(
            Config.from_dict(tiny_config(tiny_manifest, tmp_path / "other", data={"text_variant": "sampled"}))
        )


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(run, tmp_path: Path) -> None:
    # 8 samples, batch 2: 4 steps per epoch; stopping after step 2 interrupts the first epoch halfway.
    # Augmentation is on, so the resumed epoch must also replay the per-item random draws.
    sections = {"train": {"max_steps": 6, "val_every": 3}, "data": {"augment": True}}
    full = run(tmp_path / "full", **sections)
    part = run(
        tmp_path / "part",
        train={"max_steps": 6, "val_every": 3, "stop_after_steps": 2},
        data={"augment": True},
    )
    assert (part / "checkpoint" / "latest").read_text().strip() == "step-000002"
    resumed = run(part, resume=True, **sections)
    expected, got = _weights(full), _weights(resumed)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    assert [row["loss"] for row in _log(full)] == [row["loss"] for row in _log(resumed)]
    assert [row["val_dice"] for row in _log(full)] == [row["val_dice"] for row in _log(resumed)]


def test_resume_checks(run, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no checkpoint"):
        run(tmp_path / "nothing", resume=True)
    part = run(tmp_path / "part", train={"max_steps": 4, "stop_after_steps": 2})
    with pytest.raises(ConfigError, match="budget"):
        run(part, resume=True, train={"max_steps": 1})  # a budget may grow or shrink, not go past the run


class _PixelNet(nn.Module):
    """A text-free two-layer conv net without batch statistics, so micro-batches add up exactly."""

    uses_text = False
    text_encoder = None

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B,1,H,W) -> logits (B,1,H,W)."""
        return self.net(image)

    def save_pretrained(self, folder: Path, preprocess: dict | None = None) -> None:
        Path(folder).mkdir(parents=True)
        # contiguous: the trainer may hold the weights in channels-last order
        state = {name: tensor.contiguous() for name, tensor in self.state_dict().items()}
        save_file(state, str(Path(folder) / "model.safetensors"))


@pytest.fixture
def pixelnet() -> Iterator[str]:
    """``test-pixelnet`` registered for one test only, so it never reaches the contract suite over the
    registry or another test."""
    register_model("test-pixelnet")(lambda: _PixelNet())
    yield "test-pixelnet"
    unregister_model("test-pixelnet")


def test_gradient_accumulation_matches_a_larger_batch(run, pixelnet: str, tmp_path: Path) -> None:
    # LSMS has batch norm, whose statistics depend on the micro-batch: use a net without it.
    common = {"max_steps": 2, "val_every": None, "seed": 3}
    model = {"name": pixelnet, "overrides": {}}
    big = run(tmp_path / "big", train={**common, "batch_size": 4}, data={"val_split": None}, model=model)
    accumulated = run(
        tmp_path / "acc",
        train={**common, "batch_size": 2},
        optim={"accumulation_steps": 2},
        data={"val_split": None},
        model=model,
    )
    expected, got = _weights(big), _weights(accumulated)
    assert all(torch.allclose(expected[key], got[key], atol=1e-5) for key in expected)
    changed = _weights(
        run(tmp_path / "b2", train={**common, "batch_size": 2}, data={"val_split": None}, model=model)
    )
    assert not all(torch.allclose(expected[key], changed[key], atol=1e-5) for key in expected)


def test_early_stopping_counts_validations(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(Trainer, "_validate", lambda self: 0.5)  # never improves after the first
    run_dir = run(tmp_path / "run", train={"max_steps": 20, "val_every": 1, "patience": 2})
    assert (run_dir / "checkpoint" / "latest").read_text().strip() == "step-000003"


def test_text_free_model_and_trainable_text_encoder(tiny_manifest: Path, tiny_config, tmp_path: Path) -> None:
    text_free = Trainer(
        Config.from_dict(
            tiny_config(
                tiny_manifest, tmp_path / "a", model={"name": "lsms-nano", "overrides": {"use_text": False}}
            )
        )
    )
    assert not text_free.uses_text and text_free.cache is None
    assert text_free.fit() == tmp_path / "a"
    tuned = Trainer(
        Config.from_dict(
            tiny_config(
                tiny_manifest,
                tmp_path / "b",
                model={"freeze_text": False},
                optim={"text_lr": 1e-5},
                train={"max_steps": 1},
            )
        )
    )
    assert tuned.cache is None
    assert [group["initial_lr"] for group in tuned.optimizer.param_groups] == [1e-3, 1e-5]
    before = next(tuned.model.text_encoder.parameters()).detach().clone()
    tuned.fit()
    assert not torch.equal(before, next(tuned.model.text_encoder.parameters()))


def test_frozen_text_encoder_is_the_cached_default_and_does_not_change(
    tiny_manifest: Path, tiny_config, tmp_path: Path
) -> None:
    trainer = Trainer(
        Config.from_dict(
            tiny_config(tiny_manifest, tmp_path / "run", train={"max_steps": 2, "val_every": None})
        )
    )
    assert trainer.model.text_encoder.frozen and trainer.cache is not None
    assert len(trainer.optimizer.param_groups) == 1  # no text group
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.fit()
    after = dict(trainer.model.named_parameters())
    text = [name for name in before if name.startswith("text_encoder.")]
    assert text and all(torch.equal(before[name], after[name]) for name in text)
    assert any(not torch.equal(before[name], after[name]) for name in before if name not in text)


def test_bf16_training_lowers_the_loss_like_fp32(run, tmp_path: Path) -> None:
    losses = {}
    for precision in ("fp32", "bf16"):
        run_dir = run(
            tmp_path / precision,
            train={"precision": precision, "max_steps": 12, "val_every": None, "batch_size": 4},
            data={"val_split": None},
        )
        losses[precision] = [float(row["loss"]) for row in _log(run_dir) if row["loss"]]
        assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["precision"] == precision
    first, last = (
        {p: sum(v[:3]) / 3 for p, v in losses.items()},
        {p: sum(v[-3:]) / 3 for p, v in losses.items()},
    )
    assert last["fp32"] < first["fp32"] and last["bf16"] < first["bf16"]
    assert abs(last["bf16"] - last["fp32"]) < 0.1 * last["fp32"]  # the same course, to bf16's precision


@pytest.mark.parametrize("preset", ["lsms", "lsms-f1"])
def test_each_decoder_alignment_trains_saves_and_loads(
    run, tmp_path: Path, tiny_bert_dir: Path, preset: str
) -> None:
    small = {"embed_dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1], "decoder_channels": 32}
    run_dir = run(
        tmp_path / preset,
        model={"name": preset, "overrides": {**small, "text_encoder": str(tiny_bert_dir)}},
        train={"max_steps": 1, "val_every": None},
        data={"val_split": None},
    )
    model = lsms.from_pretrained(run_dir / "best")
    assert model.architecture == preset
    assert model.config.decoder_align_stage == (2 if preset == "lsms" else 1)
    assert all(torch.isfinite(p).all() for p in model.parameters())
