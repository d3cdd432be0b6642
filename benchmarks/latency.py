"""Side by side on the CPU: LSMS presets against the project's full-size LViT and U-Net baselines.

All models are built in ONE process and timed in interleaved rounds (every model once per round), so
that background load hits them alike; each model's time is divided by LViT's *in the same round* and
the median ratio is reported. Random weights, 224x224, text encoders outside the timed loop (word
features computed once). Each model runs in two ways:

- ``reference``: float32, NCHW (what every model did before the CPU fast path);
- ``fast``: the project's PyTorch fast path (``precision: auto`` = bfloat16 on CPUs with native bf16,
  channels-last), as ``lsms train`` runs and ``lsms predict --backend pytorch`` predicts;
- ``onnxruntime`` (inference only): the model exported to ONNX and run by ONNX Runtime in float32 with
  the same number of threads, as ``lsms predict`` runs by default on the CPU. Its graph includes the text
  encoder (the other rows get the word features precomputed), so it is timed at a small disadvantage.

Measured: inference at batch 1, a training step at batch 8 (AdamW, Dice + BCE), achieved GFLOP/s
(2 x MACs / time) against a GEMM peak measured here (2048^3 matmul), and each model's peak RSS in a
child process of its own (one inference and one training step). Writes JSON and prints markdown:

    python benchmarks/latency.py --threads 1 --rounds 5 --out benchmarks/results/latency_1thread.json
    python benchmarks/latency.py --threads 2 --rounds 5 --out benchmarks/results/latency_2threads.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import machine_info, now_utc, step_closure

from lsms.atomic import atomic_write_text

MODELS = ("lvit", "unet", "lsms", "lsms-f1", "lsms-table1", "lsms-nano")
TRAIN_MODELS = ("lvit", "unet", "lsms", "lsms-f1")
RUNTIMES = {"reference": ("fp32", False), "fast": ("auto", True)}
ONNX_RUNTIME = "onnxruntime"
REFERENCE = ("lvit", "reference")
SIZE = 224
TRAIN_BATCH = 8


def make_runner(name: str, runtime: str, mode: str, batch: int) -> tuple[Callable[[], None], dict]:
    """A closure running one forward (``eval``) or one AdamW step (``train``) of ``name``."""
    import lsms
    from lsms.runtime import autocast_dtype, set_channels_last

    torch.manual_seed(0)
    precision, channels_last = RUNTIMES[runtime]
    model = set_channels_last(lsms.create_model(name), channels_last)
    dtype = autocast_dtype(precision, torch.device("cpu"))
    info = {"precision_used": "bf16" if dtype is not None else "fp32"}
    return step_closure(model, mode, batch, SIZE, dtype), info


def make_onnx_runner(name: str, threads: int, folder: Path) -> Callable[[], None]:
    """A closure running one batch-1 inference of ``name`` (random weights) exported to ONNX Runtime,
    through the backend ``lsms predict`` uses (:class:`lsms.predictor.OnnxBackend`)."""
    import lsms
    from lsms.inference.export import export_onnx
    from lsms.models.complexity import REFERENCE_SENTENCE
    from lsms.predictor import OnnxBackend

    torch.manual_seed(0)
    model = lsms.create_model(name).eval()
    backend = OnnxBackend(export_onnx(model, folder / f"{name}.onnx", example_size=(SIZE, SIZE)), threads)
    image = torch.rand(1, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    tokens = model.tokenize([REFERENCE_SENTENCE]) if getattr(model, "uses_text", False) else {}

    def forward() -> None:
        backend(image, tokens)

    return forward


def interleaved(runners: dict[tuple[str, str], Callable[[], None]], rounds: int) -> dict:
    """Median seconds and median per-round ratio to :data:`REFERENCE` of every runner."""
    for run in runners.values():
        run()  # warm-up
    seconds: dict = {key: [] for key in runners}
    ratios: dict = {key: [] for key in runners}
    for _ in range(rounds):
        timed = {}
        for key, run in runners.items():
            start = time.perf_counter()
            run()
            timed[key] = time.perf_counter() - start
        for key, value in timed.items():
            seconds[key].append(value)
            ratios[key].append(value / timed[REFERENCE])
    return {key: (statistics.median(seconds[key]), statistics.median(ratios[key])) for key in runners}


def gemm_peak_gflops(threads: int) -> dict[str, float]:
    """GFLOP/s of a 2048^3 matmul in float32 and bfloat16 (best of 3) with ``threads`` threads."""
    torch.set_num_threads(threads)
    peaks = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.rand(2048, 2048, dtype=dtype), torch.rand(2048, 2048, dtype=dtype)
        a @ b
        best = min(_timed(lambda a=a, b=b: a @ b) for _ in range(3))
        peaks[label] = 2 * 2048**3 / best / 1e9
    return peaks


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def visual_macs(name: str) -> int:
    import lsms
    from lsms.models.complexity import count_macs

    macs = count_macs(lsms.create_model(name), (SIZE, SIZE))
    return macs["total"] - macs["text_encoder"]


def child_memory(name: str, runtime: str, threads: int) -> dict:
    """Runs in a child process: peak RSS after one inference (batch 1) and one training step (batch 8)."""
    torch.set_num_threads(threads)
    forward, _ = make_runner(name, runtime, "eval", 1)
    forward()
    after_inference = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step, _ = make_runner(name, runtime, "train", TRAIN_BATCH)
    step()
    after_training = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_inference_mib": after_inference, "peak_rss_train_mib": after_training}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-rounds", type=int, default=3)
    parser.add_argument("--no-memory", action="store_true", help="skip the per-model peak-RSS children")
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime inference rows")
    parser.add_argument("--no-train", action="store_true", help="time inference only")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency_1thread.json"))
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "RUNTIME"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_memory(args.child[0], args.child[1], args.threads)))
        return 0
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    # Children first: Linux keeps a process's peak RSS across fork and exec, so they must start from a
    # parent that has not built the models yet.
    memory = {}
    if not args.no_memory:
        for name in MODELS:
            for runtime in RUNTIMES:
                command = [sys.executable, __file__, "--child", name, runtime, "--threads", str(args.threads)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                memory[(name, runtime)] = json.loads(output.strip().splitlines()[-1])
    eval_runners, train_runners, precision = {}, {}, {}
    for name in MODELS:
        for runtime in RUNTIMES:
            eval_runners[(name, runtime)], info = make_runner(name, runtime, "eval", 1)
            precision[(name, runtime)] = info["precision_used"]
            if name in TRAIN_MODELS and not args.no_train:
                train_runners[(name, runtime)], _ = make_runner(name, runtime, "train", TRAIN_BATCH)
    with tempfile.TemporaryDirectory() as folder:
        if not args.no_onnx:
            for name in MODELS:
                eval_runners[(name, ONNX_RUNTIME)] = make_onnx_runner(name, args.threads, Path(folder))
                precision[(name, ONNX_RUNTIME)] = "fp32"
        inference = interleaved(eval_runners, args.rounds)
    training = interleaved(train_runners, args.train_rounds) if train_runners else {}
    peaks = gemm_peak_gflops(args.threads)
    macs = {name: visual_macs(name) for name in MODELS}
    rows = []
    for (name, runtime), (seconds, ratio) in inference.items():
        achieved = 2 * macs[name] / seconds / 1e9
        peak = peaks[precision[(name, runtime)]]
        row = {
            "model": name,
            "runtime": runtime,
            "precision": precision[(name, runtime)],
            "gmacs": macs[name] / 1e9,
            "inference_ms": 1000 * seconds,
            "inference_ratio_to_lvit_reference": ratio,
            "achieved_gflops": achieved,
            "share_of_gemm_peak": achieved / peak,
        }
        if (name, runtime) in training:
            train_seconds, train_ratio = training[(name, runtime)]
            row |= {
                "train_step_s": train_seconds,
                "train_images_per_s": TRAIN_BATCH / train_seconds,
                "train_ratio_to_lvit_reference": train_ratio,
            }
        rows.append(row | memory.get((name, runtime), {}))
    result = {
        "date": now_utc(),
        "command": " ".join(["python", *sys.argv]),
        "threads": args.threads,
        "size": SIZE,
        "rounds": {"inference": args.rounds, "train": args.train_rounds},
        "gemm_peak_gflops": peaks,
        "machine": machine_info(),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


def markdown(result: dict) -> str:
    peaks = result["gemm_peak_gflops"]
    lines = [
        f"{result['threads']} thread(s), {result['size']}x{result['size']}, {result['machine']['cpu']}, "
        f"{result['date']}; GEMM peak {peaks['fp32']:.0f} GFLOP/s fp32, {peaks['bf16']:.0f} bf16",
        "",
        "| model | runtime | GMACs | inference ms (b1) | x LViT ref | GFLOP/s (% of peak) "
        "| train step s (b8) | images/s | x LViT ref | peak RSS train MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        train = (
            f"{r['train_step_s']:.2f} | {r['train_images_per_s']:.2f} | {r['train_ratio_to_lvit_reference']:.3f}"
            if "train_step_s" in r
            else "- | - | -"
        )
        memory = f"{r['peak_rss_train_mib']:.0f}" if "peak_rss_train_mib" in r else "-"
        lines.append(
            f"| {r['model']} | {r['runtime']} ({r['precision']}) | {r['gmacs']:.2f} | {r['inference_ms']:.0f} | "
            f"{r['inference_ratio_to_lvit_reference']:.3f} | {r['achieved_gflops']:.0f} "
            f"({100 * r['share_of_gemm_peak']:.0f}%) | {train} | {memory} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
