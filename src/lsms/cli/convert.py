"""``lsms convert segnext``: initialise an LSMS preset from a SegNeXt MSCAN checkpoint and save it.
``lsms convert release``: a checkpoint folder as a small release (float16, text encoder referenced)."""

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
    release = formats.add_parser(
        "release",
        help="checkpoint folder -> a release: float16 weights, the installed text encoder referenced",
        description="Write a checkpoint (a save_pretrained folder such as a run's best/) as a release: "
        "weights in float16 and, when the frozen text encoder is the installed default, a reference to it "
        "(name and weights' SHA-256) instead of a copy. Put it in checkpoints/NAME (or a folder of "
        "$LSMS_CHECKPOINTS) to load it by NAME.",
    )
    release.add_argument("checkpoint", help="checkpoint folder or released name")
    release.add_argument("--out", type=Path, required=True, help="output folder")
    release.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16")
    release.set_defaults(func=run_release)


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


def run_release(args: argparse.Namespace) -> int:
    import torch

    from lsms.models.release import save_release

    out = save_release(args.checkpoint, args.out, dtype=getattr(torch, args.dtype))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"saved {out} ({size / 2**20:.1f} MiB)")
    return 0
