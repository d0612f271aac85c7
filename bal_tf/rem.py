"""REM (Sec. 4.1): where the trivial OOD features come from, and the references of the
default's density-ratio target.

* The paper's trivial features: uniform in the batch-wise box [min f, max f] with random labels
  (Eqs. 4-5); for the Table 3 ablation, per-class Gaussians instead (whole, or only their
  low-density tails beyond a likelihood level, ``sample_gaussian_tail``, as the paper words that
  arm).
* The references of D's density-ratio target (``bal_tf.density_ratio``): a ladder of inflated
  class-conditional Gaussians, mu_c + s Sigma^(1/2) eps for a few s between the data and the box
  (``sample_gaussian_ladder``, closed-form density ``TiedGaussians.log_density``), and features
  shrunk toward the features' floor (``sample_toward_floor``), where a ReLU backbone's OOD
  features land and no Gaussian reference goes.

Every function takes a ``seed`` (a ``keras.random.SeedGenerator`` owned by the model, or an
int), so runs are reproducible.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def random_labels(num_samples: int, num_classes: int, seed):
    """Labels drawn uniformly from {0, ..., K-1}: c_hat for trivial features, c for G."""
    return keras.random.randint((num_samples,), 0, num_classes, seed=seed, dtype="int32")



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


def sample_uniform_box(features, num_samples: int, seed):
    """Trivial OOD features f_hat ~ U(a, b) in the batch-wise box of ``features`` (Eqs. 4-5)."""
    features = ops.convert_to_tensor(features)
    low, high = batch_bounds(features)
    unit = keras.random.uniform((num_samples, ops.shape(features)[-1]), seed=seed, dtype=features.dtype)
    return low + unit * (high - low)


def sample_class_gaussian(labels, class_means, class_stds, seed):
    """Trivial OOD features from per-class diagonal Gaussians N(mu_c, sigma_c^2) (Table 3)."""
    means = ops.take(class_means, labels, axis=0)
    stds = ops.take(class_stds, labels, axis=0)
    return means + stds * keras.random.normal(ops.shape(means), seed=seed)


@dataclasses.dataclass(frozen=True)
class ClassStatistics:
    """Per-class statistics of the ID training features, fixed before the GAN trains.

    Attributes:
        means / stds: ``[K, m]`` per-class mean and per-dimension standard deviation.
        radii: ``[K]`` the median diagonal-Mahalanobis distance of class c's features to its mean
            (||(f - mu_c) / sigma_c||): the unit in which Gaussian-tail negatives are placed.
        floor: ``[m]`` the smallest value of each dimension over the training features (0 after
            ReLU): negatives are clipped to it, so they never differ from ID by a sign alone.
    """

    means: np.ndarray
    stds: np.ndarray
    radii: np.ndarray
    floor: np.ndarray

    @classmethod
    def fit(cls, features, labels, num_classes: int) -> "ClassStatistics":
        features = np.asarray(features, np.float32)
        labels = np.asarray(labels)
        overall_mean, overall_std = features.mean(0), features.std(0) + 1e-6
        means, stds, radii = [], [], []
        for c in range(num_classes):
            members = features[labels == c]
            if len(members) < 2:  # a class without (enough) features: the overall statistics
                members_mean, members_std = overall_mean, overall_std
                radius = float(np.sqrt(features.shape[-1]))
            else:
                members_mean, members_std = members.mean(0), members.std(0) + 1e-6
                radius = float(np.median(np.linalg.norm((members - members_mean) / members_std, axis=1)))
            means.append(members_mean)
            stds.append(members_std)
            radii.append(radius)
        return cls(np.stack(means).astype(np.float32), np.stack(stds).astype(np.float32),
                   np.asarray(radii, np.float32), features.min(0).astype(np.float32))


def sample_gaussian_tail(labels, statistics: ClassStatistics, radius_range, seed):
    """Negatives from the low-density region of each class c (labelled c): mu_c + sigma_c * r * u,
    u uniform on the unit sphere and r uniform in ``radius_range`` times class c's median
    Mahalanobis radius, the tail of the per-class diagonal Gaussian beyond a likelihood level
    (Table 3's "Gaussian tail" arm; VOS, Du et al. 2022, samples such tails). Clipped below at
    the features' floor (0 after ReLU).
    """
    labels = ops.cast(labels, "int32")
    means = ops.take(ops.convert_to_tensor(statistics.means), labels, axis=0)
    stds = ops.take(ops.convert_to_tensor(statistics.stds), labels, axis=0)
    radii = ops.take(ops.convert_to_tensor(statistics.radii), labels, axis=0)[:, None]
    low, high = float(radius_range[0]), float(radius_range[1])
    scale = low + (high - low) * keras.random.uniform((ops.shape(labels)[0], 1), seed=seed)
    direction = keras.random.normal(ops.shape(means), seed=seed)
    direction = direction / ops.maximum(ops.norm(direction, axis=1, keepdims=True), 1e-6)
    return ops.maximum(means + stds * (scale * radii) * direction, ops.convert_to_tensor(statistics.floor))


@dataclasses.dataclass(frozen=True)
class TiedGaussians:
    """Class-conditional Gaussians N(mu_c, Sigma) of the ID training features, Sigma the class-tied
    covariance (each feature minus its class mean, as Mahalanobis fits it), restricted to the
    directions in which ID features vary: eigenvalues below ``RANK_FLOOR`` times the largest
    (dead ReLU units, a rank-deficient backbone) are dropped. In a dropped direction every ID
    feature has the same value, so a reference that varied there would be told apart from the
    data by that direction alone, and D would learn nothing about the directions that matter.

    Attributes:
        means: ``[K, m]`` class means mu_c.
        basis: ``[m, r]`` orthonormal eigenvectors of Sigma kept (r <= m).
        stddevs: ``[r]`` square roots of their eigenvalues.
        floor: ``[m]`` per-dimension minimum of the training features (0 after ReLU).
    """

    means: np.ndarray
    basis: np.ndarray
    stddevs: np.ndarray
    floor: np.ndarray

    RANK_FLOOR = 1e-4

    @classmethod
    def fit(cls, features, labels, num_classes: int) -> "TiedGaussians":
        features = np.asarray(features, np.float64)
        labels = np.asarray(labels)
        overall = features.mean(0)
        means = np.stack([features[labels == c].mean(0) if (labels == c).any() else overall
                          for c in range(num_classes)])
        centered = features - means[labels]
        covariance = centered.T @ centered / max(len(features) - 1, 1)
        values, vectors = np.linalg.eigh(covariance)
        kept = values > cls.RANK_FLOOR * max(values.max(), 1e-12)
        return cls(means.astype(np.float32), vectors[:, kept].astype(np.float32),
                   np.sqrt(values[kept]).astype(np.float32), features.min(0).astype(np.float32))

    @property
    def rank(self) -> int:
        return int(self.basis.shape[1])

    def whitened_distances(self, features, labels) -> np.ndarray:
        """Squared Mahalanobis distance ||(f - mu_c) V / sqrt(lambda)||^2 to each point's class
        (NumPy; ``bal_tf.density_ratio.ReferenceLogDensity`` is the same in the graph)."""
        offsets = np.asarray(features, np.float32) - self.means[np.asarray(labels, np.int64)]
        return np.sum(np.square(offsets @ self.basis / self.stddevs), axis=1)


def ladder_log_density(squared_distances, rank: int, scales):
    """log q(f | c) of the Gaussian ladder: an equal mixture over s in ``scales`` of
    N(mu_c, s^2 Sigma) in the kept r directions, from the squared Mahalanobis distance
    (Keras ops or NumPy). The constant -r/2 log(2 pi) - 1/2 log|Sigma| is left out: it is the same
    for every feature and class, so no ranking and no calibration sees it."""
    scales = [float(s) for s in scales]
    terms = ops.stack([-rank * np.log(s) - squared_distances / (2.0 * s * s) for s in scales], axis=-1)
    return ops.logsumexp(terms, axis=-1) - np.log(len(scales))


def sample_gaussian_ladder(labels, gaussians: TiedGaussians, scales, seed):
    """References of the ladder for the classes ``labels``: mu_c + s Sigma^(1/2) eps, eps standard
    normal in the kept directions, s drawn per sample from ``scales`` (the covariance inflated by
    s^2: the telescoping ladder between the data, s = 1, and the box's scale). Not clipped to the
    floor, so that their density stays the closed form of ``ladder_log_density``."""
    labels = ops.cast(labels, "int32")
    count = ops.shape(labels)[0]
    means = ops.take(ops.convert_to_tensor(gaussians.means), labels, axis=0)
    choice = keras.random.randint((count,), 0, len(scales), seed=seed, dtype="int32")
    scale = ops.take(ops.convert_to_tensor(np.asarray(scales, np.float32)), choice, axis=0)[:, None]
    noise = keras.random.normal((count, gaussians.rank), seed=seed) * ops.convert_to_tensor(gaussians.stddevs)
    return means + scale * ops.matmul(noise, ops.convert_to_tensor(gaussians.basis.T))


def sample_toward_floor(features, floor, shrink_range, seed):
    """References inward of the data: floor + t (f - floor) for the batch's features, t uniform in
    ``shrink_range`` (weak activations: where a ReLU backbone puts an input it has no feature for,
    and where a Gaussian reference never goes). Labelled with the features' own class."""
    features = ops.convert_to_tensor(features)
    low, high = float(shrink_range[0]), float(shrink_range[1])
    t = low + (high - low) * keras.random.uniform((ops.shape(features)[0], 1), seed=seed, dtype=features.dtype)
    floor = ops.convert_to_tensor(np.asarray(floor, np.float32))
    return floor + t * (features - floor)
