"""Resume that refuses what it cannot honour (and writes nothing then), applies and records what it may
change; non-finite data or losses stop training without touching the last checkpoint or best/;
training checkpoints reference the frozen text encoder; leftovers of interrupted writes are cleaned."""

from __future__ import annotations

import csv
import hashlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file
from tests.training.conftest import _tiny_config, write_tiny_dataset

from lsms.cli import main
from lsms.errors import CheckpointError, ConfigError, DataError, TrainingError
from lsms.training import Config, train
from lsms.training.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def run(tiny_manifest: Path, tiny_config, tiny_bert_dir: Path) -> Callable[..., Path]:
    """``run(run_dir, resume=False, manifest=None, **sections)``: lsms-nano with the tiny BERT."""

    def _run(run_dir: Path, resume: bool = False, manifest: Path | None = None, **sections: dict) -> Path:
        model = {"name": "lsms-nano", "overrides": {"text_encoder": str(tiny_bert_dir)}}
        sections["model"] = {**model, **sections.get("model", {})}
        config = tiny_config(manifest or tiny_manifest, run_dir, **sections)
        return train(Config.from_dict(config), resume=resume)

    return _run


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of a folder (relative path -> SHA-256 of its bytes)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory, tiny_manifest: Path, tiny_bert_dir: Path) -> Path:
    """A run stopped after 2 of 6 steps (batch 2 of 8 samples: halfway through epoch 0)."""
    run_dir = tmp_path_factory.mktemp("interrupted") / "run"
    config = _tiny_config(
        tiny_manifest,
        run_dir,
        model={"name": "lsms-nano", "overrides": {"text_encoder": str(tiny_bert_dir)}},
        train={"stop_after_steps": 2},
    )
    return train(Config.from_dict(config))


REFUSED = {
    "model.name": ({"model": {"name": "lsms"}}, "model.name 'lsms-nano' -> 'lsms'"),
    "model.overrides": ({"model": {"overrides": {"kernel_sizes": [7]}}}, "model.overrides"),
    "data.image_size": ({"data": {"image_size": [96, 96]}}, "data.image_size [64, 64] -> [96, 96]"),
    "data.augment": ({"data": {"augment": True}}, "data.augment False -> True"),
    "train.seed": ({"train": {"seed": 1}}, "train.seed 0 -> 1"),
    "train.batch_size": ({"train": {"batch_size": 4}}, "train.batch_size 2 -> 4"),
    "loss.dice_weight": ({"loss": {"dice_weight": 0.5}}, "loss.dice_weight 1.0 -> 0.5"),
    "optim.lr": ({"optim": {"lr": 1e-4}}, "optim.lr 0.001 -> 0.0001"),
    "optim.grad_clip": ({"optim": {"grad_clip": 1.0}}, "optim.grad_clip None -> 1.0"),
}


@pytest.mark.parametrize("key", list(REFUSED))
def test_refused_changes_are_listed_and_nothing_is_written(run, interrupted: Path, key: str) -> None:
    sections, listed = REFUSED[key]
    before = _snapshot(interrupted)
    with pytest.raises(ConfigError, match="cannot change") as error:
        run(interrupted, resume=True, **sections)
    assert listed in str(error.value) and "\n" not in str(error.value)
    assert _snapshot(interrupted) == before  # config.yaml, log, checkpoint: all as they were


def test_several_refused_changes_are_listed_together(run, interrupted: Path) -> None:
    with pytest.raises(ConfigError) as error:
        run(interrupted, resume=True, train={"seed": 2, "batch_size": 1, "max_steps": 9})
    assert "train.batch_size 2 -> 1; train.seed 0 -> 2" in str(error.value)
    assert "max_steps" not in str(error.value)  # allowed, so not among the refused


def _timed_out(signum: int, frame: object) -> None:
    raise TimeoutError("lsms train --resume did not return within 60 s")


