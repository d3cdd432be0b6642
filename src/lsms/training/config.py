"""Training configuration: dataclasses with defaults, YAML load/dump, dotted ``key=value`` overrides, checks.

A config has five sections, each a dataclass: ``model``, ``data``, ``optim``, ``loss`` and ``train``.
Defaults follow the paper's recipe (section 4.3): AdamW with weight decay 0.01, learning rate 3e-5 with
polynomial decay (power 0.9, per iteration), batch 16, 100 epochs. Every key is listed in docs/training.md.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lsms.atomic import atomic_write_text
from lsms.data.samples import TRAINING_TEXT_VARIANTS
from lsms.errors import ConfigError
from lsms.runtime import PRECISIONS

# What a resumed run may change: the budget, logging, validation and checkpoint cadence, and how (not
# what) it computes. Everything else (model, data, image size, seed, batch size, optimiser, loss, precision,
# threshold) defines the run and is refused by :func:`resume_changes`.
RESUMABLE_KEYS = frozenset(
    {
        "train.epochs",
        "train.max_steps",
        "train.log_every",
        "train.progress",
        "train.val_every",
        "train.val_batch_size",
        "train.patience",
        "train.checkpoint_every",
        "train.stop_after_steps",
        "train.threads",
        "train.device",
        "train.cache_text",
        "train.channels_last",
        "train.output_dir",
        "train.run_dir",  # a run folder that was moved resumes where it now is
        "data.num_workers",
    }
)


@dataclass
class ModelConfig:
    """Which registered model to train.

    ``name`` is a registry name (``lsms``, ``lsms-nano``, ``unet``, ...); ``overrides`` go to
    ``lsms.create_model(name, **overrides)``. ``freeze_text``: True freezes the text encoder (its word
    features are then cached once per sentence), False fine-tunes it, None keeps the model's default.
    ``init_checkpoint``: start a new run from weights, a ``save_pretrained`` folder (e.g. the output of
    ``lsms convert segnext``) or a .safetensors file; tensors matching by name and shape are loaded
    (``lsms.training.init_weights``). Not applied on ``--resume``, whose checkpoint holds the weights.
    """

    name: str = "lsms"
    overrides: dict[str, Any] = field(default_factory=dict)
    freeze_text: bool | None = None
    init_checkpoint: str | None = None


@dataclass
class DataConfig:
    """Where the samples are (``lsms.data.loading.load_samples(path, split)``) and how to read them.

    ``val`` defaults to the ``train`` path (with ``val_split``); no validation when both ``val`` and
    ``val_split`` are unset. ``holdout``: instead, validate (and select the best checkpoint) on this
    many training samples, a fixed seeded draw that is left out of training, so that the whole
    validation split stays a clean report split. Relative paths are taken from the current directory
    and written absolute into the run's config.yaml. ``max_train_samples`` / ``max_val_samples`` keep
    the first N samples (quick CPU runs).

    ``augment``: false, true (intensity jitter) or a mapping of ``lsms.data.transforms.AugmentConfig``
    fields (``hflip``, ``brightness``, ``contrast``, ``gamma``, ``rotate``, ``scale``, ``translate``).
    ``size_schedule``: progressive resizing, ``[[from_fraction, height, width], ...]``: from that
    fraction of the step budget on, training batches are resized to that size (at most
    ``image_size``); validation and the saved model always use ``image_size``.
    """

    train: str = ""
    train_split: str | None = None
    val: str | None = None
    val_split: str | None = None
    image_size: list[int] = field(default_factory=lambda: [480, 480])
    window: str | None = None
    text_variant: str = "full"
    augment: bool | dict[str, float] = False
    num_workers: int = 0
    max_train_samples: int | None = None
    max_val_samples: int | None = None
    holdout: int | None = None
    size_schedule: list[list[float]] | None = None


@dataclass
class OptimConfig:
    """AdamW and the per-iteration polynomial decay ``lr * (1 - step / total_steps) ** poly_power``.

    ``text_lr`` is the learning rate of a trainable text encoder (None: ``lr``). ``warmup_steps``: the
    learning rate rises linearly from 0 over that many first steps (then follows the decay).
    ``accumulation_steps`` micro-batches make one optimiser step. ``grad_clip`` is a max gradient norm
    (None: no clipping).
    """

    lr: float = 3e-5
    text_lr: float | None = None
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    poly_power: float = 0.9
    warmup_steps: int = 0
    accumulation_steps: int = 1
    grad_clip: float | None = None


@dataclass
class LossConfig:
    """Weights of ``lsms.losses.DiceBCELoss``: ``dice_weight * Dice + bce_weight * BCE-with-logits``."""

    dice_weight: float = 1.0
    bce_weight: float = 1.0


@dataclass
class TrainConfig:
    """Budget, validation, checkpoints, logging and reproducibility.

    Budget: ``epochs``, or ``max_steps`` optimiser steps when set (it wins). Validation every
    ``val_every`` optimiser steps, or at the end of each epoch when None. ``patience``: stop after that
    many validations without a better Dice (None: never). ``batch_size`` is per process and per
    micro-batch. ``run_dir``: the run folder (None: ``output_dir/<model.name>-<time>``).
    ``stop_after_steps`` is a debug option: checkpoint and return after that many optimiser steps, as if
    the run had been interrupted (``--resume`` continues it). ``ema``: keep an exponential moving
    average of the weights with this decay (e.g. 0.999; None: off); validation, ``best/`` and the final
    model then use the averaged weights.
    """

    epochs: int = 100
    max_steps: int | None = None
    batch_size: int = 16
    val_every: int | None = None
    val_batch_size: int = 8
    threshold: float = 0.5
    patience: int | None = None
    checkpoint_every: int | None = None
    log_every: int = 10
    precision: str = "auto"
    channels_last: bool = True
    device: str = "auto"
    seed: int = 0
    threads: int = 1
    cache_text: bool = True
    output_dir: str = "runs"
    run_dir: str | None = None
    progress: bool = True
    stop_after_steps: int | None = None
    ema: float | None = None


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "loss": LossConfig,
    "train": TrainConfig,
}


@dataclass
class Config:
    """A full training configuration (see the section classes for the keys)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> Config:
        """Build and check a config; unknown keys and wrong types raise ConfigError naming the key."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping of sections {list(SECTIONS)}, got {type(data).__name__}"
            )
        sections = {}
        for name, value in data.items():
            if name not in SECTIONS:
                raise ConfigError(f"{source}: unknown key {name!r}; expected one of {', '.join(SECTIONS)}")
            sections[name] = _build_section(SECTIONS[name], value, f"{name}", source)
        config = cls(**sections)
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        """Check values that types alone do not cover; raise ConfigError naming the key."""
        checks: list[tuple[bool, str, str]] = [
            (bool(self.model.name), "model.name", "a registered model name"),
            (
                self.model.init_checkpoint is None or bool(self.model.init_checkpoint.strip()),
                "model.init_checkpoint",
                "a checkpoint folder or .safetensors path, or null",
            ),
            (
                len(self.data.image_size) == 2 and all(s > 0 for s in self.data.image_size),
                "data.image_size",
                "[height, width] with positive integers",
            ),
            (
                self.data.text_variant in TRAINING_TEXT_VARIANTS,
                "data.text_variant",
                f"one of {TRAINING_TEXT_VARIANTS}",
            ),
            (self.data.num_workers >= 0, "data.num_workers", "an integer >= 0"),
            (self.data.holdout is None or self.data.holdout >= 1, "data.holdout", "an integer >= 1 or null"),
            (
                self.data.holdout is None or (self.data.val is None and self.data.val_split is None),
                "data.holdout",
                "null when data.val or data.val_split is set (validate on one or the other)",
            ),
            (
                self.data.size_schedule is None
                or all(
                    len(entry) == 3
                    and 0 <= entry[0] < 1
                    and all(
                        0 < side <= limit for side, limit in zip(entry[1:], self.data.image_size, strict=True)
                    )
                    for entry in self.data.size_schedule
                ),
                "data.size_schedule",
                "[[from_fraction in [0, 1), height, width], ...] with sizes no larger than data.image_size",
            ),
            (self.optim.warmup_steps >= 0, "optim.warmup_steps", "an integer >= 0"),
            (self.train.ema is None or 0 < self.train.ema < 1, "train.ema", "a decay in (0, 1) or null"),
            (self.optim.lr > 0, "optim.lr", "a value > 0"),
            (self.optim.text_lr is None or self.optim.text_lr >= 0, "optim.text_lr", "a value >= 0 or null"),
            (self.optim.weight_decay >= 0, "optim.weight_decay", "a value >= 0"),
            (
                len(self.optim.betas) == 2 and all(0 <= b < 1 for b in self.optim.betas),
                "optim.betas",
                "two values in [0, 1)",
            ),
            (self.optim.poly_power >= 0, "optim.poly_power", "a value >= 0"),
            (self.optim.accumulation_steps >= 1, "optim.accumulation_steps", "an integer >= 1"),
            (
                self.optim.grad_clip is None or self.optim.grad_clip > 0,
                "optim.grad_clip",
                "a value > 0 or null",
            ),
            (
                self.loss.dice_weight >= 0
                and self.loss.bce_weight >= 0
                and self.loss.dice_weight + self.loss.bce_weight > 0,
                "loss",
                "weights >= 0, not both 0",
            ),
            (self.train.epochs >= 1, "train.epochs", "an integer >= 1"),
            (self.train.max_steps is None or self.train.max_steps >= 1, "train.max_steps", "an integer >= 1"),
            (self.train.batch_size >= 1, "train.batch_size", "an integer >= 1"),
            (self.train.val_batch_size >= 1, "train.val_batch_size", "an integer >= 1"),
            (self.train.val_every is None or self.train.val_every >= 1, "train.val_every", "an integer >= 1"),
            (self.train.patience is None or self.train.patience >= 1, "train.patience", "an integer >= 1"),
            (
                self.train.checkpoint_every is None or self.train.checkpoint_every >= 1,
                "train.checkpoint_every",
                "an integer >= 1",
            ),
            (self.train.log_every >= 1, "train.log_every", "an integer >= 1"),
            (self.train.precision in PRECISIONS, "train.precision", f"one of {PRECISIONS}"),
            (self.train.threads >= 1, "train.threads", "an integer >= 1"),
            (
                self.train.stop_after_steps is None or self.train.stop_after_steps >= 1,
                "train.stop_after_steps",
                "an integer >= 1",
            ),
            (0 < self.train.threshold < 1, "train.threshold", "a value in (0, 1)"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(f"{source}: {key}: expected {expected}")
        if isinstance(self.data.augment, dict):
            from lsms.data.transforms import AugmentConfig

            try:
                AugmentConfig(**self.data.augment)
            except (TypeError, ValueError) as error:
                known = ", ".join(f.name for f in fields(AugmentConfig))
                raise ConfigError(f"{source}: data.augment: {error} (keys: {known})") from None
        if not self.data.train:
            raise ConfigError(
                f"{source}: data.train: expected the training data path (manifest or dataset folder)"
            )

    @property
    def has_validation(self) -> bool:
        return self.data.val is not None or self.data.val_split is not None or self.data.holdout is not None


def _build_section(cls: type, value: Any, prefix: str, source: str) -> Any:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {prefix}: expected a mapping, got {value!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, item in value.items():
        if key not in known:
            raise ConfigError(
                f"{source}: unknown key {prefix}.{key!r}; expected one of {', '.join(sorted(known))}"
            )
        kwargs[key] = _coerce(item, hints[key], f"{prefix}.{key}", source)
    return cls(**kwargs)


def _coerce(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Check ``value`` against a field annotation; numbers written as strings (YAML's ``1e-4``) become floats."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for option in options[:-1]:  # e.g. ``bool | dict``: the first type that fits
            try:
                return _coerce(value, option, key, source)
            except ConfigError:
                pass
        annotation = options[-1]
        args = typing.get_args(annotation)
    origin = typing.get_origin(annotation) or annotation
    try:
        if origin is bool and isinstance(value, bool):
            return value
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin is float and not isinstance(value, bool) and isinstance(value, (int, float, str)):
            return float(value)
        if origin is str and isinstance(value, str):
            return value
        if origin is list and isinstance(value, (list, tuple)):
            return [_coerce(v, args[0], key, source) for v in value]
        if origin is list and args[0] is int and isinstance(value, int) and not isinstance(value, bool):
            return [value, value]  # image_size: 224 means 224x224
        if origin is dict and isinstance(value, dict):
            return dict(value)
    except (ValueError, ConfigError):
        pass
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{source}: {key}: expected {name}, got {value!r}")


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=1e-4", "data.image_size=[64,64]"]`` -> nested dict; values parsed with yaml.safe_load."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: expected dotted key=value, e.g. optim.lr=1e-4")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"override {item!r}: value is not valid YAML ({error.__class__.__name__})"
            ) from None
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is already set to a value")
        node[leaf] = value
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge (``update`` wins); a section key that is not a mapping is replaced whole."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (None: all defaults), apply dotted overrides, check everything."""
    data: dict[str, Any] = {}
    source = "config"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections {list(SECTIONS)}")
    if overrides:
        data = merge(data, parse_overrides(overrides))
        source = f"{source} with overrides"
    return Config.from_dict(data, source)


def dump_config(config: Config, path: str | Path) -> None:
    """Write the config as YAML (the run folder's config.yaml), atomically."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def _flatten(config: Config) -> dict[str, Any]:
    return {
        f"{section}.{key}": value
        for section, values in config.to_dict().items()
        for key, value in values.items()
    }


def resume_changes(saved: Config, requested: Config, source: str) -> list[tuple[str, Any, Any]]:
    """The fields ``requested`` changes from the ``saved`` config of a run, as (key, old, new).

    Raises one ConfigError listing every change outside RESUMABLE_KEYS: a run cannot honour a new
    model, data, image size, seed, batch size, optimiser or loss halfway.
    """
    old, new = _flatten(saved), _flatten(requested)
    changes = [(key, old[key], new[key]) for key in old if old[key] != new[key]]
    refused = [
        f"{key} {before!r} -> {after!r}" for key, before, after in changes if key not in RESUMABLE_KEYS
    ]
    if refused:
        raise ConfigError(
            f"--resume: {source} was trained with other settings; cannot change {'; '.join(refused)} "
            "(start a new run for that)"
        )
    return changes


def replace_section(config: Config, section: str, **changes: Any) -> Config:
    """A copy of ``config`` with fields of one section replaced."""
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **changes)})
