"""The OOD threshold: the score below which an image is called OOD.

Calibrated on held-out ID data so that 95% of it is accepted (the paper's FPR95 operating
point). It is a constant of the exported graph, returned as an output and written to
``export_info.json``.
"""

from __future__ import annotations

import numpy as np

from bal_tf.errors import InputError


def calibrate_threshold(log_scores: np.ndarray, tpr: float = 0.95) -> float:
    """The log-score threshold that accepts ``tpr`` of the given ID scores (score >= t)."""
    log_scores = np.asarray(log_scores, np.float64)
    if len(log_scores) == 0 or not np.isfinite(log_scores).all():
        raise InputError("Calibration needs finite held-out ID scores; received none or NaN/Inf.")
    return float(np.quantile(log_scores, 1.0 - tpr, method="lower"))
