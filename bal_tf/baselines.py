"""Baseline OOD scores on the same frozen backbone (paper Sec. 5.2 and the usual suspects).

Every score is **higher = more in-distribution**. Feature-based detectors are fitted on the ID
training features only; nothing here sees OOD data.

| name | reference | score |
|---|---|---|
| max_softmax | Hendrycks & Gimpel 2017 | max softmax |
| max_logit | Hendrycks et al. 2022 | max logit |
| energy | Liu et al. 2020 | T log sum exp(logits / T), T = 1 |
| odin | Liang et al. 2018 | max softmax(logits(x') / T), x' an input step against the loss |
| mahalanobis | Lee et al. 2018 | -min_c (f - mu_c)^T Sigma^-1 (f - mu_c), shared covariance |
| knn | Sun et al. 2022 | -distance to the k-th nearest normalized training feature |
| vim | Wang et al. 2022 | energy - alpha * ||residual of f outside the principal subspace|| |
| generalized_odin | Hsu et al. 2020 | max_i h_i(f) of a DeConf-C head trained on the frozen features |
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from bal_tf.errors import InputError


def log_max_softmax(logits: np.ndarray) -> np.ndarray:
    """log max softmax, exact where it rounds to 0: -log1p(sum over j != c of exp(l_j - l_c))."""
    logits = np.asarray(logits, np.float64)
    top = np.argmax(logits, axis=-1)
    shifted = np.exp(logits - np.take_along_axis(logits, top[:, None], axis=-1))
    shifted[np.arange(len(logits)), top] = 0.0
    return -np.log1p(shifted.sum(axis=-1))


def max_logit(logits):
    return np.max(logits, axis=-1).astype(np.float64)


def energy(logits, temperature: float = 1.0):
    logits = np.asarray(logits, np.float64) / temperature
    top = logits.max(axis=-1)
    return temperature * (top + np.log(np.exp(logits - top[:, None]).sum(axis=-1)))


# ------------------------------------------------------------------ feature detectors ----


@dataclasses.dataclass
class Mahalanobis:
    """Class-conditional Gaussians with a shared covariance on penultimate features."""

    means: np.ndarray
    precision: np.ndarray

    @classmethod
    def fit(cls, features, labels, num_classes):
        features = np.asarray(features, np.float64)
        # Only the classes that have training features (a tiny or capped training set can miss
        # one; its mean would be NaN and poison every score).
        present = np.array([c for c in range(num_classes) if np.any(labels == c)])
        means = np.stack([features[labels == c].mean(0) for c in present])
        centered = features - means[np.searchsorted(present, labels)]
        covariance = centered.T @ centered / len(features)
        return cls(means, np.linalg.pinv(covariance, hermitian=True))

    def score(self, features):
        features = np.asarray(features, np.float64)
        distances = []
        for mean in self.means:
            d = features - mean
            distances.append(np.einsum("ij,jk,ik->i", d, self.precision, d))
        return -np.min(np.stack(distances, 1), axis=1)


@dataclasses.dataclass
class KNN:
    """k-th nearest neighbour distance among L2-normalized training features (k = 50)."""

    index: object
    k: int

    @classmethod
    def fit(cls, features, k: int = 50):
        from sklearn.neighbors import NearestNeighbors

        k = min(k, len(features))
        return cls(NearestNeighbors(n_neighbors=k).fit(_normalize(features)), k)

    def score(self, features):
        distances, _ = self.index.kneighbors(_normalize(features), n_neighbors=self.k)
        return -distances[:, -1]


def _normalize(features):
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@dataclasses.dataclass
class DepthMahalanobis:
    """Mahalanobis on the features of each depth (``FeatureSet.blocks``), each depth's score
    standardized on held-out ID features (mean 0, std 1) and the depths summed: equal weights,
    none fitted on OOD data (Lee et al. 2018 fitted theirs on OOD data)."""

    parts: list
    means: np.ndarray
    stds: np.ndarray

    @classmethod
    def fit(cls, train_blocks, labels, num_classes, held_out_blocks):
        parts = [Mahalanobis.fit(block, labels, num_classes) for block in train_blocks]
        held_out = np.stack([part.score(block) for part, block in zip(parts, held_out_blocks)])
        return cls(parts, held_out.mean(axis=1), np.maximum(held_out.std(axis=1), 1e-12))

    def score(self, blocks):
        scores = np.stack([part.score(block) for part, block in zip(self.parts, blocks)])
        return np.sum((scores - self.means[:, None]) / self.stds[:, None], axis=0)


def concatenated_unit_blocks(blocks) -> np.ndarray:
    """Each depth's features L2-normalized, then concatenated: every depth weighs the same in a
    distance (the input of ``knn_depths``)."""
    return np.concatenate([_normalize(block) for block in blocks], axis=1)


@dataclasses.dataclass
class ViM:
    """Virtual-logit matching: energy minus the scaled residual outside the principal space."""

    origin: np.ndarray
    residual_basis: np.ndarray
    alpha: float
    kernel: np.ndarray
    bias: np.ndarray

    @classmethod
    def fit(cls, features, kernel, bias, principal_dim: int | None = None):
        features = np.asarray(features, np.float64)
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        dim = features.shape[1]
        # The ViM paper uses D = 1000 for 2048-d features and 512 for >= 1536; for small
        # feature sizes half of the dimensions keeps a non-trivial residual.
        principal_dim = principal_dim or (1000 if dim >= 2048 else 512 if dim >= 1536 else max(1, dim // 2))
        origin = -np.linalg.pinv(kernel.T) @ bias
        centered = features - origin
        _, eigenvectors = np.linalg.eigh(centered.T @ centered / len(centered))
        residual_basis = eigenvectors[:, : dim - principal_dim]  # eigh sorts ascending
        logits = features @ kernel + bias
        residual = np.linalg.norm(centered @ residual_basis, axis=1)
        alpha = logits.max(axis=1).mean() / max(residual.mean(), 1e-12)
        return cls(origin, residual_basis, float(alpha), kernel, bias)

    def score(self, features):
        features = np.asarray(features, np.float64)
        logits = features @ self.kernel + self.bias
        residual = np.linalg.norm((features - self.origin) @ self.residual_basis, axis=1)
        return energy(logits) - self.alpha * residual


# ----------------------------------------------------------------------- Generalized ODIN ----


def fit_generalized_odin(features, labels, num_classes, epochs: int = 10, seed: int = 0):
    """Trains a DeConf-C head (Hsu et al. 2020) on frozen features; returns ``f -> score``.

    logits_i = h_i(f) / g(f), h_i = cosine similarity to class weight w_i, g = sigmoid(BN(Linear));
    trained with cross-entropy; the OOD score is max_i h_i(f). Trained on the frozen penultimate
    features, like BAL, so both use the same backbone and the same training data.
    """
    keras.utils.set_random_seed(seed)
    dim = features.shape[1]
    inputs = keras.Input((dim,))
    h = CosineHead(num_classes, name="h")(inputs)
    g = keras.layers.Dense(1)(inputs)
    g = keras.layers.BatchNormalization()(g)
    g = keras.layers.Activation("sigmoid")(g)
    logits = keras.layers.Lambda(lambda t: t[0] / t[1])([h, g])
    model = keras.Model(inputs, logits)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.asarray(features, np.float32), np.asarray(labels), epochs=epochs, batch_size=256,
              verbose=0, shuffle=True)
    h_model = keras.Model(inputs, h)

    def score(query):
        return np.max(np.asarray(h_model.predict(np.asarray(query, np.float32), batch_size=4096, verbose=0)),
                      axis=1).astype(np.float64)

    return score


class CosineHead(keras.layers.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="he_normal")

    def call(self, x):
        x = tf.math.l2_normalize(x, axis=-1)
        return x @ tf.math.l2_normalize(self.kernel, axis=0)


# ------------------------------------------------------------------------------- ODIN ----


def odin_perturbation(forward, x, temperature: float, epsilon: float):
    """ODIN's input step: ``forward(x)`` (outputs whose last is the logits) and
    x' = x - eps * sign(-d log S_c(x; T) / dx), with ``epsilon`` in the [0, 1] image scale of
    the ODIN paper (our models take [0, 255], so the step is ``255 * epsilon`` pixel units)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = forward(x)
        logits = outputs[-1] / temperature
        loss = -tf.reduce_sum(tf.reduce_max(tf.nn.log_softmax(logits, axis=-1), axis=-1))
    return outputs, x - 255.0 * epsilon * tf.sign(tape.gradient(loss, x))


def odin_scores(classifier_logits_model: keras.Model, images: tf.data.Dataset, temperature: float,
                epsilon: float, batch_size: int = 256) -> np.ndarray:
    """ODIN: x' = x - eps * sign(-d log S_c(x; T) / dx), score = max softmax(logits(x') / T)
    (``odin_perturbation``). evaluate.py takes these scores from the feature-extraction pass
    when a set's features are not cached yet (``bal_tf.features.extract_features``)."""

    @tf.function(reduce_retracing=True)
    def step(x):
        _, perturbed = odin_perturbation(lambda t: (classifier_logits_model(t, training=False),),
                                         tf.cast(x, tf.float32), temperature, epsilon)
        return classifier_logits_model(perturbed, training=False) / temperature

    out = [log_max_softmax(step(batch).numpy()) for batch in images.batch(batch_size)]
    if not out:
        raise InputError("ODIN needs at least one image.")
    return np.concatenate(out)
