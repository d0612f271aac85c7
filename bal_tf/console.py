"""What the command-line tools print: results and progress bars, not TensorFlow's log lines.

``quiet_tensorflow()`` runs before TensorFlow is first imported. TensorFlow writes its C++ INFO
and WARNING lines (oneDNN, CPU features, "All log messages before absl::InitializeLog()")
straight to the process's stderr while it is imported, and ``TF_CPP_MIN_LOG_LEVEL`` does not
remove them all: the import runs with stderr sent to a file, which is replayed if the import
fails. Afterwards ``TF_CPP_MIN_LOG_LEVEL=3`` and the Python loggers keep the rest quiet.
``--verbose`` (``quiet_tensorflow(verbose=True)``) leaves all of it alone.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings


def quiet_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and Keras without their log lines (unless ``verbose``)."""
    if verbose or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
            import keras  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    tf.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    # Messages with a cause that is ours to fix are fixed at the cause; these two are Keras'
    # and TensorFlow's own chatter about internals a user cannot act on.
    warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword")
    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
