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


def one_line(error: Exception) -> str:
    """The error's own message. A DataLoader worker (``num_workers > 0``) re-raises an error with the
    worker's traceback as its message, whose last line is ``module.Class: message``."""
    lines = str(error).strip().splitlines()
    prefix = f"{type(error).__module__}.{type(error).__name__}: "
    if len(lines) > 1 and lines[-1].startswith(prefix):
        return lines[-1][len(prefix) :]
    return str(error)


def main(argv: list[str] | None = None) -> int:
    """Entry point; sub-commands set ``func(args) -> int | None``. Errors print one line and exit with
    their ``exit_code`` (2 for bad input, 3 for a diverged training run)."""
    from lsms.errors import LSMSError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LSMSError as error:
        print(f"lsms {args.command}: error: {one_line(error)}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
