"""bal-tf: Boundary Aware Learning (BAL) for out-of-distribution detection in Keras 3.

Higher scores mean more in-distribution, everywhere in this package.
"""

from bal_tf.config import GANConfig, RunConfig, get_preset

__all__ = ["BALDetector", "GANConfig", "RunConfig", "get_preset"]
__version__ = "0.1.0"


def __getattr__(name):
    # BALDetector imports TensorFlow: only when asked for, so `train.py --help` and the config
    # stay light (and the CLIs can silence TensorFlow's import-time log lines first).
    if name == "BALDetector":
        from bal_tf.detector import BALDetector

        return BALDetector
    raise AttributeError(f"module 'bal_tf' has no attribute {name!r}")
