"""Logging of the ``lsms`` loggers: set up once by the command line, and a ``run.log`` in every run folder.

On the terminal only warnings and errors appear (``lsms COMMAND: message``; results go to stdout);
``run.log`` keeps everything from INFO up with times, so a run folder says how it was made.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

LOGGER_NAME = "lsms"
RUN_LOG = "run.log"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Terminal(logging.StreamHandler):
    """A stderr handler that writes to the current ``sys.stderr`` (it may be replaced after set-up)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(
        self, value: TextIO
    ) -> None:  # StreamHandler.__init__ sets it; the property always reads sys.stderr
        pass


def configure(command: str) -> None:
    """Warnings and errors of the ``lsms`` loggers on stderr as ``lsms COMMAND: message``; once per process
    (a second call only renames the command)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)  # run.log handlers see INFO; the terminal handler filters to WARNING
    formatter = logging.Formatter(f"lsms {command}: %(message)s")
    for handler in logger.handlers:
        if isinstance(handler, _Terminal):
            handler.setFormatter(formatter)
            return
    handler = _Terminal()
    handler.setLevel(logging.WARNING)
    handler.setFormatter(formatter)
    logger.addHandler(handler)


@contextlib.contextmanager
def run_log(folder: str | Path) -> Iterator[Path]:
    """Append the ``lsms`` loggers' records (INFO and up) to ``FOLDER/run.log`` while the block runs; an
    error that ends the block is written there too (the caller still reports it)."""
    path = Path(folder) / RUN_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(LOGGER_NAME)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    handler = logging.FileHandler(
        path, encoding="utf-8", errors="backslashreplace"
    )  # argv may hold lone surrogates
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    logger.addHandler(handler)
    try:
        yield path
    except BaseException as error:
        # To the file only: the command line prints the error once itself.
        record = logger.makeRecord(
            LOGGER_NAME, logging.ERROR, __file__, 0, "%s: %s", (type(error).__name__, error), None
        )
        handler.handle(record)
        raise
    finally:
        logger.removeHandler(handler)
        handler.close()
