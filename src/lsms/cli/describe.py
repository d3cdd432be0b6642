"""``lsms data describe`` (registered by ``lsms.cli.data``)."""

from __future__ import annotations

import argparse


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add the ``describe`` sub-command to ``lsms data``."""
    describe = data_subparsers.add_parser(
        "describe",
        help="make a referring dataset from labelled CT: measured lesion attributes, unique expressions",
        description="Read a CT (NIfTI file or DICOM series folder; or a folder of them) and its labels "
        "(a label map, an instance map, or a folder with one NIfTI/DICOM mask per structure); write "
        "manifest.csv (one row per slice x lesion, full/half/quarter expressions that each match only "
        "their lesion), PNG slices, masks, lesions.csv (measured attributes) and describe.json. "
        "See docs/data.md.",
    )
    describe.add_argument(
        "--image", required=True, help="CT: NIfTI file, DICOM series folder, or a folder of them"
    )
    describe.add_argument(
        "--labels",
        required=True,
        help="label map, instance map (--instances) or folder of per-structure masks; a folder of them "
        "(same names as the CTs) with a folder of CTs",
    )
    describe.add_argument("--out", required=True, help="output folder")
    describe.add_argument(
        "--organ",
        help="the organ: its label in a label map (default 1), its mask's name in a folder (default liver), "
        "or name=label (kidney=1); the name is used in the text",
    )
    describe.add_argument(
        "--lesion",
        action="append",
        metavar="LABEL[=TYPE]",
        help="label-map lesion label and type, repeatable (default 2=tumor)",
    )
    describe.add_argument(
        "--instances",
        action="store_true",
        help="LABELS is an instance map: every non-zero value is one lesion",
    )
    describe.add_argument("--organ-mask", help="organ mask for an instance map (non-zero = organ)")
    describe.add_argument("--lesion-type", help="type of every lesion of an instance map (default: none)")
    describe.add_argument(
        "--segments", help="Couinaud segment map (1-8 = I-VIII) on the CT's grid: locations by segment"
    )
    describe.add_argument(
        "--window",
        default="liver",
        help="CT window of the PNG slices: a preset or 'level,width' (default liver: 60,400)",
    )
    describe.add_argument(
        "--min-area-px", type=int, default=20, help="smallest lesion area on a slice for a row (default 20)"
    )
    describe.add_argument("--seed", type=int, default=0, help="seed of the expression choice and splits")
    describe.set_defaults(func=run_describe)


def run_describe(args: argparse.Namespace) -> int:
    from lsms.data.describe.core import describe_dataset, format_summary

    summary = describe_dataset(
        args.image,
        args.labels,
        args.out,
        organ=args.organ,
        lesion_labels=args.lesion,
        instances=args.instances,
        organ_mask=args.organ_mask,
        lesion_type=args.lesion_type,
        segments=args.segments,
        window=args.window,
        min_area_px=args.min_area_px,
        seed=args.seed,
    )
    print(format_summary(summary))
    return 0
