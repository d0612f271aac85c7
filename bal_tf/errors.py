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


def run_cli(action, verbose: bool = False) -> int:
    """Runs a command's body; a deliberate error or a failed read/write becomes one ``error:``
    line and exit code 2 (no traceback), success exit code 0. TensorFlow's log lines are off
    unless ``verbose`` (``bal_tf.console``)."""
    from bal_tf.console import quiet_tensorflow

    quiet_tensorflow(verbose)
    try:
        action()
    except BalError as exc:
        print(f"error: {exc}")
        return 2
    except OSError as exc:
        print(f"error: {describe_os_error(exc)}")
        return 2
    return 0
