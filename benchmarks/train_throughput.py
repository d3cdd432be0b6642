"""Training throughput (images/s) and peak memory on the CPU, frozen-text cache on and off.

Each setting runs in its own process (so peak RSS is its own): the default preset at 224x224, batch 8,
real QaTa-COV19-style sentences, AdamW + Dice/BCE loss, a few optimiser steps after one warm-up step.

    python benchmarks/train_throughput.py --model lsms --size 224 --batch-size 8 --steps 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from lsms.atomic import atomic_write_text

SENTENCES = [
    "Bilateral pulmonary infection, two infected areas, middle left lung and middle right lung.",
    "Unilateral pulmonary infection, one infected area, lower right lung.",
    "Bilateral pulmonary infection, three infected areas, all left lung and lower right lung.",
    "Unilateral pulmonary infection, one infected area, middle left lung.",
]


def measure(args: argparse.Namespace, cache: bool) -> dict:
    import torch

    import lsms
    from lsms.losses import DiceBCELoss
    from lsms.runtime import autocast, autocast_dtype, set_channels_last
    from lsms.training.text_cache import TextFeatureCache

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    dtype = autocast_dtype(args.precision, device)
    model = set_channels_last(lsms.create_model(args.model), args.channels_last).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = DiceBCELoss()
    text_cache = TextFeatureCache(model) if cache else None
    images = torch.rand(args.batch_size, 1, args.size, args.size)
    masks = (torch.rand(args.batch_size, 1, args.size, args.size) > 0.7).float()
    sentences = [SENTENCES[i % len(SENTENCES)] for i in range(args.batch_size)]
    timings = []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        with autocast(device, dtype):  # as the trainer runs it (train.precision, train.channels_last)
            if text_cache is not None:
                features, word_mask = text_cache.features(sentences)
                logits = model(images, word_features=features, word_mask=word_mask)
            else:
                logits = model(images, **model.tokenize(sentences))
        loss = loss_fn(logits, masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step > 0:  # the first step warms up allocators and the cache
            timings.append(time.perf_counter() - start)
    seconds = sum(timings) / len(timings)
    return {
        "cache": cache,
        "seconds_per_step": seconds,
        "images_per_s": args.batch_size / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def dtype_used(precision: str):
    """The autocast dtype ``precision`` resolves to on this CPU (None: float32)."""
    import torch

    from lsms.runtime import autocast_dtype

    return autocast_dtype(precision, torch.device("cpu"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="lsms")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--precision", default="auto", help="train.precision: auto, bf16 or fp32 (default auto)"
    )
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=True, help="train.channels_last"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train_throughput.json"))
    parser.add_argument("--child", choices=["cache", "no-cache"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args, cache=args.child == "cache")))
        return
    from common import cpu_model  # here, not at the top: common imports torch, which only the children need

    rows = []
    for mode in ("cache", "no-cache"):
        command = [
            sys.executable,
            __file__,
            "--child",
            mode,
            "--model",
            args.model,
            "--size",
            str(args.size),
            "--batch-size",
            str(args.batch_size),
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads),
            "--precision",
            args.precision,
            "--channels-last" if args.channels_last else "--no-channels-last",
        ]
        rows.append(
            json.loads(
                subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            )
        )
    cpu = cpu_model()
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "command": " ".join(["python", *sys.argv]),
        "model": args.model,
        "size": args.size,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "precision": args.precision,
        "precision_used": "bf16" if dtype_used(args.precision) else "fp32",
        "channels_last": args.channels_last,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(
        f"{args.model} at {args.size}x{args.size}, batch {args.batch_size}, {args.threads} thread(s), "
        f"{result['precision_used']}, channels-last {args.channels_last}, {cpu}, {result['date']}\n"
    )
    print("| text features | s/step | images/s | peak RSS (MiB) |\n|---|---:|---:|---:|")
    for row in rows:
        label = "cached (frozen encoder)" if row["cache"] else "encoded every step"
        print(
            f"| {label} | {row['seconds_per_step']:.2f} | {row['images_per_s']:.2f} | {row['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()
