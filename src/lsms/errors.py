"""Errors raised for bad user input. The CLI prints them as one line (no traceback) and exits with 2."""


class LSMSError(Exception):
    """Base class: the message names the file, row or field and what was expected."""


class DataError(LSMSError, ValueError):
    """A data file, row or field is missing, unreadable or malformed."""


class ConfigError(LSMSError, ValueError):
    """A configuration value or override is invalid."""


class CheckpointError(LSMSError, ValueError):
    """A weights file or checkpoint folder is missing, truncated or does not match the model."""
