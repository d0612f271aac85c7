"""Exceptions with messages that say what was expected and what was received."""


class BalError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(BalError, ValueError):
    """An unknown preset, field or value in a run config."""


class DatasetNotAvailableError(BalError, RuntimeError):
    """A dataset that is neither provisioned locally nor downloadable from here."""


class InputError(BalError, ValueError):
    """Images, features or files that do not match what the run expects."""
