"""Shared plumbing of benchmarks/compare.py (Table 2) and benchmarks/ablations.py (Table 3).

One *run* is (dataset, model config, seed): train with :func:`lsms.training.train`, evaluate the best
checkpoint with :func:`lsms.evaluation.evaluate.evaluate` under several text variants, count parameters
and MACs, and write everything to ``<results_dir>/<key>.json``. A run whose JSON exists is skipped, and
a training run interrupted half-way resumes from its latest checkpoint, so the scripts can be stopped
and restarted at will; the tables are rebuilt from whatever JSONs exist (``--report-only``).
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from lsms.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS_ROOT = REPO / "benchmarks" / "results"
RUNS_ROOT = REPO / "runs" / "bench"  # runs/ is gitignored: checkpoints and generated data stay out of git
SYNTH_DIR = RUNS_ROOT / "synth"
QATA_DIR = REPO.parent / "shared" / "data" / "qata-cov19"
DONE_MARKER = "benchmark_done"
# Params/MACs column of the tables: the size of `lsms info` and docs/baselines.md.
MAC_REFERENCE_SIZE = (224, 224)


@dataclass(frozen=True)
class Budget:
    """Training budget shared by every run of one table (the same for every model)."""

    steps: int = 600
    batch_size: int = 8
    lr: float = 1e-3
    val_every: int | None = 300
    max_val_samples: int | None = 160
    # "mixed": full, half or quarter expression per sample and epoch (see lsms.data.dataset), as the
    # paper trains LSMS to localise "with minimal textual assistance"; "full" for the ablations
    text_variant: str = "full"


@dataclass(frozen=True)
class DataSpec:
    """Where to train, select and evaluate. ``val_split`` None: no validation, ``best`` = final weights."""

    name: str
    path: str
    image_size: int
    train_split: str = "train"
    val_split: str | None = "val"
    eval_split: str = "test"
    max_eval_samples: int | None = None


@dataclass(frozen=True)
class RunSpec:
    """One training + evaluation run; ``key`` names its JSON and its run folder."""

    key: str
    model: str
    overrides: dict[str, Any]
    data: DataSpec
    budget: Budget
    seed: int
    text_variants: tuple[str, ...] = ("full",)
    eval_seed: int = 0  # drives only the `shuffled` derangement
    extra: dict[str, Any] = field(default_factory=dict)  # copied into the JSON (row labels etc.)


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, torch version and the host's Python, for the results page."""
    # not `nproc`: it reports OMP_NUM_THREADS when that is set, as the benchmark queues do
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    return {
        "nproc": nproc,
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def step_closure(
    model: torch.nn.Module, mode: str, batch: int, size: int, dtype: torch.dtype | None, net=None
):
    """A closure running one forward pass (``mode="eval"``, inference mode) or one AdamW step with the
    Dice + BCE loss (``"train"``) of ``model`` on random (batch, 1, size, size) images, under autocast
    ``dtype`` on the CPU, as the trainer and the predictor run it. The sentences are encoded once,
    outside the closure (the frozen-text cache). ``net``: what to call instead of ``model`` (compiled)."""
    from lsms.losses import DiceBCELoss
    from lsms.models.complexity import REFERENCE_SENTENCE
    from lsms.runtime import autocast

    device = torch.device("cpu")
    net = net or model
    model.train(mode == "train")
    text: dict = {}
    if getattr(model, "uses_text", False):
        tokens = model.tokenize([REFERENCE_SENTENCE] * batch)
        with torch.no_grad():
            words, word_mask = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
        text = {"word_features": words, "word_mask": word_mask}
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 1, size, size, generator=generator)
    if mode == "eval":

        def forward() -> None:
            with torch.inference_mode(), autocast(device, dtype):
                net(images, **text)

        return forward
    masks = (torch.rand(batch, 1, size, size, generator=generator) > 0.7).float()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = DiceBCELoss()

    def step() -> None:
        with autocast(device, dtype):
            logits = net(images, **text)
        loss = loss_fn(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path: Path, payload: dict) -> None:
    """Atomic write (:mod:`lsms.atomic`): a killed script never leaves half a result."""
    atomic_write_text(path, json.dumps(payload, indent=2, default=list) + "\n")


def load_results(results_dir: Path) -> dict[str, dict]:
    """Every finished run's JSON in ``results_dir``, by key."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(Path(results_dir).glob("*.json"))}


def ensure_synth(out_dir: Path, cases: int, seed: int = 0) -> Path:
    """The synthetic referring benchmark's manifest, generated once (128 px, no volumes)."""
    manifest = out_dir / "manifest.csv"
    if not manifest.is_file():
        from lsms.data.synth import generate_dataset

        generate_dataset(out_dir, cases=cases, size=128, seed=seed, write_volumes=False)
    return manifest


