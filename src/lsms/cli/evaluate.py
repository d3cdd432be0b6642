"""``lsms eval``: score a saved checkpoint on a split (per-image Dice and mIoU, pooled Dice and oIoU,
precision@K, and the wrong-lesion rate where the data list each slice's lesions) and write summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from lsms.cli import options
from lsms.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint: per-image and pooled Dice/IoU, precision@K at the masks' original resolution",
        description=(
            "Evaluate a saved checkpoint on a data split. Dice and mIoU are per-image means (LViT, the paper's "
            "metrics); pooled Dice and oIoU (= pooled IoU) sum intersection and union over all pixels of the "
            "split (GuideDecoder, torchmetrics); precision@K follows LAVT. With a lesions.csv beside the manifest "
            "(synthetic data), the wrong-lesion rate too. See docs/metrics.md. For a no-text "
            "control use --text shuffled (another sample's sentence); --text none feeds an empty string."
        ),
    )
    options.add_checkpoint(parser)
    parser.add_argument(
        "--data", required=True, help="manifest (CSV/JSONL) or LViT dataset root / split folder"
    )
    parser.add_argument(
        "--split", default="val", help="split to evaluate: train, val, test or all (default: val)"
    )
    parser.add_argument(
        "--text",
        default="full",
        choices=["full", "none", "shuffled", "half", "quarter"],
        help="expression given to the model (default: full)",
    )
    parser.add_argument("--out", type=Path, help="output folder (default: CHECKPOINT/eval/SPLIT-TEXT)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default: 8)")
    options.add_prediction_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'shuffled' derangement (default: 0)")
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes (default: 0)")
    parser.add_argument(
        "--save-masks",
        action="store_true",
        help="also write each predicted mask as OUT/masks/ID_mask.png (0/255, as lsms predict writes it)",
    )
    options.add_no_progress(parser)
    parser.set_defaults(func=run, run_folder=_out)


def _out(args: argparse.Namespace) -> Path:
    return args.out if args.out is not None else args.checkpoint / "eval" / f"{args.split}-{args.text}"


def run(args: argparse.Namespace) -> int:
    from lsms.data.loading import load_samples
    from lsms.evaluation import evaluate
    from lsms.evaluation.evaluate import CONVENTIONS
    from lsms.evaluation.referring import load_lesion_map

    predictor = options.load_predictor(args, batch_size=args.batch_size)
    samples = load_samples(args.data, split=None if args.split == "all" else args.split)
    if not samples:
        raise DataError(f"{args.data}: no samples in split {args.split!r} (use --split all for every row)")
    out = _out(args)
    result = evaluate(
        predictor,
        samples,
        text_variant=args.text,
        seed=args.seed,
        progress=not args.no_progress,
        num_workers=args.workers,
        mask_dir=out / "masks" if args.save_masks else None,
        lesions=load_lesion_map(args.data, samples),
    )
    result.settings = {
        "checkpoint": str(args.checkpoint.resolve()),
        "data": str(Path(args.data).resolve()),
        "split": args.split,
        "device": str(predictor.backend.device),
        **result.settings,
    }
    summary_path = result.to_json(out / "summary.json")
    print(result.markdown_table())
    print(f"\n{CONVENTIONS}")
    print(f"\nwrote {summary_path}")
    return 0
