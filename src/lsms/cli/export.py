"""``lsms export``: a checkpoint as an ONNX file (dynamic batch, image size and sentence length)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lsms.cli import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX (run it with `lsms predict --backend onnx`)",
        description=(
            "Inputs: image float32 (B, C, H, W) in [0, 1] and, for text models, input_ids and attention_mask "
            "int64 (B, T) from the checkpoint's tokenizer; output: logits (B, 1, H, W). Batch, H, W and T are "
            "dynamic. Uses the TorchScript-based exporter (dynamo=False)."
        ),
    )
    options.add_checkpoint(parser)
    parser.add_argument("--out", required=True, type=Path, help="output file, e.g. model.onnx")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 17 or newer (default: 17)")
    options.add_overwrite(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lsms.inference.export import export_onnx
    from lsms.inference.outputs import check_outputs
    from lsms.registry import from_pretrained

    check_outputs([args.out], [args.checkpoint], args.overwrite)
    path = export_onnx(from_pretrained(args.checkpoint), args.out, opset=args.opset)
    print(path)
    return 0
