"""OOD detection metrics, computed with scikit-learn.

Convention (the paper's, after ODIN): **ID is the positive class** and every score is
"higher = more in-distribution".

* FPR95: the fraction of OOD samples accepted at the threshold that accepts 95% of ID samples.
* AUROC: area under the ROC curve of ID (positive) vs OOD.
* AUPR-In: average precision with ID positive, score as is.
* AUPR-Out: average precision with OOD positive, score negated.
* Detection error: min over thresholds of 0.5 (1 - TPR) + 0.5 FPR.

OpenOOD, pytorch-ood and oodeel make OOD the positive class; their "FPR95" (ID accepted as OOD
when 95% of OOD is caught) is reported here as ``fpr95_ood_positive``.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from bal_tf.errors import InputError

CONVENTION = "ID is the positive class; scores are higher = more in-distribution"


def _labels_and_scores(id_scores, ood_scores):
    id_scores = np.asarray(id_scores, np.float64).ravel()
    ood_scores = np.asarray(ood_scores, np.float64).ravel()
    if len(id_scores) == 0 or len(ood_scores) == 0:
        raise InputError(f"Need ID and OOD scores. Received: {len(id_scores)} ID, {len(ood_scores)} OOD")
    scores = np.concatenate([id_scores, ood_scores])
    if not np.isfinite(scores).all():
        raise InputError(f"Scores contain NaN or Inf ({np.sum(~np.isfinite(scores))} of {len(scores)}).")
    labels = np.concatenate([np.ones(len(id_scores)), np.zeros(len(ood_scores))])
    return labels, scores


def fpr_at_tpr(labels, scores, tpr_level: float = 0.95) -> float:
    """FPR at the first threshold whose TPR reaches ``tpr_level`` (positives = label 1)."""
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    return float(fpr[np.searchsorted(tpr, tpr_level, side="left")])


def ood_metrics(id_scores, ood_scores) -> dict[str, float]:
    """All detection metrics for one (ID, OOD) pair, under the ID-positive convention."""
    labels, scores = _labels_and_scores(id_scores, ood_scores)
    fpr, tpr, _ = skm.roc_curve(labels, scores)
    return {
        "auroc": float(skm.roc_auc_score(labels, scores)),
        "fpr95": fpr_at_tpr(labels, scores),
        "detection_error": float(np.min(0.5 * (1 - tpr) + 0.5 * fpr)),
        "aupr_in": float(skm.average_precision_score(labels, scores)),
        "aupr_out": float(skm.average_precision_score(1 - labels, -scores)),
        "fpr95_ood_positive": fpr_at_tpr(1 - labels, -scores),
    }


def auroc(id_scores, ood_scores) -> float:
    labels, scores = _labels_and_scores(id_scores, ood_scores)
    return float(skm.roc_auc_score(labels, scores))
