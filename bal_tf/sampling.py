"""Where BAL's OOD features come from.

REM (Sec. 4.1, Eqs. 4-5): trivial OOD features, uniform in the batch-wise box [min f, max f]
with random labels (or, for the Table 3 ablation, from per-class Gaussians).
RSM (Sec. 4.2, Eqs. 6-7): hard OOD features G(z', c), where z' is an FGSM step on the latent
that lowers D(G(z, c), c), with a random step size per sample.
Shuffle function T (Sec. 4.3, Eq. 8): a wrong label for every real feature.

Every function takes a ``seed`` (a ``keras.random.SeedGenerator`` owned by the model, or an
int), so runs are reproducible.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def batch_bounds(features):
    """Eqs. 4-5: per-dimension minimum a and maximum b over the batch.

    Under tf.distribute the batch is the global one: the replicas' bounds are gathered, so N
    workers sample from the box a single worker with the same global batch would.
    """
    low, high = ops.min(features, axis=0), ops.max(features, axis=0)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        low = ops.min(context.all_gather(low[None], axis=0), axis=0)
        high = ops.max(context.all_gather(high[None], axis=0), axis=0)
    return low, high


def sample_uniform_box(features, num_samples: int, seed, margin: float = 0.0):
    """Trivial OOD features f_hat ~ U(a, b) in the batch-wise box of ``features`` (Eqs. 4-5).

    ``margin`` widens the box by that fraction of its size on each side (0 = the paper's box):
    without it, nothing teaches D about the space outside the box, where OOD features can fall.
    """
    features = ops.convert_to_tensor(features)
    low, high = batch_bounds(features)
    if margin:
        low, high = low - margin * (high - low), high + margin * (high - low)
    unit = keras.random.uniform((num_samples, ops.shape(features)[-1]), seed=seed, dtype=features.dtype)
    return low + unit * (high - low)


def sample_class_gaussian(labels, class_means, class_stds, seed):
    """Trivial OOD features from per-class diagonal Gaussians N(mu_c, sigma_c^2) (Table 3)."""
    means = ops.take(class_means, labels, axis=0)
    stds = ops.take(class_stds, labels, axis=0)
    return means + stds * keras.random.normal(ops.shape(means), seed=seed)


def random_labels(num_samples: int, num_classes: int, seed):
    """Labels drawn uniformly from {0, ..., K-1}: c_hat for trivial features, c for G."""
    return keras.random.randint((num_samples,), 0, num_classes, seed=seed, dtype="int32")


def shuffle_labels(labels, num_classes: int, seed):
    """The shuffle function T of Eq. 8: a label that is never the true one.

    Adding an offset drawn from {1, ..., K-1} modulo K gives every wrong label the same
    probability and can never return c itself.
    """
    labels = ops.cast(labels, "int32")
    offset = keras.random.randint(ops.shape(labels), 1, num_classes, seed=seed, dtype="int32")
    return (labels + offset) % num_classes


def sample_epsilon(num_samples: int, mean: float, std: float, low: float, high: float, seed):
    """The FGSM step size, one per sample: eps ~ N(mean, std) clipped to [low, high] (Sec. 4.2)."""
    eps = mean + std * keras.random.normal((num_samples, 1), seed=seed)
    return ops.clip(eps, low, high)


def fgsm_latent(generator, discriminator, z, labels, epsilon):
    """Eq. 7: z' = z - eps * sign(dD(G(z, c), c) / dz), a step that lowers D's ID confidence.

    D outputs a logit; sigmoid is monotonic, so the sign of the gradient of the logit equals
    that of D = sigmoid(logit). The sum over the batch is taken inside the tape (each sample's
    logit depends only on its own z, so the gradient stays per sample).

    Returns:
        The perturbed latent z', with no gradient attached.
    """
    z = tf.convert_to_tensor(z)
    with tf.GradientTape() as tape:
        tape.watch(z)
        logits = discriminator([generator([z, labels], training=False), labels], training=False)
        total = tf.reduce_sum(logits)
    gradient = tape.gradient(total, z)
    return tf.stop_gradient(z - epsilon * tf.sign(gradient))
