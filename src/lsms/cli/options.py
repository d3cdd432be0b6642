"""Options shared by the sub-commands that run a checkpoint, defined once so that they read alike."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lsms.runtime import PRECISIONS

if TYPE_CHECKING:
    from lsms.predictor import Predictor


def _checkpoint(value: str) -> Path:
    """argparse type of --checkpoint: the folder, or the released checkpoint of that name."""
    from lsms.errors import CheckpointError
    from lsms.models.pretrained import resolve_checkpoint

    try:
        return resolve_checkpoint(value)
    except CheckpointError as error:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(error)) from None


def add_checkpoint(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """--checkpoint: a save_pretrained folder or a released name (required unless ``default``)."""
    parser.add_argument(
        "--checkpoint",
        required=default is None,
        default=default,
        type=_checkpoint,
        help="folder written by save_pretrained, or the name of a released checkpoint (e.g. qata-cov19)"
        + (f" (default: {default})" if default else ""),
    )


def add_prediction_options(parser: argparse.ArgumentParser) -> None:
    """--threshold, --image-size, --window, --device and --precision: how a checkpoint predicts."""
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold (default: 0.5)")
    parser.add_argument(
        "--image-size",
        "--size",
        dest="image_size",
        type=int,
        nargs="+",
        metavar="N",
        help="input size H [W] the model sees (default: the checkpoint's; else its preset's)",
    )
    parser.add_argument(
        "--window",
        help="CT window: a preset (liver, lung, ...) or 'LEVEL,WIDTH' in HU (default: the checkpoint's, if any)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (a GPU when there is one), cpu, cuda, cuda:1, ..."
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="PyTorch autocast precision (default auto: bf16 on GPUs and on CPUs with native bfloat16, else fp32)",
    )


def add_backend(parser: argparse.ArgumentParser) -> None:
    """--backend and --onnx: PyTorch or ONNX Runtime (see :class:`lsms.predictor.Predictor`)."""
    parser.add_argument(
        "--backend",
        choices=["auto", "pytorch", "onnx"],
        default="auto",
        help=(
            "auto (default): ONNX Runtime on the CPU when the onnx extra is installed and --precision is "
            "not given (about twice as fast at batch 1, float32; the model is exported once and cached in "
            "$LSMS_CACHE_DIR or ~/.cache/lsms), else PyTorch"
        ),
    )
    parser.add_argument(
        "--onnx", type=Path, help="run this ONNX file (see `lsms export`) instead of the cache"
    )


def add_overwrite(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def load_predictor(args: argparse.Namespace, **kwargs) -> Predictor:
    """The predictor of ``--checkpoint`` with the options of :func:`add_prediction_options`; ``kwargs`` add
    the sub-command's own (batch size, ONNX backend, ...)."""
    from lsms.predictor import Predictor
    from lsms.preprocess import check_input_size, parse_image_size
    from lsms.registry import from_pretrained
    from lsms.runtime import resolve_device

    model = from_pretrained(args.checkpoint, device=str(resolve_device(args.device)))
    image_size = None
    if args.image_size is not None:
        image_size = parse_image_size(args.image_size, "--image-size (--size)")
        check_input_size(model, image_size, "image size")  # named as a user reads it, before the predictor
    return Predictor(
        model,
        image_size=image_size,
        window=args.window,
        threshold=args.threshold,
        precision=args.precision,
        backend=getattr(args, "backend", "pytorch"),
        onnx=getattr(args, "onnx", None),
        **kwargs,
    )
