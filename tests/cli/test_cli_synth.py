"""``lsms data synth`` and ``lsms data stats``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from lsms.cli.synth import register
from lsms.errors import ConfigError


def test_cli_synth_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "synth",
            "--out",
            str(tmp_path / "d"),
            "--cases",
            "2",
            "--size",
            "64",
            "--min-lesion-px",
            "20",
            "--no-volumes",
        ]
    )
    assert args.func(args) == 0
    assert not list((tmp_path / "d" / "volumes").glob("*.nii.gz"))
    args = parser.parse_args(
        ["stats", str(tmp_path / "d" / "manifest.csv"), "--json", str(tmp_path / "s.json")]
    )
    assert args.func(args) == 0
    assert "text-free floor" in capsys.readouterr().out
    assert '"floor_dice"' in (tmp_path / "s.json").read_text()
    with pytest.raises(ConfigError, match="--cases"):
        args = parser.parse_args(["synth", "--out", str(tmp_path / "e"), "--cases", "0"])
        args.func(args)
