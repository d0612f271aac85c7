"""RDM's discriminator (Sec. 4.3): D(f, c), an MLP on a feature and its one-hot class that outputs
a logit (D(f, c) in the paper's notation is its sigmoid; higher = more in-distribution).

Its optional fixed input layer (``discriminator_input="whitened"``, this project's default) and
the folding of that layer into D's first Dense layer for export live here too.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="bal_tf")
class OneHot(layers.Layer):
    """Class index -> one-hot vector (a named layer, so saved models load in safe mode)."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes

    def call(self, labels):
        # Rows of an identity matrix rather than ops.one_hot: the same values, but TFLite's
        # full-int8 ONE_HOT kernel ignores the output's quantization scale and feeds D wrong
        # labels, while GATHER of a quantized constant is exact (docs/SERVING.md).
        return ops.take(ops.eye(self.num_classes), ops.cast(labels, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def build_discriminator(feature_dim: int, num_classes: int, units=(256, 256), whitening=None) -> keras.Model:
    """D(f, c): ``[feature, class index] -> logit``. The one-hot label is appended to f before the
    first layer (the simplest cGAN form; the paper does not say how c enters D).

    whitening: ``(matrix, offset)``: D sees f @ matrix + offset, a fixed (non-trainable) Dense
        layer ``whiten`` (``discriminator_input="whitened"``, ``whitening_transform``); ``None``:
        D sees the raw feature, as in the paper.
    """
    feature = keras.Input((feature_dim,), name="feature")
    label = keras.Input((), dtype="int32", name="label")
    f = feature
    if whitening is not None:
        whiten = layers.Dense(feature_dim, trainable=False, name="whiten")
        f = whiten(f)
        whiten.set_weights([np.asarray(whitening[0], np.float32), np.asarray(whitening[1], np.float32)])
    x = layers.Concatenate(name="feature_and_label")([f, OneHot(num_classes, name="one_hot")(label)])
    for i, width in enumerate(units):
        x = layers.Dense(width, name=f"dense{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i + 1}")(x)
    logit = layers.Dense(1, name="logit")(x)
    logit = layers.Reshape((), name="squeeze")(logit)
    return keras.Model([feature, label], logit, name="discriminator")


def whitening_transform(features: np.ndarray, labels: np.ndarray, num_classes: int,
                        floor: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` with f @ W + b = Sigma^(-1/2) (f - mu): Sigma is the class-tied covariance (each
    feature minus its class mean, as Mahalanobis fits it), mu the overall mean. Every class
    becomes about a unit sphere, so D's MLP sees every direction at the scale the classes vary in.
    Eigenvalues below ``floor`` times the largest (dead ReLU units, rank-deficient features) are
    raised to it, so no direction is blown up by more than 1 / sqrt(floor)."""
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    centered = features.copy()
    for c in range(num_classes):
        members = labels == c
        if members.any():
            centered[members] -= features[members].mean(0)
    covariance = centered.T @ centered / max(len(features) - 1, 1)
    values, vectors = np.linalg.eigh(covariance)
    values = np.maximum(values, floor * max(values.max(), 1e-12))
    matrix = vectors @ np.diag(values ** -0.5) @ vectors.T  # symmetric: Sigma^(-1/2)
    offset = -features.mean(0) @ matrix
    return matrix.astype(np.float32), offset.astype(np.float32)


def fold_input_transform(discriminator: keras.Model) -> keras.Model:
    """The same D with its fixed ``whiten`` layer folded into its first Dense layer: for that
    layer's feature rows K, ``(f @ W + b) @ K`` is ``f @ (W @ K) + b @ K``. In float the two
    compute the same function (to rounding); the folded one is what gets quantized: TFLite
    quantizes each weight tensor on its own range, and the whitening matrix (directions of small
    variance scaled up by up to 100x) would otherwise be quantized apart from the weights it
    feeds (docs/SERVING.md). A D without that layer is returned unchanged.
    """
    names = {layer.name for layer in discriminator.layers}
    if "whiten" not in names:
        return discriminator
    feature_dim = discriminator.inputs[0].shape[-1]
    matrix, offset = (np.asarray(w, np.float64) for w in discriminator.get_layer("whiten").get_weights())
    units = tuple(layer.units for layer in discriminator.layers
                  if layer.name.startswith("dense") and layer.name[5:].isdigit())
    folded = build_discriminator(feature_dim, discriminator.get_layer("one_hot").num_classes, units)
    for layer in folded.layers:
        weights = discriminator.get_layer(layer.name).get_weights() if layer.weights else []
        if layer.name == "dense1":
            kernel, bias = (np.asarray(w, np.float64) for w in weights)
            feature_rows = kernel[:feature_dim]  # the one-hot label's rows follow
            weights = [np.concatenate([matrix @ feature_rows, kernel[feature_dim:]]).astype(np.float32),
                       (bias + offset @ feature_rows).astype(np.float32)]
        if weights:
            layer.set_weights(weights)
    return folded
