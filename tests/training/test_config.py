"""Training config: paper defaults, YAML round trip, dotted overrides, one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lsms.cli import main
from lsms.errors import ConfigError
from lsms.training.config import Config, dump_config, load_config, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_defaults_follow_the_paper_recipe() -> None:
    config = Config()
    assert (config.optim.lr, config.optim.weight_decay, config.optim.poly_power) == (3e-5, 0.01, 0.9)
    assert (config.train.batch_size, config.train.epochs) == (16, 100)
    assert config.data.image_size == [480, 480]
    assert config.train.threads == 1


def test_overrides_are_parsed_as_yaml_and_coerced(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", {"data": {"train": "x.csv"}, "optim": {"lr": "1e-3"}})
    config = load_config(
        path,
        ["optim.lr=1e-4", "data.image_size=[64,48]", "train.max_steps=5", "model.overrides.depths=[1,1,1,1]"],
    )
    assert config.optim.lr == pytest.approx(1e-4) and isinstance(config.optim.lr, float)
    assert config.data.image_size == [64, 48]
    assert config.train.max_steps == 5
    assert config.model.overrides == {"depths": [1, 1, 1, 1]}
    assert load_config(path, ["data.image_size=96"]).data.image_size == [96, 96]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("optim.lrr=1", "optim.'lrr'"),
        ("trainn.epochs=1", "'trainn'"),
        ("train.epochs=many", "train.epochs"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.precision=fp8", "train.precision"),
        ("optim.lr", "optim.lr"),
        ("data.augment={flip: 0.5}", "data.augment"),
        ("data.augment={hflip: 2}", "data.augment"),
        ("data.augment=3", "data.augment"),
        ("data.holdout=0", "data.holdout"),
        ("data.size_schedule=[[0, 9999, 9999]]", "data.size_schedule"),
        ("data.size_schedule=[[1.5, 64, 64]]", "data.size_schedule"),
        ("optim.warmup_steps=-1", "optim.warmup_steps"),
        ("train.ema=1", "train.ema"),
    ],
)
def test_bad_keys_and_values_name_the_key(tmp_path: Path, override: str, named: str) -> None:
    path = _write(tmp_path / "c.yaml", {"data": {"train": "x.csv"}})
    with pytest.raises(ConfigError, match=None) as info:
        load_config(path, [override])
    assert named in str(info.value)
    assert "\n" not in str(info.value)


def test_recipe_keys_parse(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", {"data": {"train": "x.csv", "image_size": 224}})
    config = load_config(
        path,
        ["data.augment={hflip: 0.5, rotate: 10}", "data.holdout=30", "data.size_schedule=[[0, 160, 160]]"],
    )
    assert config.data.augment == {"hflip": 0.5, "rotate": 10}
    assert config.has_validation and config.data.holdout == 30
    assert load_config(path, ["data.augment=true"]).data.augment is True
    with pytest.raises(ConfigError, match="data.holdout: expected null when data.val or data.val_split"):
        load_config(path, ["data.holdout=30", "data.val_split=val"])


def test_parse_overrides_nests_dotted_keys() -> None:
    assert parse_overrides(["a.b.c=1", "a.d=[1, 2]", "e=null"]) == {
        "a": {"b": {"c": 1}, "d": [1, 2]},
        "e": None,
    }


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = load_config(None, ["data.train=x.csv", "train.val_every=7", "optim.betas=[0.8,0.9]"])
    dump_config(config, tmp_path / "out.yaml")
    assert load_config(tmp_path / "out.yaml") == config


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_shipped_configs_load(name: str) -> None:
    config = load_config(REPO / "configs" / name, ["data.train=x.csv"])
    assert config.model.name


def test_cli_reports_config_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path / "c.yaml", {"data": {"train": "x.csv"}, "optim": {"nope": 1}})
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsms train: error:") and "optim.'nope'" in err and "\n" not in err
