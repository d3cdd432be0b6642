"""The ``lsms`` command: one sub-command module per task, each exposing ``register(subparsers)``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import shlex
import sys

logger = logging.getLogger("lsms.cli")

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
    """Entry point; sub-commands set ``func(args) -> int | None`` and, when their output is a folder,
    ``run_folder(args) -> Path``, which gets a ``run.log`` (see :mod:`lsms.logs`). Errors print one line
    and exit with their ``exit_code`` (2 for bad input, 3 for a diverged training run)."""
    from lsms import __version__, logs
    from lsms.errors import LSMSError

    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    logs.configure(args.command)
    folder = args.run_folder(args) if getattr(args, "run_folder", None) else None
    try:
        with logs.run_log(folder) if folder is not None else contextlib.nullcontext():
            logger.info("lsms %s: lsms %s", __version__, shlex.join(argv))
            return int(args.func(args) or 0)
    except LSMSError as error:
        print(f"lsms {args.command}: error: {one_line(error)}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
