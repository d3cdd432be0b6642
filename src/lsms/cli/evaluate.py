"""``lsms eval``: score a saved checkpoint on a split (per-image Dice and mIoU, pooled Dice and oIoU,
precision@K, and the wrong-lesion rate where the data list each slice's lesions) and write summary.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from lsms.errors import CheckpointError, ConfigError, DataError
from lsms.runtime import PRECISIONS


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
    parser.add_argument("--checkpoint", required=True, type=Path, help="folder written by save_pretrained")
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
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default: 0.5)")
    parser.add_argument(
        "--size",
        type=int,
        nargs="+",
        metavar="N",
        help="input size H [W] (default: the checkpoint's preprocess)",
    )
    parser.add_argument(
        "--window",
        help="CT window: a preset (liver, lung, ...) or 'LEVEL,WIDTH' in HU (default: the checkpoint's, if any)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'shuffled' derangement (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (default: auto)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="autocast precision (default auto: bf16 on GPUs and on CPUs with native bfloat16, else fp32)",
    )
    parser.add_argument("--workers", type=int, default=0, help="data loader worker processes (default: 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=run)


def _preprocess_of(checkpoint: Path) -> dict:
    """The ``preprocess`` dict of the checkpoint's config.json (image_size [H, W], optional window)."""
    from lsms.models.pretrained import CONFIG_NAME, read_checkpoint_config

    preprocess = read_checkpoint_config(checkpoint).get("preprocess") or {}
    if not isinstance(preprocess, dict):
        raise CheckpointError(
            f"{checkpoint / CONFIG_NAME}: field 'preprocess' must be an object, got {type(preprocess).__name__}"
        )
    return preprocess


def _image_size(size: list[int] | None, preprocess: dict, checkpoint: Path) -> tuple[int, int]:
    if size is None:
        size = preprocess.get("image_size")
        if size is None:
            raise CheckpointError(
                f"{checkpoint / 'config.json'}: no preprocess.image_size; pass --size H [W]"
            )
    if isinstance(size, int):
        size = [size]
    if len(size) not in (1, 2) or any(int(value) < 1 for value in size):
        raise ConfigError(f"--size: expected one or two positive integers (H [W]), got {size}")
    return (int(size[0]), int(size[-1]))


def run(args: argparse.Namespace) -> int:
    from lsms.data.io import parse_window
    from lsms.data.samples import load_samples
    from lsms.evaluation import evaluate
    from lsms.evaluation.evaluate import CONVENTIONS
    from lsms.evaluation.referring import load_lesion_map
    from lsms.models.pretrained import from_pretrained
    from lsms.runtime import resolve_device, set_channels_last

    preprocess = _preprocess_of(args.checkpoint)
    image_size = _image_size(args.size, preprocess, args.checkpoint)
    window = parse_window(args.window if args.window is not None else preprocess.get("window"))
    device = resolve_device(args.device)
    samples = load_samples(args.data, split=None if args.split == "all" else args.split)
    if not samples:
        raise DataError(f"{args.data}: no samples in split {args.split!r} (use --split all for every row)")
    model = set_channels_last(from_pretrained(args.checkpoint, device=str(device)))
    result = evaluate(
        model,
        samples,
        image_size=image_size,
        text_variant=args.text,
        batch_size=args.batch_size,
        threshold=args.threshold,
        seed=args.seed,
        progress=not args.no_progress,
        window=window,
        num_workers=args.workers,
        precision=args.precision,
        lesions=load_lesion_map(args.data, samples),
    )
    result.settings = {
        "checkpoint": str(args.checkpoint.resolve()),
        "data": str(Path(args.data).resolve()),
        "split": args.split,
        "device": str(device),
        **result.settings,
    }
    out = args.out if args.out is not None else args.checkpoint / "eval" / f"{args.split}-{args.text}"
    summary_path = result.to_json(out / "summary.json")
    print(result.markdown_table())
    print(f"\n{CONVENTIONS}")
    print(f"\nwrote {summary_path}")
    return 0
