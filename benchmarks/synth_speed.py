"""Speed of the synthetic referring benchmark generator (``lsms data synth``).

Generates ``--cases`` patients (default 250, about 1,000 slices) into a temporary folder, with PNGs,
masks, manifest and NIfTI volumes, and prints slices per second. The target is 1,000 slices in under
a minute on one CPU core. Run: ``python benchmarks/synth_speed.py [--cases 250] [--size 128]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lsms.data.synth import generate_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=250)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-volumes", action="store_true", help="skip writing the NIfTI volumes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        manifest = generate_dataset(
            Path(folder) / "synth",
            args.cases,
            size=args.size,
            seed=args.seed,
            write_volumes=not args.no_volumes,
        )
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        info = json.loads((manifest.parent / "synth.json").read_text())
    slices = info["slices"]
    print(
        f"{args.cases} cases, {slices} slices, {info['rows']} rows at {args.size} px: "
        f"{wall:.1f} s wall ({cpu:.1f} s CPU)"
    )
    print(
        f"{slices / wall:.1f} slices/s wall, {slices / cpu:.1f} slices/s CPU; "
        f"1,000 slices in {1000 * wall / slices:.1f} s"
    )


if __name__ == "__main__":
    main()
