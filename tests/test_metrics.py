"""Metrics against hand-computed values (ties included) and an independent threshold sweep."""

import numpy as np
import pytest

from bal_tf import metrics
from bal_tf.errors import InputError

ID = [0.9, 0.8, 0.8, 0.3]
OOD = [0.8, 0.2, 0.1]


def test_hand_computed_values_with_ties():
    m = metrics.ood_metrics(ID, OOD)
    assert m["auroc"] == pytest.approx(10 / 12)  # the 0.8-0.8 tie counts one half
    assert m["fpr95"] == pytest.approx(1 / 3)  # accepting all ID (t <= 0.3) accepts OOD 0.8
    assert m["detection_error"] == pytest.approx(1 / 6)  # t = 0.3: 0.5 * 0 + 0.5 * 1/3
    assert m["aupr_in"] == pytest.approx(0.25 * 1 + 0.5 * 0.75 + 0.25 * 0.8)
    assert m["aupr_out"] == pytest.approx(1 / 3 + 1 / 3 + 1 / 3 * 0.5)
    assert m["fpr95_ood_positive"] == pytest.approx(0.75)  # catching all OOD rejects 3 of 4 ID


def test_perfect_and_reversed_detectors():
    assert metrics.ood_metrics([2, 3], [0, 1])["auroc"] == 1.0
    assert metrics.ood_metrics([2, 3], [0, 1])["fpr95"] == 0.0
    assert metrics.ood_metrics([0, 1], [2, 3])["auroc"] == 0.0
    assert metrics.ood_metrics([0, 1], [2, 3])["fpr95"] == 1.0


def test_bad_input():
    with pytest.raises(InputError, match="NaN or Inf"):
        metrics.ood_metrics([0.1, np.nan], [0.2])
    with pytest.raises(InputError, match="Need ID and OOD"):
        metrics.ood_metrics([], [0.2])


def sweep_reference(id_scores, ood_scores):
    """ODIN's definitions by brute force over every threshold t (accept when score >= t)."""
    thresholds = np.unique(np.r_[id_scores, ood_scores, np.inf])[::-1]
    tpr = np.array([(id_scores >= t).mean() for t in thresholds])
    fpr = np.array([(ood_scores >= t).mean() for t in thresholds])
    tp = np.array([(id_scores >= t).sum() for t in thresholds])
    fp = np.array([(ood_scores >= t).sum() for t in thresholds])
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    aupr_in = np.sum(np.diff(tpr, prepend=0.0) * precision)
    # OOD positive: accept as OOD when score <= t
    o_tpr = np.array([(ood_scores <= t).mean() for t in thresholds[::-1]])
    o_tp = np.array([(ood_scores <= t).sum() for t in thresholds[::-1]])
    o_fp = np.array([(id_scores <= t).sum() for t in thresholds[::-1]])
    o_precision = np.where(o_tp + o_fp > 0, o_tp / np.maximum(o_tp + o_fp, 1), 1.0)
    return {
        "fpr95": fpr[tpr >= 0.95].min(),
        "auroc": np.trapezoid(tpr, fpr),
        "detection_error": np.min(0.5 * (1 - tpr) + 0.5 * fpr),
        "aupr_in": aupr_in,
        "aupr_out": np.sum(np.diff(o_tpr, prepend=0.0) * o_precision),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_an_independent_threshold_sweep(seed):
    rng = np.random.default_rng(seed)
    id_scores = np.round(rng.normal(1.0, 1.0, 1500), 2)  # rounding creates ties
    ood_scores = np.round(rng.normal(0.0, 1.0, 1000), 2)
    ours = metrics.ood_metrics(id_scores, ood_scores)
    reference = sweep_reference(id_scores, ood_scores)
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, abs=1e-3), name
