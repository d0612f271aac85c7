"""RDM losses, Eqs. 8-12, on discriminator logits.

D(f, c) = sigmoid(l) with l the discriminator's logit. Every ``log D`` and ``log(1 - D)`` is
written through softplus, which is exact and never overflows:

    -log D(f, c)      = -log sigmoid(l)     = softplus(-l)   ("this pair is ID")
    -log(1 - D(f, c)) = -log(1 - sigmoid(l)) = softplus(l)   ("this pair is OOD")

Reading of Eqs. 8 and 9 (``negative_loss="bce"``, the default). Taken literally, the negative terms ``+ E log D(f, T(c))`` (Eq. 8) and
``+ lambda_c E log D(f_hat, c_hat)`` (Eq. 9) are minimized by driving D to 0, where log D has no
lower bound: the loss diverges to -inf once D separates well. We use the bounded form that the
paper's text describes ("identify these mismatch pairs as OOD", "treated as negative pairs"),
the same one Eq. 10 uses for G's samples: the binary cross-entropy of an OOD target,
-log(1 - D). The two forms push D in the same direction; only the bounded one converges.
The printed form stays selectable (``negative_loss="log_d"``, the ``paper_literal`` preset):
there log D is clamped at ``LOG_D_FLOOR``, PyTorch's BCELoss guard, the least needed to run.
"""

from __future__ import annotations

from keras import ops

# log D is clamped here in the printed form of Eqs. 8-9 (PyTorch's BCELoss clamps its logs at -100).
LOG_D_FLOOR = -100.0


def id_loss(logits):
    """Mean of -log D over pairs that should be ID (target 1)."""
    return ops.mean(ops.softplus(-logits))


def ood_loss(logits):
    """Mean of -log(1 - D) over pairs that should be OOD (target 0)."""
    return ops.mean(ops.softplus(logits))


def graded_target(ratio, target_range):
    """The soft target of a boundary candidate at k-NN distance ``ratio`` (in units of its class's
    ID level): 1 up to ``target_range[0]``, 0 from ``target_range[1]``, linear in between."""
    low, high = float(target_range[0]), float(target_range[1])
    return ops.clip((high - ratio) / (high - low), 0.0, 1.0)


def graded_loss(logits, targets):
    """Mean binary cross-entropy of D against soft targets t: -t log D - (1 - t) log(1 - D).
    Minimized at D = t, so it fixes D's level between the ID pairs (t = 1) and the negatives
    (t = 0) rather than leaving that region free."""
    targets = ops.cast(targets, logits.dtype)
    return ops.mean(targets * ops.softplus(-logits) + (1.0 - targets) * ops.softplus(logits))


def negative_term(logits, form: str = "bce"):
    """How a negative pair enters Eqs. 8-9: ``bce`` = E -log(1 - D) (bounded below by 0);
    ``log_d`` = E log D as printed, with log D = -softplus(-l) clamped at ``LOG_D_FLOOR``."""
    if form == "bce":
        return ood_loss(logits)
    if form == "log_d":
        return ops.mean(ops.maximum(-ops.softplus(-logits), LOG_D_FLOOR))
    raise ValueError(f"form must be bce or log_d. Received: form={form!r}")


def vanilla_loss(real_logits, generated_logits):
    """L_t, Eq. 10: -E log D(f, c) - E log(1 - D(G(z), c)), the cGAN discriminator loss."""
    return id_loss(real_logits) + ood_loss(generated_logits)


def shuffle_loss(real_logits, shuffled_logits, form: str = "bce"):
    """L_s, Eq. 8: real features with a wrong label T(c) are OOD; with their own label, ID."""
    return negative_term(shuffled_logits, form) + id_loss(real_logits)


def uniform_loss(real_logits, trivial_logits, hard_logits=None, lambda_c: float = 0.7,
                 hard_weight: float = 1.0, form: str = "bce", pool_hard: bool = False):
    """L_u, Eq. 9: lambda_c-weighted trivial OOD pairs, plus the real pairs as ID.

    The hard OOD features G(z', c) of RSM "introduce no conflicts, and they are treated as
    negative OOD pairs for calculating uniform loss" (Sec. 4.3): by default they enter with
    ``hard_weight`` (1), not lambda_c. With ``pool_hard`` they join the trivial pairs in one
    expectation over P_u, weighted lambda_c (Algorithm 1, line 7 samples both as <f_hat, c_hat>).
    """
    if hard_logits is not None and pool_hard:
        return lambda_c * negative_term(ops.concatenate([trivial_logits, hard_logits], axis=0), form) \
            + id_loss(real_logits)
    loss = lambda_c * negative_term(trivial_logits, form) + id_loss(real_logits)
    if hard_logits is not None:
        loss = loss + hard_weight * negative_term(hard_logits, form)
    return loss


def nearest_same_class_l1(generated, generated_labels, real, real_labels):
    """min over f_c in M_c of ||f_c - G(z, c)||_1 (Eq. 12's regularizer), averaged over G(z, c).

    M_c is the real features of class c in ``real`` (the current batch, by default); a
    generated feature whose class is absent from them contributes nothing. For M_c over the
    training set see ``nearest_in_memory_bank_l1``.
    """
    distances = ops.sum(ops.abs(generated[:, None, :] - real[None, :, :]), axis=-1)  # [G, R]
    same_class = ops.equal(ops.cast(generated_labels, "int32")[:, None],
                           ops.cast(real_labels, "int32")[None, :])
    large = ops.max(distances) + 1.0
    nearest = ops.min(ops.where(same_class, distances, large), axis=1)
    has_match = ops.cast(ops.any(same_class, axis=1), nearest.dtype)
    return ops.sum(nearest * has_match) / ops.maximum(ops.sum(has_match), 1.0)


def nearest_in_memory_bank_l1(generated, generated_labels, bank):
    """Eq. 12's regularizer with M_c from a memory bank: ``bank`` is ``[K, B, m]``, B training
    features of each class c (a class with fewer repeats its own, which leaves every minimum
    unchanged). Returns the mean over G(z, c) of min_{f_c in bank[c]} ||f_c - G(z, c)||_1."""
    candidates = ops.take(bank, ops.cast(generated_labels, "int32"), axis=0)  # [G, B, m]
    distances = ops.sum(ops.abs(candidates - generated[:, None, :]), axis=-1)  # [G, B]
    return ops.mean(ops.min(distances, axis=1))


def generator_loss(generated_logits, l1_distance, lambda_l1: float = 0.01,
                   form: str = "saturating"):
    """L_g, Eq. 12: E log(1 - D(G(z, c), c)) + lambda * min ||f_c - G(z, c)||_1.

    ``saturating`` is Eq. 12 as written (log(1 - sigmoid(l)) = -softplus(l)).
    ``non_saturating`` replaces the first term by -log D(G(z, c), c), the usual remedy for its
    vanishing gradient when D rejects G's samples confidently.
    """
    if form == "saturating":
        adversarial = -ops.mean(ops.softplus(generated_logits))
    elif form == "non_saturating":
        adversarial = id_loss(generated_logits)
    else:
        raise ValueError(f"form must be saturating or non_saturating. Received: form={form!r}")
    return adversarial + lambda_l1 * l1_distance, adversarial
