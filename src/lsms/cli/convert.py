"""``lsms convert segnext``: initialise an LSMS preset from a SegNeXt MSCAN checkpoint and save it."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert foreign checkpoints into lsms checkpoints")
    formats = parser.add_subparsers(dest="format", metavar="FORMAT", required=True)
    segnext = formats.add_parser(
        "segnext",
        help="SegNeXt MSCAN ImageNet weights -> an LSMS checkpoint folder",
        description="Load an MSCAN checkpoint (original SegNeXt or mmseg-1.x keys; .pth read with the safe "
        "weights-only loader, or .safetensors) into an LSMS preset and save it with save_pretrained. Prints "
        "which keys were loaded, skipped or missing.",
    )
    segnext.add_argument("checkpoint", type=Path, help="MSCAN checkpoint, e.g. mscan_t.pth")
    segnext.add_argument("--model", default="lsms", help="LSMS preset whose widths match the checkpoint")
    segnext.add_argument("--out", type=Path, required=True, help="output checkpoint folder")
    segnext.add_argument(
        "--scope",
        choices=["visual-knowledge", "all"],
        default="visual-knowledge",
        help="visual-knowledge: only SVLA's 5x5 and strip convolutions (the paper); all: also stem, "
        "down-sampling, feed-forward and norms",
    )
    segnext.add_argument("--verbose", action="store_true", help="list every key")
    segnext.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import lsms
    from lsms.convert.segnext import load_segnext_weights

    model = lsms.create_model(args.model)
    report = load_segnext_weights(model, args.checkpoint, scope=args.scope)
    for title, keys in (("loaded", report.loaded), ("skipped", report.skipped), ("missing", report.missing)):
        print(f"{title}: {len(keys)}")
        for key in keys if args.verbose else keys[:5]:
            print(f"  {key}")
        if not args.verbose and len(keys) > 5:
            print(f"  ... {len(keys) - 5} more (--verbose lists all)")
    model.save_pretrained(args.out)
    print(f"saved {args.out}")
    return 0
