"""Eq. 2, the one implementation: p1 = max softmax H(x), c = argmax, p2 = D(h(x), c), score p1 * p2.

**Direction: higher = more in-distribution.**

Every BAL score in the project comes from here: the detector graph (``bal_tf.detector``'s layers
call these functions, so the exported SavedModel and TFLite models do too), checkpoint selection
(``bal_tf.selection``) and evaluate.py's tables (``bal_tf.evaluation``). The functions are Keras
ops, so the same code runs inside a graph and on cached NumPy features.

The product is formed in the log domain: log p1 + log p2 = log max softmax + log sigmoid(D's
logit). In float32, p1 rounds to exactly 1.0 for many confident images, which would tie their
scores; log p1 = -log1p(sum over j != c of exp(l_j - l_c)) keeps them apart (``log_softmax``
would return exactly 0 for all of them).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from keras import ops


def predicted_class_and_log_p1(logits):
    """logits [N, K] -> (c = argmax [N] int32, log p1 = log max softmax [N])."""
    # tf.argmax, not keras.ops.argmax: the latter adds a BitwiseAnd (for -0.0) that the TFLite
    # builtin runtime lacks.
    predicted = tf.argmax(logits, axis=-1)
    top = ops.max(logits, axis=-1, keepdims=True)
    # 1 - one_hot(c) as a row of a constant matrix (a GATHER): TFLite's int8 ONE_HOT kernel
    # ignores its output scale (see bal_tf.discriminator.OneHot).
    not_predicted = ops.take(1.0 - ops.eye(logits.shape[-1]), predicted, axis=0)
    others = ops.exp(logits - top) * not_predicted
    return ops.cast(predicted, "int32"), -ops.log1p(ops.sum(others, axis=-1))


def log_p2(d_logit):
    """log p2 = log sigmoid(D's logit), exact for large |logit|."""
    return -ops.softplus(-d_logit)


def outputs(log_p1, d_logit) -> dict:
    """(log p1, D's logit) -> {p1, p2, score = p1 * p2, log_score}."""
    log_score = log_p1 + log_p2(d_logit)
    return {"p1": ops.exp(log_p1), "p2": ops.sigmoid(d_logit), "score": ops.exp(log_score),
            "log_score": log_score}


def discriminator_logits(discriminator, features: np.ndarray, classes: np.ndarray,
                         batch_size: int = 4096) -> np.ndarray:
    """D's logits for ``(features [N, m], classes [N])``, in batches (NumPy in, NumPy out)."""
    out = [np.asarray(discriminator([features[i : i + batch_size],
                                     np.asarray(classes[i : i + batch_size], np.int32)], training=False))
           for i in range(0, len(features), batch_size)]
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def score_features(discriminator, features: np.ndarray, logits: np.ndarray,
                   batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Eq. 2 on cached features and logits: ``{class, d_logit, p1, p2, score, log_score}``.

    The same functions as the detector graph, so the values equal ``BALDetector.predict``'s on
    the images these features came from (up to float32 round-off in the backbone).
    """
    predicted, log_p1 = predicted_class_and_log_p1(ops.convert_to_tensor(np.asarray(logits, np.float32)))
    predicted = np.asarray(predicted)
    d_logit = discriminator_logits(discriminator, features, predicted, batch_size)
    values = outputs(ops.convert_to_tensor(np.asarray(log_p1)), ops.convert_to_tensor(d_logit))
    return {"class": predicted, "d_logit": d_logit, **{k: np.asarray(v) for k, v in values.items()}}


def log_score(discriminator, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """log(p1 * p2) for cached features and logits (the detector's ``log_score``)."""
    return score_features(discriminator, features, logits)["log_score"]
