"""RSM (Sec. 4.2): the conditional generator G(z, c) and the FGSM step on its latent that turns
G's features into hard OOD features G(z', c) (Eqs. 6-7)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from bal_tf.discriminator import OneHot


def build_generator(latent_dim: int, num_classes: int, feature_dim: int, units=(256, 256),
                    output_activation: str = "relu") -> keras.Model:
    """G(z, c): ``[z (latent_dim), class index] -> feature (feature_dim)``; c enters one-hot.

    The paper's G is "only fully connected layers" (Sec. 5.5). ``output_activation`` is ``relu``
    where the classifier's features are (features after ReLU and pooling are >= 0).
    """
    z = keras.Input((latent_dim,), name="z")
    label = keras.Input((), dtype="int32", name="label")
    x = layers.Concatenate(name="z_and_label")([z, OneHot(num_classes, name="one_hot")(label)])
    for i, width in enumerate(units):
        x = layers.Dense(width, name=f"dense{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i + 1}")(x)
    out = layers.Dense(feature_dim, activation=output_activation, name="feature")(x)
    return keras.Model([z, label], out, name="generator")


def sample_epsilon(num_samples: int, mean: float, std: float, low: float | None, high: float | None, seed):
    """The FGSM step size, one per sample: eps ~ N(mean, std) (Sec. 4.2: "a random variable which
    follows a gaussian distribution"), clipped to [low, high]; ``None`` leaves that side open."""
    eps = mean + std * keras.random.normal((num_samples, 1), seed=seed)
    if low is not None:
        eps = ops.maximum(eps, low)
    if high is not None:
        eps = ops.minimum(eps, high)
    return eps


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
