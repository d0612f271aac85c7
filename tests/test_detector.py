"""The scoring model (Eq. 2, Algorithm 1 inference) and the detector API."""

import numpy as np
import pytest
import tensorflow as tf

from bal_tf.backbones import build_classifier, feature_model
from bal_tf.config import BackboneConfig, GANConfig
from bal_tf.detector import BALDetector
from bal_tf.errors import InputError
from bal_tf.discriminator import build_discriminator

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def parts():
    classifier = build_classifier(BackboneConfig("resnet18", 0.0625), SHAPE, 10)
    return classifier, feature_model(classifier), build_discriminator(32, 10, (16,))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, *SHAPE)).astype(np.uint8)


def test_scoring_model_equals_p1_times_p2_by_hand(parts, images):
    _, features_of, discriminator = parts
    detector = BALDetector.from_parts(features_of, discriminator)
    out = detector.predict(images)
    features, logits = (np.asarray(t, np.float64) for t in features_of(images.astype(np.float32)))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    c = probs.argmax(1)
    p1 = probs.max(1)
    p2 = 1 / (1 + np.exp(-np.asarray(discriminator([features.astype(np.float32), c.astype(np.int32)]), np.float64)))
    np.testing.assert_array_equal(out["class"], c)
    np.testing.assert_allclose(out["p1"], p1, rtol=1e-5)
    np.testing.assert_allclose(out["p2"], p2, rtol=1e-5)
    np.testing.assert_allclose(out["score"], p1 * p2, rtol=1e-5)
    np.testing.assert_allclose(out["log_score"], np.log(p1 * p2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(detector.score(images), out["log_score"])


def test_log_score_separates_saturated_p1():
    from bal_tf.detector import PredictedClass

    logits = tf.constant([[40.0, 0.0], [60.0, 0.0]])  # both round to p1 = 1.0 in float32
    _, log_p1 = PredictedClass()(logits)
    assert float(tf.exp(log_p1[0])) == float(tf.exp(log_p1[1])) == 1.0
    assert float(log_p1[0]) < float(log_p1[1]) < 0.0


def test_saved_and_reloaded_detector_gives_identical_scores(parts, images, tmp_path):
    _, features_of, discriminator = parts
    detector = BALDetector.from_parts(features_of, discriminator)
    detector.save(tmp_path / "detector.keras")
    reloaded = BALDetector.load(tmp_path / "detector.keras")
    before, after = detector.predict(images), reloaded.predict(images)
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])


def test_dataset_input_and_bad_shapes(parts, images):
    _, features_of, discriminator = parts
    detector = BALDetector.from_parts(features_of, discriminator)
    ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(len(images), np.int64)))
    np.testing.assert_allclose(detector.score(ds), detector.score(images), rtol=1e-6)
    with pytest.raises(InputError, match=r"Expected images of shape \(28, 28, 1\).*Received: \(32, 32, 3\)"):
        detector.score(np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="empty"):
        detector.score(np.zeros((0, 28, 28, 1), np.uint8))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_pixels_are_refused(parts, images, bad_value):
    _, features_of, discriminator = parts
    detector = BALDetector.from_parts(features_of, discriminator)
    bad = images[:4].astype(np.float32)
    bad[2, 3, 3, 0] = bad_value
    with pytest.raises(InputError, match="NaN or Inf"):
        detector.score(bad)
    with pytest.raises(InputError, match="NaN or Inf"):
        detector.predict(tf.data.Dataset.from_tensor_slices(bad))


def test_corrupt_detector_file_is_reported(tmp_path):
    bad = tmp_path / "detector.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="Could not load detector"):
        BALDetector.load(bad)


def test_fit_api_trains_from_a_classifier_and_images(parts, images):
    classifier, _, _ = parts
    labels = np.random.default_rng(1).integers(0, 10, len(images))
    train = tf.data.Dataset.from_tensor_slices((images, labels))
    config = GANConfig(epochs=2, batch_size=16, latent_dim=4, generator_units=[8], discriminator_units=[8],
                       synthetic_families=["pixel_permutation", "uniform_features", "hard_features"])
    detector = BALDetector.fit(classifier, train, config=config, holdout=train.take(16), verbose=0)
    scores = detector.score(images)
    out = detector.predict(images)
    np.testing.assert_allclose(scores, np.log(out["p1"]) + np.log(out["p2"]), rtol=1e-5, atol=1e-5)
