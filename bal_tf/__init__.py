"""bal-tf: Boundary Aware Learning (BAL) for out-of-distribution detection in Keras 3.

Higher scores mean more in-distribution, everywhere in this package.
"""

from bal_tf.config import GANConfig, RunConfig, get_preset
from bal_tf.detector import BALDetector

__all__ = ["BALDetector", "GANConfig", "RunConfig", "get_preset"]
__version__ = "0.1.0"
