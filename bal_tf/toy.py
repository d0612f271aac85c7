"""The paper's 2-D toy (Figures 1b/1c and 5): two Gaussian classes, a small MLP classifier, and
BAL run in the raw 2-D space ("we sample data in raw data space uniformly since the
dimensionality of raw data is fairly low", Sec. 5.5).

Max-softmax is confident everywhere far from the decision boundary, OOD points included;
BAL's p1 * p2 is high only near the two clusters.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from bal_tf import baselines, metrics, scoring, selection
from bal_tf.config import GANConfig
from bal_tf.features import FeatureSet
from bal_tf.train_bal import train_bal

MEANS = np.array([[-3.0, 0.0], [3.0, 0.0]], np.float32)
SIGMA = 1.0


def two_gaussians(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points from two isotropic Gaussians (means (+-3, 0), sigma 1), balanced classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    points = MEANS[labels] + SIGMA * rng.normal(size=(n, 2))
    return points.astype(np.float32), labels.astype(np.int64)


def far_uniform_points(n: int, seed: int = 0, extent: float = 10.0, min_sigmas: float = 4.0) -> np.ndarray:
    """Uniform points in [-extent, extent]^2 farther than ``min_sigmas`` sigma from both means."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(o) for o in out) < n:
        points = rng.uniform(-extent, extent, size=(4 * n, 2)).astype(np.float32)
        distance = np.min(np.linalg.norm(points[:, None, :] - MEANS[None], axis=-1), axis=1)
        out.append(points[distance > min_sigmas * SIGMA])
    return np.concatenate(out)[:n]


def train_mlp_classifier(points, labels, seed: int = 0, epochs: int = 20) -> keras.Model:
    """A three-layer MLP classifier (the paper's toy classifier), outputting logits."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,), name="point")
    x = keras.layers.Dense(32, activation="relu")(inputs)
    x = keras.layers.Dense(32, activation="relu")(x)
    logits = keras.layers.Dense(2, name="logits")(x)
    model = keras.Model(inputs, logits)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(points, labels, epochs=epochs, batch_size=128, verbose=0, shuffle=True)
    return model


def toy_gan_config(**overrides) -> GANConfig:
    config = GANConfig(epochs=40, batch_size=128, latent_dim=8, generator_units=[64, 64],
                       discriminator_units=[64, 64], generator_output="linear", d_learning_rate=1e-3,
                       g_learning_rate=1e-3, d_ema_decay=0.99,
                       synthetic_families=["uniform_features", "perturbed_features"])
    return dataclasses.replace(config, **overrides)


@dataclasses.dataclass
class ToyResult:
    classifier: keras.Model
    discriminator: keras.Model
    gan: keras.Model
    auroc_bal: float
    auroc_max_softmax: float
    selected_epoch: int


def run_toy(seed: int = 0, n_train: int = 4000, gan_config: GANConfig | None = None) -> ToyResult:
    """Trains the toy end to end and measures AUROC of ID test points vs far uniform points."""
    points, labels = two_gaussians(n_train, seed)
    classifier = train_mlp_classifier(points, labels, seed)

    def feature_set(x, y):  # BAL's "features" are the raw 2-D points here
        return FeatureSet(x, np.asarray(classifier(x), np.float32), y)

    held_x, held_y = two_gaussians(1000, seed + 1000)
    holdout = feature_set(held_x, held_y)
    config = gan_config or toy_gan_config()
    selection_data = selection.build_selection_data(holdout, None, config.synthetic_families, 128,
                                                    features_of_images=None)
    result = train_bal(config, feature_set(points, labels), selection_data=selection_data, seed=seed,
                       verbose=0)
    test_x, test_y = two_gaussians(2000, seed + 2000)
    far = far_uniform_points(2000, seed + 3000)
    id_set, ood_set = feature_set(test_x, test_y), feature_set(far, np.full(len(far), -1))
    bal = [scoring.log_score(result.discriminator, s.features, s.logits) for s in (id_set, ood_set)]
    msp = [baselines.log_max_softmax(s.logits) for s in (id_set, ood_set)]
    return ToyResult(classifier, result.discriminator, result.gan, metrics.auroc(*bal), metrics.auroc(*msp),
                     result.selected_epoch)
