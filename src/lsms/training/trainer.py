"""The training loop: AdamW + polynomial decay, Dice + BCE, AMP, accumulation, DDP, exact resume.

Entry point :func:`train`. One optimiser step is ``optim.accumulation_steps`` micro-batches of
``train.batch_size`` images per process. The learning rate follows the paper's per-iteration
polynomial decay over the whole budget (after an optional linear warm-up). Validation (rank 0) picks
the best checkpoint by Dice, on the validation split or on samples held out of the training data,
with the weights' moving average when ``train.ema`` is on.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from lsms.atomic import clean_interrupted_writes, replace_dir
from lsms.data.samples import DRAWN_TEXT_VARIANTS
from lsms.errors import CheckpointError, ConfigError, DataError, TrainingError
from lsms.logs import run_log
from lsms.losses import DiceBCELoss
from lsms.models.pretrained import tensors_sha256
from lsms.preprocess import Preprocess, check_input_size
from lsms.runtime import autocast, autocast_dtype, resolve_device, set_channels_last
from lsms.training.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from lsms.training.config import Config, dump_config, load_config, replace_section, resume_changes
from lsms.training.distributed import (
    DistInfo,
    all_reduce_sum,
    broadcast_object,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from lsms.training.init_weights import REPORT_FILE as INIT_REPORT_FILE
from lsms.training.init_weights import load_init_checkpoint
from lsms.training.text_cache import TextFeatureCache

logger = logging.getLogger("lsms.train")

CONFIG_FILE = "config.yaml"
LOG_FILE = "log.csv"
RESUME_LOG = "resume.log"
BEST_DIR = "best"
CHECKPOINT_DIR = "checkpoint"
# The held-out selection samples depend on this fixed seed, not on train.seed: runs with different
# seeds are then selected on the same images.
HOLDOUT_SEED = 0


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive NumPy's and Python's seeds from it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@contextmanager
def _preserved_rng() -> Iterator[None]:
    """Run a block (validation) without moving any global generator, so training numbers do not depend
    on when or whether it ran."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


class CsvLog:
    """The run's log.csv: one row per logging step or validation; new columns rewrite the header."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                # Rows past the checkpoint will be logged again by the resumed run.
                self.rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        self.columns: list[str] = list(dict.fromkeys(key for row in self.rows for key in row))
        self._rewrite()

    def _rewrite(self) -> None:
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        new = [key for key in row if key not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
            return
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow(row)


@dataclass
class _Position:
    """Where training stands; saved in every checkpoint."""

    step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of this epoch already consumed (this rank)
    best_dice: float = -math.inf
    bad_evals: int = 0  # validations since the last improvement
    last_val_step: int = -1


def _frozen_text_sha256(model: nn.Module) -> str | None:
    """SHA-256 of a frozen text encoder's weights; None without one or when it is trained."""
    encoder = getattr(model, "text_encoder", None)
    return tensors_sha256(encoder.state_dict()) if encoder is not None and encoder.frozen else None


def _set_text_trainable(model: nn.Module, trainable: bool) -> None:
    encoder = model.text_encoder
    if not trainable:
        encoder.freeze()
        return
    encoder.frozen = False
    for parameter in encoder.parameters():
        parameter.requires_grad_(True)