def test_batch_size_change_on_the_command_line_is_refused_at_once(
    interrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # This used to hang forever at 100% CPU (the saved position lay past the new epoch's end).
    before = _snapshot(interrupted)
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(60)
    try:
        code = main(["train", "--resume", str(interrupted), "train.batch_size=4"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("lsms train: error: --resume: ")
    assert "train.batch_size 2 -> 4" in err[0]
    assert _snapshot(interrupted) == before


ALLOWED = {
    "train.max_steps": {"max_steps": 8},
    "train.log_every": {"log_every": 2},
    "train.val_every": {"val_every": 2},
    "train.checkpoint_every": {"checkpoint_every": 1},
    "train.patience": {"patience": 5},
    "train.val_batch_size": {"val_batch_size": 2},
}


@pytest.mark.parametrize("key", list(ALLOWED))
def test_allowed_changes_are_applied_and_recorded(run, tmp_path: Path, key: str) -> None:
    part = run(tmp_path / "run", train={"stop_after_steps": 2})
    change = ALLOWED[key]
    resumed = run(part, resume=True, train=change)
    saved = yaml.safe_load((resumed / "config.yaml").read_text())
    field, value = next(iter(change.items()))
    assert saved["train"][field] == value
    record = (resumed / "resume.log").read_text().splitlines()
    assert len(record) == 1 and f"step 2: {key} " in record[0] and f"-> {value}" in record[0]
    latest = (resumed / "checkpoint" / "latest").read_text().strip()
    assert latest == f"step-{change.get('max_steps', 6):06d}"


def test_a_moved_run_folder_resumes_where_it_now_is(run, tmp_path: Path) -> None:
    part = run(tmp_path / "run", train={"stop_after_steps": 2})
    moved = tmp_path / "moved"
    os.replace(part, moved)
    assert run(moved, resume=True, train={"stop_after_steps": 3}) == moved
    assert f"train.run_dir '{part}' -> '{moved}'" in (moved / "resume.log").read_text()


def test_a_larger_budget_continues_on_its_own_decay(run, tmp_path: Path) -> None:
    part = run(tmp_path / "run", train={"stop_after_steps": 2})
    resumed = run(part, resume=True, train={"max_steps": 10})
    with open(resumed / "log.csv", newline="") as handle:
        lr = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(handle) if r["lr"]}
    assert lr[1] == pytest.approx(1e-3 * (1 - 1 / 6) ** 0.9)  # before: the budget of 6
    assert [lr[k] for k in range(3, 11)] == pytest.approx([1e-3 * (1 - k / 10) ** 0.9 for k in range(3, 11)])


def test_changed_training_data_cannot_restore_the_position(run, tmp_path: Path) -> None:
    manifest = write_tiny_dataset(tmp_path / "data", n_train=8, n_val=4)
    part = run(tmp_path / "run", manifest=manifest, train={"stop_after_steps": 1})
    write_tiny_dataset(tmp_path / "data", n_train=10, n_val=2)  # same file, other rows
    before = _snapshot(part)
    with pytest.raises(ConfigError, match="cannot be restored exactly"):
        run(part, resume=True, manifest=manifest)
    assert _snapshot(part) == before


def _float_tiff_dataset(folder: Path) -> Path:
    """The tiny set with images as float32 TIFFs in [0, 1] (so that one can hold NaN)."""
    manifest = write_tiny_dataset(folder)
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        png = Path(row["image"])
        pixels = np.asarray(Image.open(png), dtype=np.float32) / 255.0
        Image.fromarray(pixels).save(png.with_suffix(".tif"), format="TIFF")
        row["image"] = str(png.with_suffix(".tif"))
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_nan_image_stops_training_and_keeps_best_and_the_checkpoint(run, tmp_path: Path) -> None:
    manifest = _float_tiff_dataset(tmp_path / "data")
    part = run(tmp_path / "run", manifest=manifest, train={"val_every": 1, "stop_after_steps": 2})
    best, checkpoint = _snapshot(part / "best"), _snapshot(part / "checkpoint")
    assert (part / "checkpoint" / "latest").read_text().strip() == "step-000002"
    for path in (tmp_path / "data").glob("img_*.tif"):  # the rest of epoch 0 reads some of them
        Image.fromarray(np.full((64, 64), np.nan, np.float32)).save(path, format="TIFF")
    with pytest.raises(DataError, match=r"img_\d+\.tif: 4096 of 4096 values are NaN or infinite"):
        run(part, resume=True, manifest=manifest, train={"val_every": 1})
    assert _snapshot(part / "best") == best and _snapshot(part / "checkpoint") == checkpoint


def test_non_finite_loss_names_the_samples_and_saves_nothing(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = run(tmp_path / "run", train={"val_every": 1, "stop_after_steps": 2})
    best, checkpoint = _snapshot(part / "best"), _snapshot(part / "checkpoint")
    forward = Trainer._forward
    monkeypatch.setattr(Trainer, "_forward", lambda self, batch: forward(self, batch) * float("nan"))
    with pytest.raises(
        TrainingError, match=r"non-finite loss nan in epoch 0, micro-batch 2 \(samples s\d, s\d\)"
    ):
        run(part, resume=True, train={"val_every": 1})
    assert TrainingError.exit_code == 3
    assert _snapshot(part / "best") == best and _snapshot(part / "checkpoint") == checkpoint


def test_checkpoints_reference_the_frozen_text_encoder(run, tmp_path: Path, tiny_bert_dir: Path) -> None:
    import shutil

    from transformers import BertModel

    encoder_dir = Path(shutil.copytree(tiny_bert_dir, tmp_path / "bert"))
    part = run(
        tmp_path / "run",
        model={"overrides": {"text_encoder": str(encoder_dir)}},
        train={"val_every": 1, "stop_after_steps": 2},
    )
    step = part / "checkpoint" / "step-000002"
    assert not any(key.startswith("text_encoder.") for key in load_file(step / "model.safetensors"))
    assert any(key.startswith("text_encoder.") for key in load_file(part / "best" / "model.safetensors"))
    state = torch.load(step / "state.pt", weights_only=True)
    assert state["text_encoder"]["name"] == str(encoder_dir) and len(state["text_encoder"]["sha256"]) == 64
    umask = os.umask(0)
    os.umask(umask)
    for weights in (step / "model.safetensors", part / "best" / "model.safetensors"):
        assert weights.stat().st_mode & 0o777 == 0o666 & ~umask
    bert = BertModel.from_pretrained(encoder_dir)  # the same folder now holds other weights
    with torch.no_grad():
        next(bert.parameters()).add_(1.0)
    bert.save_pretrained(encoder_dir)
    before = _snapshot(part)
    with pytest.raises(CheckpointError, match="install the same text encoder"):
        run(part, resume=True, model={"overrides": {"text_encoder": str(encoder_dir)}})
    assert _snapshot(part) == before


def test_leftovers_of_interrupted_writes_are_cleaned_on_resume(run, tmp_path: Path) -> None:
    part = run(tmp_path / "run", train={"val_every": 1, "stop_after_steps": 2})
    best = _snapshot(part / "best")
    (part / "checkpoint" / ".step-000003.tmp-4242").mkdir()  # killed while writing a checkpoint
    (part / "checkpoint" / ".step-000003.tmp-4242" / "model.safetensors").write_bytes(b"half")
    os.replace(part / "best", part / ".best.old-4242")  # killed between the two renames of best/
    # No validation in step 3 (only at the epoch's end now), so best/ is the one put back.
    run(part, resume=True, train={"val_every": None, "stop_after_steps": 3})
    names = {p.name for p in part.iterdir()} | {p.name for p in (part / "checkpoint").iterdir()}
    assert not any(".tmp-" in name or ".old-" in name for name in names)
    assert _snapshot(part / "best") == best
    assert (part / "checkpoint" / "latest").read_text().strip() == "step-000003"
