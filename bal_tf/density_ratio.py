"""D's target: a log density ratio against known references, and the p2 read off it.

Noise-contrastive estimation (Gutmann & Hyvarinen 2010): a classifier trained with the logistic
loss to tell data p(f | c) from references q(f | c) has, at its optimum,

    logit D(f, c) = log p(f | c) - log q(f | c)

(with several weighted sources of negatives, q is their weighted mixture). The paper's D against
the batch box would estimate log p up to a constant; in 128 dimensions the box is so far from the
data that D separates them long before the ratio is learned (the "density chasm", Rhodes, Xu &
Gutmann 2020). The references here (``bal_tf.rem``): a ladder of class-conditional Gaussians
N(mu_c, s^2 Sigma) between the data and the box, whose density is known in closed form
(``rem.ladder_log_density``), and features shrunk toward the features' floor (no closed form),
beside the paper's box, shuffled pairs and G's hard features (also without one). So

    logit + log q_ladder(f | c) = log p(f | c) - log(1 + q_rest(f | c) / q_ladder(f | c))

is an estimate of the class-conditional log density where the ladder dominates the references,
and lower where the others do (near the floor, and where G puts its hard features).

p2 (Eq. 2) stays D's output: ``ScoringDiscriminator`` is D with this value as its logit,

    z = (logit + beta log q_ladder - shift) / scale,    p2 = sigmoid(z),

beta = 0 (``p2_target="ratio"``), 1 (``density``) or chosen per run (``blend``), and ``shift``,
``scale`` set on held-out ID features (``p2_calibration="held_out_id"``) so that p2 keeps the
ranking rather than saturating. It is a Keras model with D's inputs and one logit, so selection,
evaluate.py, the detector graph and the exported models use it as they used D.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers, ops

from bal_tf import rem

# beta of p2_target="blend": the share of log q added to D's logit, chosen per run (with the
# checkpoint) on checkpoint selection's synthetic families.
BLEND_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
# robust standard deviation: the interquartile range of a normal is 1.349 of its sigma
IQR_PER_SIGMA = 1.349


@keras.saving.register_keras_serializable(package="bal_tf")
class ReferenceLogDensity(layers.Layer):
    """``(feature, class) -> log q_ladder(f | c)`` (``rem.ladder_log_density``, up to a constant).

    Its weights (fixed, set from ``rem.TiedGaussians``): ``projection`` = V / sqrt(lambda)
    ``[m, r]`` and ``projected_means`` = mu_c V / sqrt(lambda) ``[K, r]``.
    """

    def __init__(self, feature_dim: int, num_classes: int, rank: int, scales, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim, self.num_classes, self.rank = int(feature_dim), int(num_classes), int(rank)
        self.scales = [float(s) for s in scales]
        self.projection = self.add_weight(shape=(self.feature_dim, self.rank), initializer="zeros",
                                          trainable=False, name="projection")
        self.projected_means = self.add_weight(shape=(self.num_classes, self.rank), initializer="zeros",
                                               trainable=False, name="projected_means")

    def set_gaussians(self, gaussians: rem.TiedGaussians) -> None:
        projection = gaussians.basis / gaussians.stddevs
        self.set_weights([projection.astype(np.float32), (gaussians.means @ projection).astype(np.float32)])

    def call(self, features, labels):
        offsets = ops.matmul(features, self.projection) - ops.take(self.projected_means,
                                                                   ops.cast(labels, "int32"), axis=0)
        return rem.ladder_log_density(ops.sum(ops.square(offsets), axis=-1), self.rank, self.scales)

    def get_config(self):
        return {**super().get_config(), "feature_dim": self.feature_dim, "num_classes": self.num_classes,
                "rank": self.rank, "scales": self.scales}


@keras.saving.register_keras_serializable(package="bal_tf")
class BlendedLogit(layers.Layer):
    """``(D's logit, log q) -> (logit + beta log q - shift) / scale``: p2's logit."""

    def __init__(self, beta: float = 0.0, shift: float = 0.0, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.beta, self.shift, self.scale = float(beta), float(shift), float(scale)

    def call(self, logit, log_q=None):
        blended = logit if log_q is None else logit + self.beta * log_q
        return (blended - self.shift) / self.scale

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "shift": self.shift, "scale": self.scale}


@dataclasses.dataclass(frozen=True)
class P2Reading:
    """How p2 is read off D: z = (logit + beta log q - shift) / scale."""

    beta: float = 0.0
    shift: float = 0.0
    scale: float = 1.0

    def apply(self, logit, log_q):
        logit = np.asarray(logit, np.float64)
        blended = logit if self.beta == 0 else logit + self.beta * np.asarray(log_q, np.float64)
        return ((blended - self.shift) / self.scale).astype(np.float32)


def calibrated(beta: float, held_out_logit, held_out_log_q, calibration: str) -> P2Reading:
    """The reading with this ``beta``; ``calibration="held_out_id"`` standardizes it on the held-out
    ID features (median 0, robust standard deviation 1), ``none`` leaves it."""
    if calibration == "none":
        return P2Reading(beta)
    values = P2Reading(beta).apply(held_out_logit, held_out_log_q)
    low, median, high = np.percentile(values, [25, 50, 75])
    return P2Reading(beta, float(median), float(max((high - low) / IQR_PER_SIGMA, 1e-6)))


def betas(target: str) -> tuple[float, ...]:
    """The betas a run chooses from: one for ``ratio`` and ``density``, ``BLEND_GRID`` for ``blend``."""
    return {"ratio": (0.0,), "density": (1.0,), "blend": BLEND_GRID}[target]


def build_scoring_discriminator(discriminator: keras.Model, gaussians: rem.TiedGaussians | None,
                                scales, reading: P2Reading) -> keras.Model:
    """D with p2's logit as its output: ``[feature, class] -> (logit + beta log q - shift) / scale``.
    The trained D is inside (layer ``ratio_discriminator``), with its weights; the model is named
    ``discriminator``, as D is, so the detector graph and the exports take it in D's place."""
    feature_dim = int(discriminator.inputs[0].shape[-1])
    num_classes = discriminator.get_layer("one_hot").num_classes
    feature = keras.Input((feature_dim,), name="feature")
    label = keras.Input((), dtype="int32", name="label")
    inner = keras.models.clone_model(discriminator)
    inner.set_weights(discriminator.get_weights())
    inner.name = "ratio_discriminator"
    logit = inner([feature, label])
    if gaussians is None:
        if reading.beta != 0:
            raise ValueError("A reading with beta != 0 needs the tied Gaussians of log q.")
        blended = BlendedLogit(reading.beta, reading.shift, reading.scale, name="p2_logit")(logit)
    else:
        density = ReferenceLogDensity(feature_dim, num_classes, gaussians.rank, scales, name="reference_log_density")
        log_q = density(feature, label)
        density.set_gaussians(gaussians)
        blended = BlendedLogit(reading.beta, reading.shift, reading.scale, name="p2_logit")(logit, log_q)
    return keras.Model([feature, label], blended, name="discriminator")


def ratio_discriminator(model: keras.Model) -> keras.Model:
    """The trained D inside a scoring discriminator (the model itself when it is a plain D)."""
    names = {layer.name for layer in model.layers}
    return model.get_layer("ratio_discriminator") if "ratio_discriminator" in names else model
