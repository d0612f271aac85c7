"""D's density-ratio target (bal_tf.density_ratio): against references of known density, D's logit
plus log q estimates log p; the logit alone does not; the scoring D carries that value."""

import subprocess
import sys

import keras
import numpy as np

from bal_tf import density_ratio, rem, scoring
from bal_tf.config import GANConfig
from bal_tf.features import FeatureSet
from bal_tf.train_bal import train_bal

DIM, CLASSES = 4, 2
MEANS = np.random.default_rng(0).normal(size=(CLASSES, DIM)).astype(np.float32) * 4.0


def laplace_classes(count: int, seed: int):
    """p(f | c): a product of unit Laplace laws around mu_c. Not Gaussian, so the ratio to a
    Gaussian reference is not a function of the Mahalanobis radius alone."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, count)
    return (MEANS[labels] + rng.laplace(size=(count, DIM))).astype(np.float32), labels


def log_p(features, labels):
    return -np.sum(np.abs(features - MEANS[labels]), axis=-1)  # up to a constant


def density_run():
    features, labels = laplace_classes(3000, seed=1)
    train = FeatureSet(features, np.eye(CLASSES, dtype=np.float32)[labels] * 5.0, labels.astype(np.int64))
    # D against the ladder only (no G, no box, no shuffled pairs): its logit's optimum is
    # log p - log q_ladder exactly. References close to the data (s = 1, 1.25): log q carries most
    # of log p, the ratio the rest.
    config = GANConfig(epochs=30, use_vanilla_loss=False, use_shuffle_loss=False, lambda_c=0.0, hard_weight=0.0,
                       ladder_weight=1.0, ladder_scales=[1.0, 1.25], floor_weight=0.0, d_ema_decay=0.0,
                       selection="last", p2_target="density", p2_calibration="none", discriminator_units=[64, 64],
                       d_learning_rate=2e-3)
    result = train_bal(config, train, seed=0, verbose=0)
    held_out, held_out_labels = laplace_classes(1000, seed=2)
    gaussians = result.gan.gaussians
    # held-out points of the data and of the nearest reference: where the score has to rank
    references = np.asarray(rem.sample_gaussian_ladder(held_out_labels, gaussians, [1.25], seed=3))
    points = np.concatenate([held_out, references])
    point_labels = np.concatenate([held_out_labels, held_out_labels])
    logit = scoring.discriminator_logits(density_ratio.ratio_discriminator(result.discriminator), points, point_labels)
    log_q = np.asarray(rem.ladder_log_density(gaussians.whitened_distances(points, point_labels), gaussians.rank,
                                              config.ladder_scales))
    return result, points, point_labels, logit, log_q


def test_logit_plus_log_q_matches_log_p_and_the_logit_alone_does_not(tmp_path):
    # one training for both checks (about 15 s); measured: 0.97 against 0.80 for the logit alone
    result, points, labels, logit, log_q = density_run()
    truth = log_p(points, labels)
    density = np.corrcoef(logit + log_q, truth)[0, 1]
    assert density >= 0.95
    assert np.corrcoef(logit, truth)[0, 1] < 0.95  # log q dropped: the ratio alone
    assert np.corrcoef(log_q, truth)[0, 1] < density  # and D's ratio adds to the reference's density
    # the scoring D (p2_target="density", no calibration) outputs logit + log q, also once saved
    z = scoring.discriminator_logits(result.discriminator, points, labels)
    np.testing.assert_allclose(z, logit + log_q, rtol=1e-4, atol=1e-3)
    result.discriminator.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True, compile=False)
    np.testing.assert_allclose(scoring.discriminator_logits(loaded, points, labels), z, rtol=1e-5, atol=1e-4)


def test_ladder_density_is_the_mixture_of_the_sampled_gaussians():
    features, labels = laplace_classes(4000, seed=4)
    gaussians = rem.TiedGaussians.fit(features, labels, CLASSES)
    scales = [1.5, 3.0]
    samples = np.asarray(rem.sample_gaussian_ladder(labels, gaussians, scales, seed=5))
    distances = gaussians.whitened_distances(samples, labels)
    # a sample of N(mu_c, s^2 Sigma) has squared Mahalanobis radius s^2 chi^2_r: mean r (s1^2 + s2^2) / 2
    assert abs(distances.mean() / (DIM * (1.5 ** 2 + 3.0 ** 2) / 2) - 1) < 0.05
    # the mixture's log density, against a direct evaluation of both Gaussians' densities
    direct = np.log(0.5 * sum(s ** -DIM * np.exp(-distances / (2 * s * s)) for s in scales))
    np.testing.assert_allclose(np.asarray(rem.ladder_log_density(distances, DIM, scales)), direct, rtol=1e-4, atol=1e-4)


def test_tied_gaussians_drop_directions_where_id_features_do_not_vary():
    features, labels = laplace_classes(500, seed=6)
    dead = np.concatenate([features, np.zeros((500, 2), np.float32)], axis=1)  # two dead ReLU units
    gaussians = rem.TiedGaussians.fit(dead, labels, CLASSES)
    assert gaussians.rank == DIM
    samples = np.asarray(rem.sample_gaussian_ladder(labels, gaussians, [2.0], seed=7))
    assert np.abs(samples[:, DIM:]).max() < 1e-5  # references never differ from ID by a dead unit alone


def test_floor_references_lie_between_the_floor_and_the_features():
    features = np.random.default_rng(8).uniform(1, 2, (256, DIM)).astype(np.float32)
    floor = np.zeros(DIM, np.float32)
    shrunk = np.asarray(rem.sample_toward_floor(features, floor, [0.0, 0.9], seed=9))
    ratio = shrunk / features
    assert (ratio >= 0).all() and (ratio <= 0.9 + 1e-6).all()
    assert np.allclose(ratio, ratio[:, :1])  # one shrink per feature: the direction is kept


def test_held_out_calibration_standardizes_and_keeps_the_order():
    rng = np.random.default_rng(10)
    logit, log_q = rng.normal(5, 3, 1000), rng.normal(-20, 4, 1000)
    reading = density_ratio.calibrated(0.5, logit, log_q, "held_out_id")
    z = reading.apply(logit, log_q)
    assert abs(np.median(z)) < 1e-4
    q25, q75 = np.percentile(z, [25, 75])
    assert abs((q75 - q25) / density_ratio.IQR_PER_SIGMA - 1) < 1e-3
    assert (np.argsort(z) == np.argsort(logit + 0.5 * log_q)).all()
    assert density_ratio.calibrated(0.5, logit, log_q, "none") == density_ratio.P2Reading(0.5)


def test_a_calibrated_ratio_needs_no_reference_density():
    from bal_tf.discriminator import build_discriminator

    d = build_discriminator(3, 2, (8,))
    features, labels = np.random.default_rng(11).normal(size=(16, 3)).astype(np.float32), np.arange(16) % 2
    scoring_d = density_ratio.build_scoring_discriminator(d, None, [1.5], density_ratio.P2Reading(0.0, 1.0, 2.0))
    np.testing.assert_allclose(scoring.discriminator_logits(scoring_d, features, labels),
                               (scoring.discriminator_logits(d, features, labels) - 1.0) / 2.0, rtol=1e-5, atol=1e-6)


def test_a_saved_scoring_d_with_the_density_target_loads_in_a_fresh_process(tmp_path):
    """evaluate.py and the detector graph load a run's scoring D in a process that never imported
    bal_tf.density_ratio itself: importing the detector must register its layers."""
    from bal_tf.discriminator import build_discriminator

    features, labels = laplace_classes(200, seed=12)
    gaussians = rem.TiedGaussians.fit(features, labels, CLASSES)
    scoring_d = density_ratio.build_scoring_discriminator(build_discriminator(DIM, CLASSES, (8,)), gaussians,
                                                          [1.5, 2.5], density_ratio.P2Reading(0.5, 1.0, 2.0))
    scoring_d.save(tmp_path / "d.keras")
    loaders = {module: subprocess.Popen(  # both at once: each process mostly imports TensorFlow
        [sys.executable, "-c", f"import keras, {module}; "
         f"keras.saving.load_model({str(tmp_path / 'd.keras')!r}, safe_mode=True, compile=False)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for module in ("bal_tf.detector", "bal_tf.evaluation")}
    for module, loader in loaders.items():
        _, stderr = loader.communicate(timeout=300)
        assert loader.returncode == 0, f"{module}: {stderr[-2000:]}"
