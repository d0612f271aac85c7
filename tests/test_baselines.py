"""Baselines: each ranks obvious ID above obvious OOD; ODIN reduces to max-softmax at T=1, eps=0."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bal_tf import baselines

RNG = np.random.default_rng(0)
CENTERS = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])


def gaussian_features(n, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    return (CENTERS[labels] + rng.normal(0, 0.5, (n, 4))).astype(np.float32), labels


def test_logit_scores_by_hand():
    logits = np.array([[2.0, 0.0, 0.0], [50.0, 0.0, 0.0]])
    np.testing.assert_allclose(baselines.max_logit(logits), [2.0, 50.0])
    np.testing.assert_allclose(baselines.energy(logits), np.log(np.exp(logits).sum(1)), rtol=1e-12)
    np.testing.assert_allclose(np.exp(baselines.log_max_softmax(logits[:1])), [np.exp(2) / (np.exp(2) + 2)])
    assert baselines.log_max_softmax(logits)[1] < 0.0  # not rounded to log(1) = 0


@pytest.mark.parametrize("name", ["mahalanobis", "knn", "vim"])
def test_feature_detectors_rank_id_above_far_points(name):
    train, labels = gaussian_features(600)
    test, _ = gaussian_features(200, seed=1)
    far = RNG.normal(0, 0.5, (200, 4)).astype(np.float32) + np.array([-4.0, -4.0, 0, 6.0], np.float32)
    if name == "mahalanobis":
        detector = baselines.Mahalanobis.fit(train, labels, 3)
    elif name == "knn":
        detector = baselines.KNN.fit(train, k=5)
    else:
        kernel = CENTERS.T.astype(np.float32)  # logits = f . center_c
        detector = baselines.ViM.fit(train, kernel, np.zeros(3, np.float32), principal_dim=2)
    assert detector.score(test).min() > np.median(detector.score(far))


def test_mahalanobis_by_hand():
    features = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    detector = baselines.Mahalanobis.fit(features, np.zeros(4, int), 1)  # mean 0, covariance I/2
    np.testing.assert_allclose(detector.score(np.array([[1.0, 1.0]])), [-4.0])


def test_generalized_odin_head_learns_the_classes():
    train, labels = gaussian_features(600)
    score = baselines.fit_generalized_odin(train, labels, 3, epochs=60)
    # h is a cosine similarity: OOD means a direction unlike every class, here the 4th axis.
    far = np.zeros((50, 4), np.float32) + np.array([0, 0, 0, 5.0], np.float32)
    assert np.median(score(train)) > np.median(score(far))


def test_odin_without_perturbation_is_max_softmax():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 1))
    logits = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs)))
    model = keras.Model(inputs, logits)
    images = RNG.integers(0, 256, (10, 6, 6, 1)).astype(np.uint8)
    plain = baselines.log_max_softmax(np.asarray(model(images.astype(np.float32))))
    odin = baselines.odin_scores(model, tf.data.Dataset.from_tensor_slices(images), 1.0, 0.0)
    np.testing.assert_allclose(odin, plain, rtol=1e-5)
    perturbed = baselines.odin_scores(model, tf.data.Dataset.from_tensor_slices(images), 1.0, 0.01)
    assert (perturbed >= odin - 1e-6).mean() > 0.9  # the step raises the max softmax


def test_mahalanobis_ignores_a_class_without_training_features():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (50, 4)), rng.normal(6, 1, (50, 4))])
    labels = np.repeat([0, 2], 50)  # class 1 has no training feature
    detector = baselines.Mahalanobis.fit(features, labels, num_classes=3)
    scores = detector.score(np.array([[0.0] * 4, [6.0] * 4, [30.0] * 4]))
    assert np.isfinite(scores).all() and scores[0] > scores[2] and scores[1] > scores[2]


def test_odin_from_the_feature_extraction_pass_equals_odin_on_the_images():
    """evaluate.py takes ODIN's scores from the pass that extracts a set's features; they must be
    the scores ``odin_scores`` gives on the same images, and the features those of a plain pass."""
    from bal_tf.backbones import build_classifier, feature_model
    from bal_tf.config import BackboneConfig
    from bal_tf.features import extract_features

    keras.utils.set_random_seed(0)
    features_of = feature_model(build_classifier(BackboneConfig("cnn", 0.25), (28, 28, 1), 10))
    images = np.random.default_rng(0).integers(0, 256, (300, 28, 28, 1)).astype(np.uint8)
    data = tf.data.Dataset.from_tensor_slices((images, np.full(300, -1)))
    plain = extract_features(features_of, data)
    with_odin, odin = extract_features(features_of, data, odin=(10.0, 0.005))
    np.testing.assert_allclose(with_odin.features, plain.features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(with_odin.logits, plain.logits, rtol=1e-5, atol=1e-5)
    logits_model = keras.Model(features_of.inputs, features_of.outputs[1])
    expected = baselines.odin_scores(logits_model, tf.data.Dataset.from_tensor_slices(images), 10.0, 0.005)
    np.testing.assert_allclose(odin, expected, rtol=1e-5, atol=1e-6)
    unperturbed = baselines.log_max_softmax(plain.logits / 10.0)
    assert np.abs(odin - unperturbed).max() > 1e-4  # the input step did move the scores
