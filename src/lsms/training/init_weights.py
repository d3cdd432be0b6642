"""Start a training run from weights (``model.init_checkpoint``): every tensor of a safetensors file whose
name and shape match the model is loaded, the rest keeps its fresh initialisation.

The source is a folder written by ``save_pretrained`` (``lsms.from_pretrained``'s format; also what
``lsms convert segnext`` writes) or a ``.safetensors`` file. Only safetensors is read: nothing is
unpickled, so a downloaded file cannot run code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from lsms.atomic import atomic_write_text
from lsms.errors import ConfigError
from lsms.models.pretrained import WEIGHTS_NAME

KEY = "model.init_checkpoint"
REPORT_FILE = "init_report.json"


@dataclass
class InitReport:
    """What :func:`load_init_checkpoint` did, key by key (model state-dict names).

    ``loaded + skipped + missing`` are the model's tensors, ``loaded + skipped + unused`` the file's.

    Attributes:
        source: the safetensors file read.
        loaded: tensors copied into the model (same name and shape).
        skipped: names in both whose shapes differ, as ``"name: file (a, b) vs model (c, d)"``.
        missing: model tensors the file lacks (they stay as built: fresh, or a pretrained text encoder's).
        unused: file tensors with no model tensor of that name.
    """

    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.source}: loaded {len(self.loaded)}, skipped {len(self.skipped)} (shape mismatch), "
            f"missing {len(self.missing)} (kept as built), unused {len(self.unused)}"
        )

    def to_json(self, path: Path) -> None:
        atomic_write_text(path, json.dumps({"summary": self.summary(), **asdict(self)}, indent=2) + "\n")


def _weights_file(path: Path) -> Path:
    """The safetensors file behind ``path`` (a checkpoint folder or the file itself), or a ConfigError."""
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise ConfigError(
                f"{KEY}: {path} has no {WEIGHTS_NAME} (expected a save_pretrained folder, e.g. the output of "
                "lsms convert segnext, or a .safetensors file)"
            )
        return weights
    if not path.is_file():
        raise ConfigError(
            f"{KEY}: {path} not found (expected a save_pretrained folder or a .safetensors file)"
        )
    if path.suffix != ".safetensors":
        raise ConfigError(
            f"{KEY}: {path} is not a .safetensors file (only safetensors is read; "
            "convert SegNeXt .pth files with lsms convert segnext)"
        )
    return path


def load_init_checkpoint(model: nn.Module, path: str | Path) -> InitReport:
    """Copy into ``model`` every tensor of ``path`` whose name and shape match; returns the report.

    Dtypes are converted to the model's (a float16 file loads into a float32 model). A file that cannot
    be read, or that matches no tensor at all (another architecture), is a one-line ConfigError.
    """
    from safetensors import SafetensorError, safe_open

    weights = _weights_file(Path(path).expanduser())
    target = model.state_dict()
    report = InitReport(source=str(weights.resolve()))
    matched: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(weights), framework="pt") as handle:
            names = list(handle.keys())
            for name in names:
                if name not in target:
                    report.unused.append(name)
                    continue
                shape = tuple(handle.get_slice(name).get_shape())
                if shape != tuple(target[name].shape):
                    report.skipped.append(f"{name}: file {shape} vs model {tuple(target[name].shape)}")
                    continue
                matched[name] = handle.get_tensor(name)
                report.loaded.append(name)
    except (SafetensorError, OSError) as error:
        raise ConfigError(f"{KEY}: {weights} is not a readable safetensors file ({error})") from None
    if not matched:
        raise ConfigError(
            f"{KEY}: no tensor of {weights} matches the model by name and shape "
            f"({len(names)} in the file, {len(report.skipped)} with another shape; another architecture?)"
        )
    in_file = set(names)
    report.missing = [name for name in target if name not in in_file]
    model.load_state_dict(matched, strict=False)
    return report
