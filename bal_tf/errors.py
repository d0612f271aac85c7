"""Exceptions with messages that say what was expected and what was received."""


class BalError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(BalError, ValueError):
    """An unknown preset, field or value in a run config."""


class DatasetNotAvailableError(BalError, RuntimeError):
    """A dataset that is neither provisioned locally nor downloadable from here."""


class InputError(BalError, ValueError):
    """Images, features or files that do not match what the run expects."""


def describe_os_error(exc: OSError) -> str:
    """A one-line message for a failed read or write (a full disk, a missing permission)."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return (f"could not read or write a file{where}: {exc.strerror or exc}. Nothing half-written was "
            "kept; earlier results are untouched. Free space or fix permissions, then run the same "
            "command again.")
