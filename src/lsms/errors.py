"""Errors raised for bad user input or a run that cannot go on. The CLI prints them as one line (no
traceback) and exits with the error's ``exit_code``: 2 for bad input, 3 for a diverged training run
(``lsms data check`` exits 1 when it found problems; see docs/data.md)."""


class LSMSError(Exception):
    """Base class: the message names the file, row or field and what was expected."""

    exit_code = 2


class DataError(LSMSError, ValueError):
    """A data file, row or field is missing, unreadable or malformed."""


class ConfigError(LSMSError, ValueError):
    """A configuration value or override is invalid."""


class CheckpointError(LSMSError, ValueError):
    """A weights file or checkpoint folder is missing, truncated or does not match the model."""


class TrainingError(LSMSError, RuntimeError):
    """Training stopped: a loss or gradient was NaN or infinite (the message names the batch)."""

    exit_code = 3