def split_manifest(manifest: Path, split: str) -> Path:
    """A copy of ``manifest`` with the rows of one split only, beside it (relative paths stay valid)."""
    out = manifest.with_name(f"{manifest.stem}_{split}.csv")
    if not out.is_file():
        with manifest.open(newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in reader if row["split"] == split]
            fieldnames = reader.fieldnames or []
        with out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
    return out


def _train_config(spec: RunSpec, run_dir: Path, threads: int):
    from lsms.training import Config

    data, budget = spec.data, spec.budget
    return Config.from_dict(
        {
            "model": {"name": spec.model, "overrides": dict(spec.overrides)},
            "data": {
                "train": data.path,
                "train_split": data.train_split,
                "val_split": data.val_split,
                "image_size": [data.image_size, data.image_size],
                "text_variant": budget.text_variant,
                "max_val_samples": budget.max_val_samples if data.val_split else None,
            },
            "optim": {"lr": budget.lr},
            "train": {
                "max_steps": budget.steps,
                "batch_size": budget.batch_size,
                "val_every": budget.val_every if data.val_split else None,
                "val_batch_size": 16,
                "log_every": 10,
                "seed": spec.seed,
                "threads": threads,
                "run_dir": str(run_dir),
                "progress": False,
            },
        },
        source=spec.key,
    )


def _check_same_config(run_dir: Path, config) -> None:
    """A run folder left by another protocol (say, another budget) must not be resumed or reused."""
    from lsms.training.config import load_config
    from lsms.training.trainer import CONFIG_FILE

    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        return
    # through JSON, so that a tuple and the list YAML gives back compare equal
    old, new = (json.loads(json.dumps(c.to_dict(), default=str)) for c in (load_config(saved), config))
    changed = [
        f"{section}.{key}"
        for section, values in new.items()
        for key, value in values.items()
        if key not in ("run_dir", "threads") and old.get(section, {}).get(key) != value
    ]
    if changed:
        raise SystemExit(
            f"{run_dir}: holds a run with another config ({', '.join(changed)}); "
            "delete that folder or pass another --runs-dir"
        )


def _train(spec: RunSpec, run_dir: Path, threads: int) -> float:
    """Train (or resume, or skip when already done); returns the seconds spent in this call."""
    from lsms.training import train
    from lsms.training.trainer import CHECKPOINT_DIR

    config = _train_config(spec, run_dir, threads)
    _check_same_config(run_dir, config)
    if (run_dir / DONE_MARKER).is_file():
        return 0.0
    resume = (run_dir / CHECKPOINT_DIR / "latest").exists()
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)  # a run killed before its first checkpoint: start over
    start = time.perf_counter()
    train(config, resume=resume)
    seconds = time.perf_counter() - start
    atomic_write_text(run_dir / DONE_MARKER, f"{seconds:.1f}\n")
    return seconds


