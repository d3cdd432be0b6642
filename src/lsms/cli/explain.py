"""``lsms explain``: the stage features S1-S4 as heat maps over the image for one sentence (Figure 5)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lsms.cli import options
from lsms.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="show where the model looked: stage feature heat maps S1-S4 and the prediction",
        description=(
            "Writes NAME_S1.png .. NAME_S4.png (per-stage feature energy over the image: L2 norm over channels, "
            "or the channel mean of |F_i|, resized to the image, min-max normalised, colormap blended over the "
            "image), NAME_overlay.png (prediction green, the sentence below) and NAME_panel.png (S1..S4 and the "
            "prediction side by side), as the paper's Figure 5."
        ),
    )
    options.add_checkpoint(parser)
    parser.add_argument(
        "--image", required=True, type=Path, help="a 2D image file (or a volume with --slice)"
    )
    parser.add_argument("--text", default="", help="the referring sentence")
    parser.add_argument("--slice", type=int, help="slice index of a DICOM/NIfTI volume")
    parser.add_argument("--mask", type=Path, help="optional ground-truth mask, drawn red in the panel")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    parser.add_argument(
        "--reduction", choices=["l2", "mean-abs"], default="l2", help="channel reduction (default: l2)"
    )
    parser.add_argument("--cmap", default="jet", help="matplotlib colormap (default: jet; e.g. inferno)")
    options.add_prediction_options(parser)
    options.add_overwrite(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    from lsms.data.io import load_mask
    from lsms.inference.explain import explain, explanation_panel, heatmap_overlay
    from lsms.inference.outputs import check_outputs, output_stem, save_png
    from lsms.viz.overlay import captioned_overlay

    if args.cmap not in matplotlib.colormaps:
        raise ConfigError(f"--cmap {args.cmap!r}: not a matplotlib colormap (e.g. jet, inferno, viridis)")
    predictor = options.load_predictor(args)
    if predictor.uses_text and not args.text.strip():
        raise ConfigError("--text: give the referring sentence, e.g. --text 'a lesion in the left lung'")
    stem = output_stem(args.image) + (f"_z{args.slice}" if args.slice is not None else "")
    stages = [args.out / f"{stem}_S{i}.png" for i in range(1, 5)]
    overlay, panel = args.out / f"{stem}_overlay.png", args.out / f"{stem}_panel.png"
    inputs = [args.image] + ([args.mask] if args.mask else [])
    check_outputs([*stages, overlay, panel], inputs, args.overwrite)
    truth = load_mask(args.mask, slice_index=args.slice) if args.mask else None
    result = explain(predictor, args.image, args.text, slice_index=args.slice, reduction=args.reduction)
    if truth is not None and truth.shape != result.prediction.mask.shape:
        raise ConfigError(
            f"{args.mask}: mask of shape {truth.shape}; expected the image's {result.prediction.mask.shape}"
        )
    image = result.prediction.image
    for path, heat in zip(stages, result.heatmaps, strict=True):
        save_png(heatmap_overlay(image, heat, args.cmap), path)
    save_png(captioned_overlay(image, result.prediction.mask, args.text, mask=truth), overlay)
    explanation_panel(result, args.text, panel, mask=truth, cmap=args.cmap)
    for path in [*stages, overlay, panel]:
        print(path)
    return 0
