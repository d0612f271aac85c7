"""GCPL and AEC (the paper's baselines with their own training) on tiny data."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from bal_tf.trained_baselines import GCPLClassifier, build_autoencoder, gcpl_scores, reconstruction_errors


def clusters(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]], np.float32)
    return (centers[labels] + rng.normal(0, 0.5, (n, 2))).astype(np.float32), labels


def tiny_gcpl(weight=0.01):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((2,))
    features = keras.layers.Dense(2, name="features")(inputs)
    model = GCPLClassifier(keras.Model(inputs, features), 3, gamma=1.0, prototype_weight=weight)
    model(np.zeros((1, 2), np.float32))
    return model


def test_gcpl_objective_is_distance_cross_entropy_plus_the_prototype_loss():
    model = tiny_gcpl(weight=0.5)
    points, labels = clusters(8)
    features = model.features_model(points).numpy()
    prototypes = model.prototypes.numpy()
    distances = ((features[:, None] - prototypes[None]) ** 2).sum(-1)
    logits = -distances
    log_softmax = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    dce = -log_softmax[np.arange(8), labels].mean()
    prototype_loss = distances[np.arange(8), labels].mean()
    loss, model_logits = model.objective(points, labels, training=False)
    np.testing.assert_allclose(model_logits, logits, rtol=1e-5, atol=1e-5)
    assert float(loss) == pytest.approx(dce + 0.5 * prototype_loss, rel=1e-4)


def test_gcpl_learns_prototypes_and_scores_far_points_as_ood():
    model = tiny_gcpl()
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    points, labels = clusters()
    model.fit(points, labels, epochs=12, batch_size=64, verbose=0)
    assert np.mean(np.argmax(model(points).numpy(), 1) == labels) > 0.95
    far = np.random.default_rng(1).normal(0, 1, (100, 2)).astype(np.float32) * 3 + np.array([30.0, -30.0], np.float32)
    id_scores = gcpl_scores(model, tf.data.Dataset.from_tensor_slices(points))
    ood_scores = gcpl_scores(model, tf.data.Dataset.from_tensor_slices(far))
    assert id_scores.min() > ood_scores.max()  # nearest-prototype distance separates them fully


def test_autoencoder_reconstructs_its_training_images_better_than_noise():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # "ID": bright squares at random places on black 8x8 images
    images = np.zeros((256, 8, 8, 1), np.uint8)
    for image, (row, col) in zip(images, rng.integers(0, 5, (256, 2))):
        image[row:row + 3, col:col + 3] = 255
    autoencoder = build_autoencoder((8, 8, 1), latent_dim=16)
    autoencoder.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    autoencoder.fit(images, images.astype(np.float32) / 255.0, epochs=12, batch_size=32, verbose=0)
    noise = rng.integers(0, 256, (64, 8, 8, 1)).astype(np.uint8)
    id_errors = reconstruction_errors(autoencoder, tf.data.Dataset.from_tensor_slices(images[:64]))
    noise_errors = reconstruction_errors(autoencoder, tf.data.Dataset.from_tensor_slices(noise))
    assert id_errors.shape == (64,) and np.median(id_errors) < 0.2 * np.median(noise_errors)
    with pytest.raises(ValueError, match="divisible by 4"):
        build_autoencoder((30, 30, 1))
