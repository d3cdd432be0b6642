"""DDP: ``torchrun --nproc_per_node=2 -m lsms.cli train`` on CPU (gloo), then resume with two processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

pytestmark = pytest.mark.slow


def _torchrun(config: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "lsms.cli", "train", "--config", str(config), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _latest_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoint" / (run_dir / "checkpoint" / "latest").read_text().strip()
    return load_file(folder / "model.safetensors")


def test_two_process_training_and_resume(tiny_manifest: Path, tiny_config, tmp_path: Path) -> None:
    # 8 samples over 2 ranks with batch 2: 2 steps per epoch; 3 steps cross an epoch boundary.
    config = tiny_config(tiny_manifest, tmp_path / "full", train={"max_steps": 3, "val_every": 2})
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _torchrun(path)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "full"
    with open(run_dir / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows if r["loss"]] == [1, 2, 3]
    assert [int(r["step"]) for r in rows if r["val_dice"]] == [2, 3]
    step_folder = run_dir / "checkpoint" / "step-000003"
    state = torch.load(step_folder / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2  # one generator state per rank
    assert (run_dir / "best" / "model.safetensors").is_file()

    # Interrupted after step 1 (mid-epoch) and resumed with two processes: same weights.
    part = tmp_path / "part"
    interrupted = _torchrun(path, f"train.run_dir={part}", "train.stop_after_steps=1")
    assert interrupted.returncode == 0, interrupted.stderr[-3000:]
    resumed = _torchrun(path, "--resume", str(part))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = _latest_weights(run_dir), _latest_weights(part)
    assert all(torch.equal(expected[key], got[key]) for key in expected)
