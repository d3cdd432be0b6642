"""``lsms data synth`` and ``lsms data stats`` (registered by ``lsms.cli.data``)."""

from __future__ import annotations

import argparse
import time


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` and ``stats`` sub-commands to ``lsms data``."""
    synth = data_subparsers.add_parser(
        "synth",
        help="generate the synthetic referring benchmark (open stand-in for RefHL-Seg)",
        description="Procedural abdominal CT with liver lesions of five types: writes manifest.csv (one row "
        "per lesion and slice, full/half/quarter expressions), windowed PNG slices, masks and NIfTI volumes.",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument(
        "--cases",
        type=int,
        required=True,
        help="synthetic patients (3-5 slices each; 250 give about 1,000 slices)",
    )
    synth.add_argument("--size", type=int, default=128, help="side of the PNG slices in pixels (default 128)")
    synth.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default 0)")
    synth.add_argument(
        "--min-lesion-px", type=int, default=40, help="smallest lesion area on a PNG slice (default 40)"
    )
    synth.add_argument("--no-volumes", action="store_true", help="skip the NIfTI volumes")
    synth.set_defaults(func=run_synth)

    stats = data_subparsers.add_parser(
        "stats",
        help="lesions per slice, sizes, and the text-free Dice floor of a referring manifest",
        description="Statistics of a manifest; the floor is the best mean Dice of a text-free guess (all "
        "lesions of the image, the largest, or a random one) against the referred lesion.",
    )
    stats.add_argument("manifest", help="a manifest (.csv/.jsonl)")
    stats.add_argument("--json", help="also write the statistics to this JSON file")
    stats.set_defaults(func=run_stats)


def run_synth(args: argparse.Namespace) -> int:
    from lsms.data.synth.generate import generate_dataset

    start = time.perf_counter()
    manifest = generate_dataset(
        args.out,
        args.cases,
        size=args.size,
        seed=args.seed,
        min_lesion_px=args.min_lesion_px,
        write_volumes=not args.no_volumes,
    )
    print(f"wrote {manifest} in {time.perf_counter() - start:.1f} s")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from lsms.data.stats import dataset_statistics, format_statistics, write_statistics

    stats = dataset_statistics(args.manifest)
    print(format_statistics(stats))
    if args.json:
        print(f"wrote {write_statistics(stats, args.json)}")
    return 0
