"""The paper's backbones (Sec. 5.2) as Keras 3 classifiers that expose their penultimate layer.

Every classifier built here takes images with values in [0, 255] (uint8 or float), scales them
inside the model, and outputs logits. Its penultimate feature layer is named ``features``;
``feature_model`` wraps any classifier (ours or the user's) as ``image -> (features, logits)``.
"""

from __future__ import annotations

import functools

import keras
from keras import layers

from bal_tf.backbones.densenet import densenet_features
from bal_tf.backbones.plain_cnn import plain_cnn_features
from bal_tf.backbones.resnet import resnet_features
from bal_tf.config import BackboneConfig
from bal_tf.errors import ConfigError, InputError

FEATURE_LAYER = "features"
LOGITS_LAYER = "logits"

# name -> function(inputs, width_multiplier) -> pooled features
BACKBONES = {
    "resnet18": functools.partial(resnet_features, depth_name="resnet18"),
    "resnet34": functools.partial(resnet_features, depth_name="resnet34"),
    "densenet": functools.partial(densenet_features, growth_rate=12),  # depth: BackboneConfig
    "cnn": plain_cnn_features,  # not the paper's: a plain user-style CNN (backbones/plain_cnn.py)
}


def build_classifier(
    config: BackboneConfig, input_shape: tuple[int, int, int], num_classes: int
) -> keras.Model:
    """Builds ``image -> logits`` with a penultimate layer named ``features``.

    Args:
        config: the architecture, width multiplier and optional extra feature Dense layer.
        input_shape: ``(H, W, C)``, e.g. ``(28, 28, 1)``.
        num_classes: size of the softmax head.

    Example:
        >>> model = build_classifier(BackboneConfig("resnet18", 0.25), (28, 28, 1), 10)
        >>> features, logits = feature_model(model)(images)
    """
    if config.arch not in BACKBONES:
        raise ConfigError(f"Unknown arch {config.arch!r}. Known: {sorted(BACKBONES)}")
    if config.width_multiplier <= 0:
        raise ConfigError(f"width_multiplier must be > 0. Received: {config.width_multiplier}")
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    extra = {"depth": config.densenet_depth} if config.arch == "densenet" else {}
    pooled = BACKBONES[config.arch](x, width_multiplier=config.width_multiplier, **extra)
    if config.feature_dim:
        # A linear bottleneck, as in the paper's Table 3 / Figure 4 (2 or 3 neurons for plots).
        features = layers.Dense(config.feature_dim, name=FEATURE_LAYER)(pooled)
    else:
        features = layers.Identity(name=FEATURE_LAYER)(pooled)
    logits = layers.Dense(num_classes, name=LOGITS_LAYER)(features)
    model = keras.Model(inputs, logits, name=f"{config.arch}_classifier")
    for layer in model.layers:  # read at each training call, and saved with the layer's config
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = config.batchnorm_momentum
    return model


def find_feature_layer(model: keras.Model, feature_layer: str | None = None):
    """Returns the penultimate tensor: the named layer's output, or the last Dense's input."""
    if feature_layer is not None:
        try:
            return model.get_layer(feature_layer).output
        except ValueError as exc:
            names = [layer.name for layer in model.layers]
            raise InputError(
                f"The classifier has no layer named {feature_layer!r}. Its layers: {names}"
            ) from exc
    dense_layers = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    if not dense_layers:
        raise InputError(
            "Cannot find the penultimate layer: the classifier has no Dense layer. "
            "Name it with --feature-layer."
        )
    return dense_layers[-1].input


def depth_layers(model: keras.Model, feature_layer: str | None = None) -> list:
    """The layers whose globally pooled outputs are the features below the penultimate one: the
    last layer at each spatial size (a ResNet's stages, a plain CNN's blocks), shallow to deep.
    Layers before the first convolution (the input's rescaling) are not features; a stage whose
    pooled output *is* the penultimate feature (a ResNet's last) is left out, and so is every
    layer when the classifier has no spatial maps (an MLP)."""
    features = find_feature_layer(model, feature_layer)
    last_by_size, seen_conv = {}, False
    for layer in model.layers:
        seen_conv = seen_conv or isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D))
        shape = getattr(layer, "output", None)
        shape = None if shape is None or isinstance(shape, (list, tuple)) else shape.shape
        if seen_conv and shape is not None and len(shape) == 4:
            last_by_size.pop(tuple(shape[1:3]), None)  # re-inserted: dict order follows the last one
            last_by_size[tuple(shape[1:3])] = layer
    chosen = list(last_by_size.values())
    pooled_from = _pooled_source(features)
    return [layer for layer in chosen if pooled_from is None or layer.output is not pooled_from]


def _pooled_source(tensor):
    """The 4-D tensor that ``tensor`` is the global average of (through Identity layers), or None."""
    for _ in range(4):
        operation = getattr(tensor, "_keras_history", None)
        operation = operation.operation if operation is not None else None
        if isinstance(operation, layers.GlobalAveragePooling2D):
            return operation.input
        if not isinstance(operation, layers.Identity):
            return None
        tensor = operation.input
    return None


def feature_model(model: keras.Model, feature_layer: str | None = None, depths: str = "penultimate") -> keras.Model:
    """Wraps a classifier as ``image -> (features, logits)``.

    Logits are the output of the last Dense layer before any softmax: if the classifier ends
    with a softmax (as an activation or a layer), its pre-activation is recomputed from the
    features so that logit-based baselines (Energy, MaxLogit) stay available.

    depths: ``penultimate`` (h(x), the paper's) or ``stages``: the penultimate features followed
        by the global average pool of each layer of ``depth_layers`` (shallow to deep), one vector
        (``depth_sizes`` gives the blocks' widths).
    """
    features = find_feature_layer(model, feature_layer)
    head = [layer for layer in model.layers if isinstance(layer, layers.Dense)][-1]
    activation = getattr(head.activation, "__name__", "linear")
    if activation == "linear" and model.outputs[0] is head.output:
        logits = head.output
    else:
        logits = keras.ops.matmul(head.input, head.kernel)
        if head.use_bias:
            logits = logits + head.bias
    if depths == "stages":
        pooled = [layers.GlobalAveragePooling2D(name=f"depth_pool_{layer.name}")(layer.output)
                  for layer in depth_layers(model, feature_layer)]
        if pooled:
            features = layers.Concatenate(name="depth_features")([features, *pooled])
    elif depths != "penultimate":
        raise ConfigError(f"depths must be 'penultimate' or 'stages'. Received: {depths!r}")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, [features, logits], name="feature_model")


def depth_sizes(model: keras.Model, feature_layer: str | None = None) -> list[int]:
    """Widths of the blocks of ``feature_model(..., depths="stages")``'s features: the penultimate
    features first, then each depth layer's channels."""
    features = find_feature_layer(model, feature_layer)
    return [int(features.shape[-1])] + [int(layer.output.shape[-1]) for layer in depth_layers(model, feature_layer)]