def build_model(config: Config) -> nn.Module:
    """``create_model(model.name, **model.overrides)``, with ``model.freeze_text`` applied."""
    from lsms.registry import create_model

    try:
        model = create_model(config.model.name, **config.model.overrides)
    except KeyError as error:
        raise ConfigError(f"model.name: {error.args[0]}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"model.overrides for {config.model.name!r}: {error}") from None
    if config.model.freeze_text is not None and getattr(model, "text_encoder", None) is not None:
        _set_text_trainable(model, not config.model.freeze_text)
    return model


def _param_groups(model: nn.Module, config: Config) -> list[dict[str, Any]]:
    """The visual network at ``optim.lr``; a trainable text encoder at ``optim.text_lr`` (default lr)."""
    encoder = getattr(model, "text_encoder", None)
    text_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    main = [p for p in model.parameters() if p.requires_grad and id(p) not in text_ids]
    text = [p for p in model.parameters() if p.requires_grad and id(p) in text_ids]
    groups = [{"params": main, "lr": config.optim.lr}]
    if text:
        groups.append(
            {
                "params": text,
                "lr": config.optim.text_lr if config.optim.text_lr is not None else config.optim.lr,
            }
        )
    return groups


def _load_samples(path: str, split: str | None, limit: int | None, key: str) -> list:
    from lsms.data.loading import load_samples

    samples = load_samples(path, split=split)
    if not samples:
        raise ConfigError(f"{key}: no samples in {path} (split {split!r})")
    return samples[:limit] if limit else samples


def _slice_facts(config: Config) -> dict | None:
    """The lesion facts that ``data.text_variant: sampled`` draws its expressions from (else None)."""
    if config.data.text_variant != "sampled":
        return None
    from lsms.data.lesions import load_slice_facts

    try:
        return load_slice_facts(config.data.train)
    except DataError as error:
        raise ConfigError(f"data.text_variant sampled: {error}") from error


def split_holdout(samples: list, count: int) -> tuple[list, list]:
    """(training, held-out): ``count`` samples drawn with ``HOLDOUT_SEED``, both lists in data order."""
    if count >= len(samples):
        raise ConfigError(
            f"data.holdout: {count} held-out samples leave none of the {len(samples)} training samples"
        )
    chosen = set(np.random.default_rng(HOLDOUT_SEED).permutation(len(samples))[:count].tolist())
    kept = [sample for index, sample in enumerate(samples) if index not in chosen]
    return kept, [sample for index, sample in enumerate(samples) if index in chosen]


def _make_run_dir(config: Config, info: DistInfo) -> Path:
    if config.train.run_dir:
        return Path(config.train.run_dir).resolve()
    name = None
    if info.is_main:
        name = f"{config.model.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    return (Path(config.train.output_dir) / broadcast_object(name)).resolve()


def _absolute_paths(config: Config, run_dir: Path) -> Config:
    """The config as written to the run folder: absolute data and init-checkpoint paths, the run folder."""
    data = config.to_dict()
    for section, key in (("data", "train"), ("data", "val"), ("model", "init_checkpoint")):
        if data[section][key]:
            data[section][key] = str(Path(data[section][key]).expanduser().resolve())
    data["train"]["run_dir"] = str(run_dir)
    return Config.from_dict(data, "resolved config")


class Trainer:
    """One training run (see :func:`train`). Built on every rank; rank 0 logs, validates and saves."""

    def __init__(self, config: Config, resume: bool = False) -> None:
        torch.set_num_threads(config.train.threads)
        self.info = init_distributed(
            "cuda" if config.train.device != "cpu" and torch.cuda.is_available() else "cpu"
        )
        self.device = resolve_device(config.train.device, self.info.local_rank)
        self.run_dir = _make_run_dir(config, self.info)
        self.config = config = _absolute_paths(config, self.run_dir)
        self.resume = resume
        # Checked before anything is built or written: a refused resume leaves the run as it was.
        self.changes = self._check_resume_config() if resume else []
        self.amp_dtype = autocast_dtype(config.train.precision, self.device)
        self.image_size = tuple(config.data.image_size)

        seed_everything(config.train.seed)  # same model initialisation on every rank
        model = build_model(config)
        self.installed_text_sha256 = _frozen_text_sha256(model)
        # A resumed run's checkpoint holds its weights: the init checkpoint only starts a new run.
        self.init_report = (
            load_init_checkpoint(model, config.model.init_checkpoint)
            if config.model.init_checkpoint and not resume
            else None
        )
        self.model = set_channels_last(model.to(self.device), config.train.channels_last)
        check_input_size(self.model, self.image_size, "data.image_size")
        self.uses_text = bool(getattr(self.model, "uses_text", False))
        encoder = getattr(self.model, "text_encoder", None)
        self.cache = (
            TextFeatureCache(self.model)
            if self.uses_text and encoder is not None and encoder.frozen and config.train.cache_text
            else None
        )
        # Without an init checkpoint the encoder holds the installed weights: no second hash needed.
        self.text_reference = self._text_reference(
            self.installed_text_sha256 if self.init_report is None else None
        )

        from lsms.data.dataset import ReferringDataset, collate_referring

        self.collate = collate_referring
        train_samples = _load_samples(config.data.train, config.data.train_split, None, "data.train")
        self.val_samples = None
        if config.data.holdout:
            train_samples, self.val_samples = split_holdout(train_samples, config.data.holdout)
        train_samples = train_samples[: config.data.max_train_samples or None]
        if config.has_validation and self.val_samples is None:
            self.val_samples = _load_samples(
                config.data.val or config.data.train,
                config.data.val_split,
                config.data.max_val_samples,
                "data.val",
            )
        self.dataset = ReferringDataset(
            train_samples,
            image_size=self.image_size,
            augment=config.data.augment,
            text_variant=config.data.text_variant,
            window=config.data.window,
            seed=config.train.seed,
            slice_facts=_slice_facts(config),
        )
        # One sampler for one or many processes: a seeded permutation per epoch, split over ranks.
        self.sampler = DistributedSampler(
            self.dataset,
            num_replicas=self.info.world_size,
            rank=self.info.rank,
            shuffle=True,
            seed=config.train.seed,
            drop_last=False,
        )
        self.batches_per_epoch = math.ceil(len(self.sampler) / config.train.batch_size)
        accumulation = config.optim.accumulation_steps
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / accumulation)
        self.total_steps = config.train.max_steps or config.train.epochs * self.steps_per_epoch

        self.optimizer = torch.optim.AdamW(
            _param_groups(self.model, config),
            lr=config.optim.lr,
            betas=tuple(config.optim.betas),
            eps=config.optim.eps,
            weight_decay=config.optim.weight_decay,
        )
        # The factor reads total_steps when called: a resumed run with a new budget follows its decay.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.lr_factor)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loss_fn = DiceBCELoss(config.loss.dice_weight, config.loss.bce_weight)
        self.size_schedule = sorted(
            (fraction, (int(height), int(width)))
            for fraction, height, width in (config.data.size_schedule or [])
        )
        for _, size in self.size_schedule:
            check_input_size(self.model, size, "data.size_schedule")
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(config.train.ema), use_buffers=True)
            if config.train.ema is not None
            else None
        )
        self.position = _Position()
        self._restore_or_start()
        self.net: nn.Module = (
            DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
            if self.info.enabled
            else self.model
        )

    # ----------------------------------------------------------------- setup
    def lr_factor(self, step: int) -> float:
        """Learning-rate multiplier for optimiser step ``step + 1``: linear warm-up over
        ``optim.warmup_steps``, times the polynomial decay ``(1 - step / total_steps) ** poly_power``."""
        warmup = self.config.optim.warmup_steps
        ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
        return ramp * max(0.0, 1 - step / self.total_steps) ** self.config.optim.poly_power

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and saved: their moving average when ``train.ema`` is on."""
        return self.ema.module if self.ema is not None else self.model

    def _train_size(self) -> tuple[int, int]:
        """The training batches' size at the current step (``data.size_schedule``, else image_size)."""
        progress = self.position.step / self.total_steps
        current = [size for fraction, size in self.size_schedule if fraction <= progress]
        return current[-1] if current else self.image_size

    def _check_resume_config(self) -> list[tuple[str, object, object]]:
        """The allowed changes of a resume (see ``resume_changes``), or ConfigError listing the refused."""
        checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        if latest_checkpoint(checkpoint_dir) is None:
            raise ConfigError(f"--resume: no checkpoint in {checkpoint_dir}")
        saved_path = self.run_dir / CONFIG_FILE
        if not saved_path.is_file():
            raise ConfigError(f"--resume: {self.run_dir} holds no {CONFIG_FILE}; not a run folder")
        saved = load_config(saved_path)
        return resume_changes(saved, self.config, str(self.run_dir))

    def _text_reference(self, sha256: str | None = None) -> dict[str, str] | None:
        """Name and weights' hash of a frozen text encoder that is the installed one: checkpoints then
        reference it instead of copying it. None (copied) when it is trained, or when its weights came
        from ``model.init_checkpoint`` or a checkpoint and differ from the installed ones."""
        sha256 = sha256 or _frozen_text_sha256(self.model)  # given when known to be the current weights
        if sha256 is None or sha256 != self.installed_text_sha256:
            return None
        return {"name": self.model.text_encoder.name_or_path, "sha256": sha256}

    def _data_layout(self) -> dict[str, int]:
        """What a saved position means: it indexes this many samples in batches of this size."""
        return {
            "samples": len(self.dataset),
            "batch_size": self.config.train.batch_size,
            "batches_per_epoch": self.batches_per_epoch,
        }

    def _restore(self, step_folder: Path) -> None:
        """Load a checkpoint, refusing (before anything is written) what cannot be restored exactly."""
        ema = self.ema.module if self.ema is not None else None
        state = load_checkpoint(step_folder, self.model, map_location=self.device, ema=ema)
        if len(state["rng"]) != self.info.world_size:
            raise ConfigError(
                f"--resume: {step_folder} was written by {len(state['rng'])} process(es), "
                f"this run has {self.info.world_size}"
            )
        saved_text = state.get("text_encoder")
        if saved_text is not None and saved_text != self.text_reference:
            now = self.text_reference["sha256"][:16] if self.text_reference else "none"
            raise CheckpointError(
                f"{step_folder}: trained with text encoder {saved_text['name']!r} "
                f"(weights SHA-256 {saved_text['sha256'][:16]}...), but the one found now is {now}...; "
                "install the same text encoder to resume"
            )
        position = _Position(**state["position"])
        saved_layout = state.get("data", self._data_layout())
        if saved_layout != self._data_layout() or position.batch_in_epoch >= self.batches_per_epoch:
            raise ConfigError(
                f"--resume: {step_folder} stands at micro-batch {position.batch_in_epoch} of epoch "
                f"{position.epoch} for {saved_layout}; the data now give {self._data_layout()}, so that "
                "position cannot be restored exactly (did the training data change?)"
            )
        if position.step > self.total_steps:
            raise ConfigError(
                f"--resume: the run has done {position.step} steps; the budget of {self.total_steps} "
                "steps is already past (train.max_steps / train.epochs)"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The schedule's value at this step (what the saved run used, or the new budget's decay).
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.lr_factor(position.step)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        if self.ema is not None:
            self.ema.n_averaged.fill_(state["ema_updates"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"][self.info.rank])
        self.position = position
        self.text_reference = self._text_reference()  # the checkpoint may have brought encoder weights

    def _restore_or_start(self) -> None:
        checkpoint_dir = self.run_dir / CHECKPOINT_DIR
        step_folder = latest_checkpoint(checkpoint_dir) if self.resume else None  # checked in __init__
        # Rank 0 decides before it writes config.yaml below: another rank looking later would see it.
        holds_run = broadcast_object((self.run_dir / CONFIG_FILE).exists() if self.info.is_main else None)
        if not self.resume and holds_run:
            raise ConfigError(
                f"train.run_dir: {self.run_dir} already holds a run; use --resume or another folder"
            )
        if step_folder is None:
            seed_everything(self.config.train.seed + self.info.rank)
            resume_step = None
        else:
            self._restore(step_folder)
            resume_step = self.position.step
        # Every check passed: only now is the run folder written.
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for folder in (self.run_dir, checkpoint_dir):
                for name in clean_interrupted_writes(folder):
                    print(f"lsms train: cleaned {folder / name} (left by an interrupted write)")
            # stop_after_steps simulates one interruption; the run's saved config must not repeat it.
            dump_config(
                replace_section(self.config, "train", stop_after_steps=None), self.run_dir / CONFIG_FILE
            )
            if self.init_report is not None:
                self.init_report.to_json(self.run_dir / INIT_REPORT_FILE)
                print(
                    f"lsms train: init {self.init_report.summary()}; lists in {self.run_dir / INIT_REPORT_FILE}"
                )
            recorded = [c for c in self.changes if c[0] != "train.stop_after_steps"]
            if recorded:
                with open(self.run_dir / RESUME_LOG, "a", encoding="utf-8") as handle:
                    changes = "; ".join(f"{key} {old!r} -> {new!r}" for key, old, new in recorded)
                    handle.write(
                        f"{datetime.now().isoformat(timespec='seconds')} step {resume_step}: {changes}\n"
                    )
                print(f"lsms train: resumed with {changes} (recorded in {RESUME_LOG})")
        self.log = CsvLog(self.run_dir / LOG_FILE, resume_step) if self.info.is_main else None
        self.writer = None
        if self.info.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)

    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        """This rank's batches of ``epoch`` from micro-batch ``start_batch`` on (a resumed epoch skips
        the batches it already trained on without loading them)."""
        self.sampler.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        indices = list(self.sampler)[start_batch * self.config.train.batch_size :]
        # An explicit generator keeps the loader from drawing its worker seed off the global generator.
        generator = torch.Generator().manual_seed(
            self.config.train.seed * 100_003 + epoch * 1_009 + self.info.rank
        )
        return DataLoader(
            self.dataset,
            batch_size=self.config.train.batch_size,
            sampler=indices,
            num_workers=self.config.data.num_workers,
            collate_fn=self.collate,
            generator=generator,
            worker_init_fn=_worker_init,
            pin_memory=self.device.type == "cuda",
        )

    # ----------------------------------------------------------------- one step
    def _forward(self, batch: dict[str, Any]) -> torch.Tensor:
        image = batch["image"].to(self.device, non_blocking=True)
        mask = batch["mask"].to(self.device, non_blocking=True)
        size = self._train_size()
        if size != tuple(image.shape[-2:]):
            image = F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)
            mask = F.interpolate(mask, size=size, mode="nearest-exact")
        with autocast(self.device, self.amp_dtype):
            if not self.uses_text:
                logits = self.net(image)
            elif self.cache is not None:
                features, word_mask = self.cache.features(list(batch["text"]))
                logits = self.net(image, word_features=features, word_mask=word_mask)
            else:
                tokens = self.model.tokenize(list(batch["text"]))
                logits = self.net(
                    image, tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device)
                )
        return self.loss_fn(logits, mask)

    def _batch_name(self, batch: dict[str, Any]) -> str:
        pos = self.position
        return (
            f"epoch {pos.epoch}, micro-batch {pos.batch_in_epoch - 1}"
            + (f" of rank {self.info.rank}" if self.info.enabled else "")
            + f" (samples {', '.join(batch['id'])})"
        )

    def _stop_if_diverged(self, bad_batch: str | None) -> None:
        """Raise TrainingError before optimiser step ``position.step + 1`` when a loss or gradient is not
        finite: nothing of this step is applied or saved, the last checkpoint and best/ stay as they are.
        With fp16 the gradient scaler owns overflowing gradients (it skips the step and lowers the scale).
        Every process takes part (one all-reduce), so with DDP all stop together."""
        flagged = all_reduce_sum([float(bad_batch is not None)], self.device)[0] > 0
        problem = bad_batch or ("loss in another process's micro-batch" if flagged else None)
        if problem is None and not self.scaler.is_enabled():
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            if grads and not torch.isfinite(torch.stack([torch.linalg.vector_norm(g) for g in grads]).sum()):
                problem = (
                    f"gradient in the step ending at epoch {self.position.epoch}, "
                    f"micro-batch {self.position.batch_in_epoch - 1}"
                )
        if problem is None:
            return
        saved = latest_checkpoint(self.run_dir / CHECKPOINT_DIR)
        raise TrainingError(
            f"non-finite {problem} at step {self.position.step + 1}; training stopped, nothing of this "
            f"step was applied or saved (last checkpoint: {saved or 'none'}). Check those samples "
            "(lsms data check), or lower optim.lr / set optim.grad_clip"
        )

    def _optimizer_step(self) -> None:
        if self.config.optim.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    # ----------------------------------------------------------------- validation, saving
    def _validate(self) -> float:
        """Dice on the validation samples (rank 0), broadcast to every rank."""
        dice = None
        if self.info.is_main:
            from lsms.evaluation.evaluate import evaluate
            from lsms.predictor import Predictor

            with _preserved_rng():
                predictor = Predictor(
                    self.eval_model,
                    image_size=self.image_size,
                    window=self.config.data.window,
                    threshold=self.config.train.threshold,
                    batch_size=self.config.train.val_batch_size,
                    precision=self.config.train.precision,
                    channels_last=None,  # the layout training chose
                )
                result = evaluate(
                    predictor,
                    self.val_samples,
                    # a model trained on drawn expressions is selected on the full ones
                    text_variant="full"
                    if self.config.data.text_variant in DRAWN_TEXT_VARIANTS
                    else self.config.data.text_variant,
                    seed=self.config.train.seed,
                    progress=False,
                )
            dice = float(result.means["dice"])
            scalars = {
                f"val_{key}": float(value)
                for key, value in result.means.items()
                if isinstance(value, (int, float)) and key != "n"
            }
            self.log.append({"step": self.position.step, "epoch": self.position.epoch, **scalars})
            for key, value in scalars.items():
                self.writer.add_scalar(f"val/{key[4:]}", value, self.position.step)
        return float(broadcast_object(dice))

    def _save_best(self) -> None:
        preprocess = Preprocess.from_dict({"image_size": self.image_size, "window": self.config.data.window})
        replace_dir(
            self.run_dir / BEST_DIR,
            lambda folder: self.eval_model.save_pretrained(folder, preprocess=preprocess),
        )

    def _checkpoint(self) -> None:
        rng_states = gather_objects(capture_rng_state())
        if self.info.is_main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": rng_states,
                "position": vars(self.position).copy(),
                "data": self._data_layout(),
            }
            if self.ema is not None:
                state["ema_updates"] = int(self.ema.n_averaged)
            leave_out: tuple[str, ...] = ()
            if self.text_reference is not None:
                state["text_encoder"] = self.text_reference
                leave_out = ("text_encoder.",)
            save_checkpoint(
                self.run_dir / CHECKPOINT_DIR,
                self.position.step,
                self.model,
                state,
                leave_out,
                ema=self.ema.module if self.ema is not None else None,
            )

    # ----------------------------------------------------------------- the loop
    def fit(self) -> Path:
        """Train to the budget (or early stop / ``stop_after_steps``); return the run folder."""
        config, pos = self.config, self.position
        accumulation = config.optim.accumulation_steps
        self.model.train()
        bar = tqdm(
            total=self.total_steps,
            initial=pos.step,
            desc="train",
            unit="step",
            dynamic_ncols=True,
            disable=not (config.train.progress and self.info.is_main),
        )
        window_loss, window_batches, window_images, window_start = 0.0, 0, 0, time.perf_counter()
        stop = pos.step >= self.total_steps
        bad_batch: str | None = None  # the first micro-batch of the current step with a non-finite loss
        while not stop:
            for batch in self._loader(pos.epoch, pos.batch_in_epoch):
                group_start = pos.batch_in_epoch - pos.batch_in_epoch % accumulation
                group_size = min(accumulation, self.batches_per_epoch - group_start)
                pos.batch_in_epoch += 1
                last_in_group = pos.batch_in_epoch - group_start == group_size
                sync = nullcontext() if last_in_group or not self.info.enabled else self.net.no_sync()
                with sync:
                    loss = self._forward(batch)
                    self.scaler.scale(loss / group_size).backward()
                if bad_batch is None and not torch.isfinite(loss.detach()):
                    bad_batch = f"loss {float(loss):g} in {self._batch_name(batch)}"
                window_loss += float(loss.detach())
                window_batches += 1
                window_images += len(batch["text"])
                if not last_in_group:
                    continue
                self._stop_if_diverged(bad_batch)
                self._optimizer_step()
                bad_batch = None
                pos.step += 1
                epoch_done = pos.batch_in_epoch == self.batches_per_epoch
                if epoch_done:
                    pos.epoch, pos.batch_in_epoch = pos.epoch + 1, 0
                bar.update(1)
                if pos.step % config.train.log_every == 0 or pos.step == self.total_steps:
                    window_loss, window_batches, window_images, window_start = self._log_train(
                        window_loss, window_batches, window_images, window_start, bar
                    )
                stop = self._after_step(epoch_done)
                if stop:
                    break
        bar.close()
        self._finish()
        return self.run_dir

    def _log_train(
        self, loss_sum: float, batches: int, images: int, start: float, bar: tqdm
    ) -> tuple[float, int, int, float]:
        loss_sum, batches, images = all_reduce_sum([loss_sum, batches, images], self.device)
        speed = images / max(time.perf_counter() - start, 1e-9)
        loss = loss_sum / max(batches, 1)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.info.is_main:
            self.log.append(
                {
                    "step": self.position.step,
                    "epoch": self.position.epoch,
                    "loss": loss,
                    "lr": lr,
                    "images_per_s": speed,
                }
            )
            self.writer.add_scalar("train/loss", loss, self.position.step)
            self.writer.add_scalar("train/lr", lr, self.position.step)
            self.writer.add_scalar("train/images_per_s", speed, self.position.step)
            bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{speed:.1f}")
        return 0.0, 0, 0, time.perf_counter()

    def _after_step(self, epoch_done: bool) -> bool:
        """Validation, best model, checkpoints and stopping after optimiser step ``position.step``."""
        config, pos = self.config.train, self.position
        finished = pos.step >= self.total_steps
        interrupted = config.stop_after_steps is not None and pos.step >= config.stop_after_steps
        stop = finished or interrupted
        due = (config.val_every is not None and pos.step % config.val_every == 0) or (
            config.val_every is None and epoch_done
        )
        if self.val_samples is not None and (due or finished):
            dice = self._validate()
            pos.last_val_step = pos.step
            if dice > pos.best_dice:
                pos.best_dice, pos.bad_evals = dice, 0
                if self.info.is_main:
                    self._save_best()
            else:
                pos.bad_evals += 1
                if config.patience is not None and pos.bad_evals >= config.patience:
                    stop = True
        if stop or due or epoch_done or (config.checkpoint_every and pos.step % config.checkpoint_every == 0):
            self._checkpoint()
        return stop

    def _finish(self) -> None:
        if self.info.is_main:
            if self.val_samples is None:
                self._save_best()  # no validation: the final weights stand in for the best ones
            self.writer.close()
            try:
                from lsms.viz.plots import plot_loss_curve

                plot_loss_curve(self.run_dir / LOG_FILE, self.run_dir / "loss.png")
            except Exception as error:  # a plot must never fail a finished run
                print(f"lsms train: loss plot skipped ({error})")
        if self.info.enabled:
            shutdown_distributed()


def train(config: Config | str | Path, *, resume: bool = False, overrides: list[str] | None = None) -> Path:
    """Train a model and return the run folder.

    Args:
        config: a :class:`Config` or a YAML path (``overrides`` are dotted ``key=value`` strings).
        resume: continue the run in ``train.run_dir`` from its latest checkpoint.
    """
    if not isinstance(config, Config):
        config = load_config(config, overrides)
    elif overrides:
        raise ConfigError("overrides apply to a YAML config path, not to a Config object")
    if resume and not config.train.run_dir:
        raise ConfigError("--resume: set train.run_dir (or pass the run folder) to say which run to continue")
    trainer = Trainer(config, resume=resume)
    with run_log(trainer.run_dir) if trainer.info.is_main else contextlib.nullcontext():
        logger.info("%s %s in %s", "resuming" if resume else "training", config.model.name, trainer.run_dir)
        run_dir = trainer.fit()
        logger.info("finished %s", run_dir)
        return run_dir
