"""``model.init_checkpoint``: a new run starts from the matching tensors of a save_pretrained folder or a
.safetensors file, reports loaded / skipped / missing / unused keys, and refuses files it cannot use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

import lsms
from lsms.cli import main
from lsms.errors import ConfigError
from lsms.training import Config, train
from lsms.training.init_weights import load_init_checkpoint
from lsms.training.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def saved_nano(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An lsms-nano checkpoint folder whose weights differ from a fresh seed-0 model's."""
    torch.manual_seed(123)
    model = lsms.create_model("lsms-nano")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01)  # also moves the zero-initialised branch ends
    return model.save_pretrained(tmp_path_factory.mktemp("init") / "nano")


def test_a_new_run_starts_from_every_matching_tensor(
    saved_nano: Path, tiny_manifest: Path, tiny_config, tmp_path: Path, capsys
) -> None:
    trainer = Trainer(
        Config.from_dict(
            tiny_config(tiny_manifest, tmp_path / "run", model={"init_checkpoint": str(saved_nano)})
        )
    )
    saved = load_file(saved_nano / "model.safetensors")
    state = trainer.model.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in saved.items())
    report = json.loads((tmp_path / "run" / "init_report.json").read_text())
    assert (
        sorted(report["loaded"]) == sorted(saved)
        and not report["skipped"] + report["missing"] + report["unused"]
    )
    assert report["source"] == str((saved_nano / "model.safetensors").resolve())
    assert f"loaded {len(saved)}, skipped 0 (shape mismatch), missing 0" in capsys.readouterr().out
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert written["model"]["init_checkpoint"] == str(saved_nano.resolve())


def test_shape_mismatches_missing_and_unused_tensors_are_reported(saved_nano: Path, tmp_path: Path) -> None:
    tensors = load_file(saved_nano / "model.safetensors")
    reshaped, dropped = "stem.layers.0.weight", "decoder.head.classifier.weight"
    assert {reshaped, dropped} <= set(tensors)
    tensors[reshaped] = torch.zeros(3, 3)
    del tensors[dropped]
    tensors["not.in.the.model"] = torch.zeros(2)
    path = tmp_path / "partial.safetensors"
    save_file({name: tensor.half() for name, tensor in tensors.items()}, path)  # dtypes are converted

    torch.manual_seed(0)
    model = lsms.create_model("lsms-nano")
    fresh = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    report = load_init_checkpoint(model, path)
    assert report.skipped == [f"{reshaped}: file (3, 3) vs model {tuple(fresh[reshaped].shape)}"]
    assert report.missing == [dropped]
    assert report.unused == ["not.in.the.model"]
    assert len(report.loaded) == len(tensors) - 2
    state = model.state_dict()
    assert torch.equal(state[reshaped], fresh[reshaped]) and torch.equal(state[dropped], fresh[dropped])
    assert all(torch.equal(state[name], tensors[name].half().to(state[name].dtype)) for name in report.loaded)


def test_unusable_init_checkpoints_are_one_line_config_errors(saved_nano: Path, tmp_path: Path) -> None:
    model = lsms.create_model("lsms-nano")
    (tmp_path / "empty").mkdir()
    torch.save({"x": torch.zeros(1)}, tmp_path / "weights.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    save_file({"other.weight": torch.zeros(2, 2)}, tmp_path / "foreign.safetensors")
    cases = {
        tmp_path / "nowhere": "not found",
        tmp_path / "empty": "has no model.safetensors",
        tmp_path / "weights.pth": "is not a .safetensors file",
        tmp_path / "broken.safetensors": "not a readable safetensors file",
        tmp_path / "foreign.safetensors": "no tensor of .* matches the model",
    }
    for path, message in cases.items():
        with pytest.raises(ConfigError, match=message) as error:
            load_init_checkpoint(model, path)
        assert str(error.value).startswith("model.init_checkpoint: ") and "\n" not in str(error.value)


def test_cli_reports_a_bad_init_checkpoint_in_one_line(
    tiny_manifest: Path, tiny_config, tmp_path: Path, capsys
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_manifest, tmp_path / "run")))
    assert main(["train", "--config", str(config), f"model.init_checkpoint={tmp_path / 'nowhere'}"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lsms train: error:")]
    assert len(errors) == 1 and "model.init_checkpoint" in errors[0] and "not found" in errors[0]


def test_resume_does_not_read_the_init_checkpoint_again(
    saved_nano: Path, tiny_manifest: Path, tiny_config, tmp_path: Path
) -> None:
    source = shutil.copytree(saved_nano, tmp_path / "source")
    run_dir = tmp_path / "run"
    config = tiny_config(
        tiny_manifest,
        run_dir,
        model={"init_checkpoint": str(source)},
        train={"max_steps": 2, "stop_after_steps": 1},
    )
    train(Config.from_dict(config))
    shutil.rmtree(source)  # the resumed run's checkpoint holds the weights
    config["train"]["stop_after_steps"] = None
    assert train(Config.from_dict(config), resume=True) == run_dir
    assert (run_dir / "checkpoint" / "latest").read_text().strip() == "step-000002"


def test_a_run_starts_from_the_output_of_lsms_convert_segnext(
    tiny_manifest: Path, tiny_config, tmp_path: Path
) -> None:
    dim = lsms.create_model("lsms-nano").config.embed_dims[0]
    imagenet = torch.randn(dim, 1, 5, 5, generator=torch.Generator().manual_seed(5))
    save_file(
        {"backbone.block1.0.attn.spatial_gating_unit.conv0.weight": imagenet}, tmp_path / "mscan.safetensors"
    )
    converted = tmp_path / "converted"
    assert (
        main(
            [
                "convert",
                "segnext",
                str(tmp_path / "mscan.safetensors"),
                "--model",
                "lsms-nano",
                "--out",
                str(converted),
            ]
        )
        == 0
    )
    config = tiny_config(tiny_manifest, tmp_path / "run", model={"init_checkpoint": str(converted)})
    trainer = Trainer(Config.from_dict(config))
    torch.testing.assert_close(trainer.model.stages[0][0].attention.pre_conv.weight, imagenet)
    report = json.loads((tmp_path / "run" / "init_report.json").read_text())
    assert "stages.0.0.attention.pre_conv.weight" in report["loaded"] and not report["skipped"]
