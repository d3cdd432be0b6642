"""The CPU fast path of the default preset, one switch at a time, measured and profiled op by op.

Cumulative ladder, each rung adding one switch to the one above (random weights, 224x224, sentences
encoded once outside the timed loop):

1. reference: ``lsms-f1`` (FSD aligned at F1), float32, NCHW;
2. + FSD aligned at F2 (the ``lsms`` preset; same weights);
3. + channels-last weights and activations;
4. + bfloat16 autocast (``precision: auto`` on a CPU with native bfloat16);
5. + 1 x d strip convolutions computed as d x 1 on the transposed tensor (``ConvUnit.transpose_row``);
6. (``--compile``) + ``torch.compile`` of rung 5, with its compile time (``first_call_s``).

Inference (eval, batch 1) and training (AdamW step, batch 8) are timed in interleaved rounds in one
process, so background load hits every rung alike; the ratio to rung 1 is taken per round and the median
reported. torch.profiler's top operators (self CPU time) are recorded for the first and the last rung.

    python benchmarks/profile_ops.py --threads 1 --rounds 5 --out benchmarks/results/profile_ops.json
    python benchmarks/profile_ops.py --threads 1 --rounds 5 --compile --out benchmarks/results/profile_ops_compile.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from common import machine_info, now_utc, step_closure

import lsms
from lsms.atomic import atomic_write_text
from lsms.layers.svla import ConvUnit
from lsms.runtime import autocast_dtype, set_channels_last


@dataclass(frozen=True)
class Rung:
    name: str
    preset: str
    channels_last: bool
    transpose_row: bool
    precision: str
    compile: bool = False


LADDER = (
    Rung("1 reference (F1, fp32, NCHW)", "lsms-f1", False, False, "fp32"),
    Rung("2 + FSD at F2", "lsms", False, False, "fp32"),
    Rung("3 + channels-last", "lsms", True, False, "fp32"),
    Rung("4 + bf16 autocast", "lsms", True, False, "auto"),
    Rung("5 + transposed 1xd convolutions", "lsms", True, True, "auto"),
)
COMPILED = Rung("6 + torch.compile", "lsms", True, True, "auto", compile=True)


def build(rung: Rung, state: dict, mode: str, batch: int, size: int) -> tuple[Callable[[], None], dict]:
    """A closure running one forward (eval) or one AdamW step (train) of ``rung``'s model."""
    model = lsms.create_model(rung.preset)
    model.load_state_dict(state)
    set_channels_last(model, rung.channels_last)
    for module in model.modules():
        if isinstance(module, ConvUnit):
            module.transpose_row = rung.transpose_row
    dtype = autocast_dtype(rung.precision, torch.device("cpu"))
    net = torch.compile(model) if rung.compile else None
    info = {"precision_used": "bf16" if dtype is not None else "fp32"}
    return step_closure(model, mode, batch, size, dtype, net), info


def top_ops(run: Callable[[], None], count: int = 12) -> list[dict]:
    """The ``count`` operators with the most self CPU time in one call of ``run``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "self_ms": e.self_cpu_time_total / 1000,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[:count]
    ]


def measure(mode: str, rungs: tuple[Rung, ...], rounds: int, batch: int, size: int) -> dict:
    torch.manual_seed(0)
    state = lsms.create_model("lsms").state_dict()
    runs, infos, first_call = {}, {}, {}
    for rung in rungs:
        runs[rung.name], infos[rung.name] = build(rung, state, mode, batch, size)
        start = time.perf_counter()
        runs[rung.name]()  # warm-up (and, compiled, the compilation)
        first_call[rung.name] = time.perf_counter() - start
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    ratios: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        timed = {}
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            timed[name] = time.perf_counter() - start
        reference = timed[rungs[0].name]
        for name, value in timed.items():
            seconds[name].append(value)
            ratios[name].append(value / reference)
    return {
        "batch": batch,
        "size": size,
        "rounds": rounds,
        "rungs": [
            {
                "rung": name,
                **infos[name],
                "median_ms": 1000 * statistics.median(seconds[name]),
                "images_per_s": batch / statistics.median(seconds[name]),
                "ratio_to_reference": statistics.median(ratios[name]),
                "first_call_s": first_call[name],
            }
            for name in runs
        ],
        "profile_reference": top_ops(runs[rungs[0].name]),
        "profile_last": top_ops(runs[rungs[-1].name]),
    }


def markdown(result: dict) -> str:
    lines = []
    for mode, label in (("eval", "inference"), ("train", "training step")):
        block = result[mode]
        lines += [
            f"\n{label}, batch {block['batch']}, {block['size']}x{block['size']}, median of {block['rounds']} "
            "interleaved rounds\n",
            "| rung | precision | ms | images/s | x reference |",
            "|---|---|---:|---:|---:|",
        ]
        lines += [
            f"| {r['rung']} | {r['precision_used']} | {r['median_ms']:.0f} | {r['images_per_s']:.2f} | "
            f"{r['ratio_to_reference']:.3f} |"
            for r in block["rungs"]
        ]
        for key, title in (("profile_reference", "first rung"), ("profile_last", "last rung")):
            ops = ", ".join(f"{op['op']} {100 * op['share']:.0f}%" for op in block[key][:6])
            lines.append(f"\ntop operators ({label}, {title}): {ops}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the last rung")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile_ops.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rungs = LADDER + ((COMPILED,) if args.compile else ())
    result = {
        "date": now_utc(),
        "command": " ".join(["python", *sys.argv]),
        "threads": args.threads,
        "torch": torch.__version__,
        "machine": machine_info(),
        "eval": measure("eval", rungs, args.rounds, 1, args.size),
        "train": measure("train", rungs, args.rounds, args.train_batch, args.size),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    atomic_write_text(args.out.with_suffix(".md"), f"`{result['command']}` ({result['date']})\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
