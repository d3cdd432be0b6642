"""CPU inference latency at batch 1 for every LSMS preset at 224 and 480, and peak memory.

Each (preset, size) runs in its own process so that peak RSS belongs to it alone. Weights are random
(latency does not depend on them). Prints a markdown table and writes JSON.

    python benchmarks/latency.py --threads 1 --repeats 10 --out benchmarks/results/latency.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

PRESETS = ("lsms-nano", "lsms", "lsms-table1")
SIZES = (224, 480)


def measure(preset: str, size: int, threads: int, repeats: int) -> dict:
    """Runs inside the child process: median latency of ``repeats`` forward passes after one warm-up."""
    import torch

    import lsms
    from lsms.models.complexity import REFERENCE_SENTENCE

    torch.set_num_threads(threads)
    model = lsms.create_model(preset).eval()
    image = torch.rand(1, 1, size, size)
    tokens = model.tokenize([REFERENCE_SENTENCE])
    timings = []
    with torch.inference_mode():
        model(image, **tokens)
        for _ in range(repeats):
            start = time.perf_counter()
            model(image, **tokens)
            timings.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "preset": preset,
        "size": size,
        "threads": threads,
        "repeats": repeats,
        "median_ms": 1000 * statistics.median(timings),
        "min_ms": 1000 * min(timings),
        "peak_rss_mib": round(peak_mib, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/latency.json"))
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.threads, args.repeats)))
        return
    from common import cpu_model  # here, not at the top: common imports torch, which only the children need

    rows = []
    for preset in args.presets:
        for size in args.sizes:
            command = [
                sys.executable,
                __file__,
                "--child",
                preset,
                str(size),
                "--threads",
                str(args.threads),
                "--repeats",
                str(args.repeats),
            ]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(f"{preset} {size}: {rows[-1]['median_ms']:.0f} ms", file=sys.stderr)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "command": " ".join(sys.argv),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"CPU: {result['cpu']}, {args.threads} thread(s), batch 1, median of {args.repeats}, {result['date']}\n"
    )
    print("| preset | size | median latency (ms) | peak RSS (MiB) |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['preset']} | {row['size']} | {row['median_ms']:.0f} | {row['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
