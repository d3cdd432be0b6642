"""The ``lsms`` command: one sub-command module per task, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module registers its sub-commands; the order is the order of ``lsms --help``.
COMMAND_MODULES = [
    "demo",
    "info",
    "data",
    "train",
    "evaluate",
    "predict",
    "explain",
    "export",
    "serve",
    "convert",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsms",
        description="Medical Image Referring Segmentation with LSMS: train, evaluate, predict, export, serve.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"lsms.cli.{module_name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; sub-commands set ``func(args) -> int | None``. Errors print one line and exit with
    their ``exit_code`` (2 for bad input, 3 for a diverged training run)."""
    from lsms.errors import LSMSError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LSMSError as error:
        print(f"lsms {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