def _log_summary(run_dir: Path) -> dict[str, Any]:
    """Mean images/s and the validation rows of the run's log.csv."""
    speeds, validations = [], []
    with (run_dir / "log.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("images_per_s"):
                speeds.append(float(row["images_per_s"]))
            if row.get("val_dice"):
                validations.append({"step": int(row["step"]), "dice": float(row["val_dice"])})
    return {"images_per_s": statistics.fmean(speeds) if speeds else None, "validations": validations}


def complexity(model: torch.nn.Module, size: tuple[int, int]) -> dict[str, float]:
    """Visual parameters (M) and visual GMACs at ``size`` (text encoder excluded, as in docs/baselines.md)."""
    from lsms.models.complexity import count_macs, count_parameters

    macs = count_macs(model, size)
    return {
        "params_m": count_parameters(model)["visual"] / 1e6,
        "gmacs": (macs["total"] - macs["text_encoder"]) / 1e9,
    }


def _claim(lock: Path) -> bool:
    """Take ``lock`` for this process unless a live process holds it (two queues may share a results dir)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            os.kill(int(lock.read_text()), 0)
            return False
        except (ValueError, OSError):  # stale: its process is gone
            lock.unlink(missing_ok=True)
            return _claim(lock)
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    return True


def run(spec: RunSpec, results_dir: Path, runs_dir: Path, threads: int = 1) -> dict | None:
    """Train and evaluate one run unless its JSON exists; returns the JSON's content (None when another
    live process is working on the same run)."""
    out = results_dir / f"{spec.key}.json"
    if out.is_file():
        return json.loads(out.read_text())
    lock = runs_dir / f"{spec.key}.lock"
    if not _claim(lock):
        print(f"[{now_utc()}] skip {spec.key}: another process is running it", flush=True)
        return None
    try:
        return _run_claimed(spec, out, runs_dir, threads)
    finally:
        lock.unlink(missing_ok=True)


def _run_claimed(spec: RunSpec, out: Path, runs_dir: Path, threads: int) -> dict:
    """Train (or resume), evaluate every text variant, count params/MACs and write ``out``."""
    from transformers.utils import logging as hf_logging

    from lsms import from_pretrained
    from lsms.data.loading import load_samples
    from lsms.evaluation.evaluate import evaluate
    from lsms.evaluation.referring import load_lesion_map
    from lsms.predictor import Predictor
    from lsms.training.trainer import BEST_DIR

    hf_logging.disable_progress_bar()  # keep the logs readable
    torch.set_num_threads(threads)
    run_dir = runs_dir / spec.key
    print(f"[{now_utc()}] train {spec.key}", flush=True)
    train_seconds = _train(spec, run_dir, threads)
    model = from_pretrained(run_dir / BEST_DIR)
    samples = load_samples(spec.data.path, spec.data.eval_split)[: spec.data.max_eval_samples]
    # A text-free model ignores the text: one evaluation stands for every variant.
    variants = spec.text_variants if model.uses_text else ("full",)
    metrics = {}
    size = (spec.data.image_size, spec.data.image_size)
    lesions = load_lesion_map(spec.data.path, samples)  # synthetic data: the wrong-lesion rate too
    predictor = Predictor(model, image_size=size, batch_size=16)
    for variant in variants:
        result = evaluate(
            predictor, samples, text_variant=variant, seed=spec.eval_seed, progress=False, lesions=lesions
        )
        keys = ("dice", "miou", "oiou", "pooled_dice", "wrong_lesion", "n")
        metrics[variant] = {k: result.means[k] for k in keys if k in result.means}
        print(f"  {variant}: dice {100 * metrics[variant]['dice']:.2f}", flush=True)
    payload = {
        "key": spec.key,
        "model": spec.model,
        "overrides": spec.overrides,
        "uses_text": bool(model.uses_text),
        "seed": spec.seed,
        "data": asdict(spec.data),
        "budget": asdict(spec.budget),
        "eval_seed": spec.eval_seed,
        "metrics": metrics,
        "complexity_train_size": complexity(model, size),
        "complexity_224": complexity(model, MAC_REFERENCE_SIZE),
        "train_seconds": train_seconds or _done_seconds(run_dir),
        "log": _log_summary(run_dir),
        "date": now_utc(),
        "machine": machine_info(),
        **spec.extra,
    }
    write_json(out, payload)
    return payload


def _done_seconds(run_dir: Path) -> float | None:
    try:
        return float((run_dir / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None


def run_all(specs: Iterable[RunSpec], results_dir: Path, runs_dir: Path, threads: int = 1) -> None:
    """Run every spec in order (skipping finished ones); a failing run is reported and the rest go on."""
    for spec in specs:
        try:
            run(spec, results_dir, runs_dir, threads)
        except Exception as error:  # noqa: BLE001 - one broken config must not stop the queue
            print(f"[{now_utc()}] FAILED {spec.key}: {type(error).__name__}: {error}", flush=True)


def pct(value: float | None, digits: int = 2) -> str:
    """A fraction as a percentage string, or an en dash when missing."""
    return "–" if value is None else f"{100 * value:.{digits}f}"


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def budget_line(results: Iterable[dict]) -> str:
    """The budgets, seeds and dates found in a set of result JSONs, in one line for the results page."""
    results = list(results)
    if not results:
        return "no finished runs"
    budgets = sorted({json.dumps(r["budget"], sort_keys=True) for r in results})
    seeds = sorted({r["seed"] for r in results})
    dates = sorted(r["date"] for r in results)
    machines = sorted({f"{r['machine']['nproc']} x {r['machine']['cpu']}" for r in results})
    return (
        f"budget(s) {'; '.join(budgets)}; seeds {seeds}; runs finished {dates[0]} .. {dates[-1]}; "
        f"machine(s) {', '.join(machines)} (nproc), torch {results[0]['machine']['torch']}"
    )


def add_common_args(parser) -> None:
    """Options both scripts share: where results and runs go, threads, report-only and budget overrides."""
    parser.add_argument("--results-dir", type=Path, default=None, help="where the per-run JSONs go")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_ROOT / "runs", help="training run folders")
    parser.add_argument("--synth-dir", type=Path, default=SYNTH_DIR, help="synthetic benchmark folder")
    parser.add_argument("--synth-cases", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run")
    parser.add_argument("--val-every", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-eval", type=int, default=None, help="evaluate on the first N samples only")
    parser.add_argument("--report-only", action="store_true", help="rebuild the tables from existing JSONs")
    parser.add_argument("--out-md", type=Path, default=None, help="also write the report to this file")
