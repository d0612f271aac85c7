"""RDM's losses, Eqs. 8-12, on discriminator logits.

D(f, c) = sigmoid(l) with l the discriminator's logit. Every ``log D`` and ``log(1 - D)`` is
written through softplus, which is exact and never overflows:

    -log D(f, c)      = -log sigmoid(l)     = softplus(-l)   ("this pair is ID")
    -log(1 - D(f, c)) = -log(1 - sigmoid(l)) = softplus(l)   ("this pair is OOD")

Reading of Eqs. 8 and 9 (``negative_loss="bce"``, the default). Taken literally, the negative terms
``+ E log D(f, T(c))`` (Eq. 8) and ``+ lambda_c E log D(f_hat, c_hat)`` (Eq. 9) are minimized by
driving D to 0, where log D has no lower bound: the loss diverges to -inf once D separates well.
We use the bounded form that the paper's text describes ("identify these mismatch pairs as OOD",
"treated as negative pairs"), the same one Eq. 10 uses for G's samples: the binary cross-entropy
of an OOD target, -log(1 - D). The two forms push D in the same direction; only the bounded one
converges. The printed form stays selectable (``negative_loss="log_d"``, the ``paper_literal``
preset): there log D is clamped at ``LOG_D_FLOOR``, PyTorch's BCELoss guard, the least needed to run.

How the negative pairs of L_s and L_u are made, and with which weight, is ``bal_tf.negatives``.
"""

from __future__ import annotations

import numpy as np
from keras import ops

# log D is clamped here in the printed form of Eqs. 8-9 (PyTorch's BCELoss clamps its logs at -100).
LOG_D_FLOOR = -100.0


def id_loss(logits):
    """Mean of -log D over pairs that should be ID (target 1)."""
    return ops.mean(ops.softplus(-logits))


def ood_loss(logits):
    """Mean of -log(1 - D) over pairs that should be OOD (target 0)."""
    return ops.mean(ops.softplus(logits))


def negative_loss(logits, form: str = "bce"):
    """How negative pairs enter Eqs. 8-9, averaged over the pairs: ``bce`` = E -log(1 - D)
    (bounded below by 0); ``log_d`` = E log D as printed, with log D = -softplus(-l) clamped at
    ``LOG_D_FLOOR``."""
    if form == "bce":
        per_pair = ops.softplus(logits)
    elif form == "log_d":
        per_pair = ops.maximum(-ops.softplus(-logits), LOG_D_FLOOR)
    else:
        raise ValueError(f"form must be bce or log_d. Received: form={form!r}")
    return ops.mean(per_pair)


def vanilla_loss(real_logits, generated_logits):
    """L_t, Eq. 10: -E log D(f, c) - E log(1 - D(G(z), c)), the cGAN discriminator loss."""
    return id_loss(real_logits) + ood_loss(generated_logits)


def term_loss(real_logits, weighted_negatives, form: str = "bce"):
    """L_s (Eq. 8) or L_u (Eq. 9): the real pairs as ID, plus each source's negatives with its
    weight: -E log D(f, c) + sum_i w_i E neg(pairs_i). ``weighted_negatives``: ``(weight, logits)``
    per source (``negative_loss``). L_s has one source, T(c)'s pairs, weight 1; L_u has
    the trivial pairs at lambda_c, the hard ones at ``hard_weight`` and the default's ladder and floor references at theirs."""
    value = id_loss(real_logits)
    for weight, logits in weighted_negatives:
        value = value + weight * negative_loss(logits, form)
    return value


def nearest_same_class_l1(generated, generated_labels, real, real_labels):
    """min over f_c in M_c of ||f_c - G(z, c)||_1 (Eq. 12's regularizer), averaged over G(z, c).

    M_c is the real features of class c in ``real`` (the current batch, by default); a
    generated feature whose class is absent from them contributes nothing. For M_c over the
    training set see ``nearest_in_memory_bank_l1``.
    """
    same_class = ops.equal(ops.cast(generated_labels, "int32")[:, None],
                           ops.cast(real_labels, "int32")[None, :])
    # The nearest same-class feature is found without gradient; the min's gradient flows to it
    # alone, so differentiating ||G(z, c) - f_nearest||_1 gives the same gradient without the
    # backward pass through the [G, R, m] differences.
    distances = ops.stop_gradient(ops.sum(ops.abs(generated[:, None, :] - real[None, :, :]), axis=-1))  # [G, R]
    large = ops.max(distances) + 1.0
    nearest_index = ops.argmin(ops.where(same_class, distances, large), axis=1)
    nearest = ops.sum(ops.abs(generated - ops.take(ops.stop_gradient(real), nearest_index, axis=0)), axis=-1)
    has_match = ops.cast(ops.any(same_class, axis=1), nearest.dtype)
    return ops.sum(nearest * has_match) / ops.maximum(ops.sum(has_match), 1.0)


def class_memory_bank(features, labels, num_classes: int, size: int, seed: int = 0) -> np.ndarray:
    """M_c of Eq. 12 over the training set: ``[K, B, m]``, B features of each class c.

    ``size`` > 0: a fixed random draw of ``size`` features per class (without replacement where
    the class has enough); 0: every feature of the class (B = the largest class; smaller classes
    repeat their own features, which changes no nearest-neighbour distance). A class without
    features gets a draw from all classes, so its generated features are still pulled to data.
    """
    features = np.asarray(features, np.float32)
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    width = size if size > 0 else int(counts.max())
    bank = np.empty((num_classes, width, features.shape[-1]), np.float32)
    for c in range(num_classes):
        members = features[labels == c] if counts[c] else features
        if size > 0:
            chosen = rng.choice(len(members), width, replace=len(members) < width)
        else:
            chosen = np.resize(np.arange(len(members)), width)
        bank[c] = members[chosen]
    return bank


def nearest_in_memory_bank_l1(generated, generated_labels, bank):
    """Eq. 12's regularizer with M_c from a memory bank: ``bank`` is ``[K, B, m]``, B training
    features of each class c (a class with fewer repeats its own, which leaves every minimum
    unchanged). Returns the mean over G(z, c) of min_{f_c in bank[c]} ||f_c - G(z, c)||_1."""
    candidates = ops.take(bank, ops.cast(generated_labels, "int32"), axis=0)  # [G, B, m]
    distances = ops.sum(ops.abs(candidates - generated[:, None, :]), axis=-1)  # [G, B]
    return ops.mean(ops.min(distances, axis=1))


def generator_loss(generated_logits, l1_distance, lambda_l1: float = 0.01):
    """L_g, Eq. 12 as written: E log(1 - D(G(z, c), c)) + lambda * min ||f_c - G(z, c)||_1
    (log(1 - sigmoid(l)) = -softplus(l)). Returns the loss and its adversarial part."""
    adversarial = -ops.mean(ops.softplus(generated_logits))
    return adversarial + lambda_l1 * l1_distance, adversarial
