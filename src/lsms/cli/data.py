"""``lsms data``: check a dataset, preview it, make the synthetic benchmark (``lsms.cli.synth``) or a
referring dataset from labelled CT (``lsms.cli.describe``)."""

from __future__ import annotations

import argparse

from lsms.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="check, preview, generate or describe referring datasets",
        description="Tools for referring datasets: a manifest (.csv/.jsonl, see docs/data.md) or an LViT "
        "folder (Train_Folder/Val_Folder/Test_Folder with img/, labelcol/ and <Split>_text.xlsx).",
    )
    data_subparsers = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_subparsers.required = True

    check = data_subparsers.add_parser(
        "check",
        help="report missing/unreadable files, size mismatches, bad masks, duplicates, empty text, split leaks",
        description="Read every row and file; print one line per problem (and per warning: images far "
        "smaller than the model input) and a summary. Exit status 0 when the data are fine (warnings "
        "allowed), 1 when anything is wrong, 2 when the dataset cannot be read at all.",
    )
    _add_source_arguments(check)
    check.add_argument(
        "--workers", type=int, default=None, help="reader threads (default: CPUs + 2, at most 8)"
    )
    check.add_argument(
        "--image-size",
        type=int,
        nargs="+",
        default=[224],
        metavar="N",
        help="the model's input size H [W]: images with a side under a quarter of it are warned about "
        "(default: 224)",
    )
    check.set_defaults(func=run_check)

    preview = data_subparsers.add_parser(
        "preview",
        help="save a grid of images with mask overlays (red) and their sentences",
        description="Draw --n random samples (by --seed) with the ground-truth mask in red and the sentence.",
    )
    _add_source_arguments(preview)
    preview.add_argument("--out", required=True, help="output image (.png)")
    preview.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    preview.add_argument("--seed", type=int, default=0, help="which samples are drawn (default 0)")
    preview.add_argument(
        "--skip-invalid", action="store_true", help="skip (and report) rows whose files or fields are invalid"
    )
    preview.set_defaults(func=run_preview)

    from lsms.cli import describe, synth

    synth.register(data_subparsers)
    describe.register(data_subparsers)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a manifest (.csv/.jsonl) or an LViT dataset root / split folder")
    parser.add_argument("--split", choices=["train", "val", "test"], help="only this split (default: all)")
    parser.add_argument(
        "--window",
        help="CT window for DICOM/NIfTI/16-bit input: a preset (liver, abdomen, lung, bone, "
        "mediastinum, brain) or 'level,width' (default: no window)",
    )


def run_check(args: argparse.Namespace) -> int:
    from lsms.data.check import check_dataset, format_report

    size = args.image_size
    if len(size) not in (1, 2) or min(size) < 1:
        raise ConfigError(f"--image-size: expected one or two positive integers (H [W]), got {size}")
    report = check_dataset(
        args.path,
        split=args.split,
        window=args.window,
        workers=args.workers,
        model_input=(size[0], size[-1]),
    )
    print(format_report(report))
    return 0 if report.ok else 1


def run_preview(args: argparse.Namespace) -> int:
    from lsms.data.loading import load_samples
    from lsms.data.preview import preview_grid

    samples = load_samples(args.path, split=args.split, skip_invalid=args.skip_invalid)
    out = preview_grid(samples, args.out, n=args.n, seed=args.seed, window=args.window)
    print(f"wrote {out} ({min(args.n, len(samples))} of {len(samples)} samples)")
    return 0
