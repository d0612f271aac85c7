"""DenseNet-BC (Huang et al. 2017): depth 100, growth rate 12, compression 0.5 (paper Sec. 5.2).

Three dense blocks of (depth - 4) / 6 bottleneck layers (BN-ReLU-Conv1x1(4k)-BN-ReLU-Conv3x3(k)),
transitions that halve the channels and the resolution, then BN-ReLU and global average pooling:
that pooled vector is the penultimate feature h(x). The width multiplier scales the growth rate.
"""

from __future__ import annotations

from keras import layers


def _bottleneck_layer(x, growth: int, name: str):
    y = layers.BatchNormalization(name=f"{name}_bn1")(x)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(4 * growth, 1, use_bias=False, name=f"{name}_conv1")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    y = layers.ReLU(name=f"{name}_relu2")(y)
    y = layers.Conv2D(growth, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, compression: float, name: str):
    channels = int(x.shape[-1] * compression)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"{name}_conv")(x)
    return layers.AveragePooling2D(2, name=f"{name}_pool")(x)


def densenet_features(
    inputs, depth: int = 100, growth_rate: int = 12, compression: float = 0.5,
    width_multiplier: float = 1.0,
):
    """Builds the DenseNet-BC trunk on ``inputs`` (scaled to [0, 1]); returns pooled features."""
    if (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n + 4. Received: depth={depth}")
    layers_per_block = (depth - 4) // 6
    growth = max(1, int(round(growth_rate * width_multiplier)))
    x = layers.Conv2D(2 * growth, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    for block in range(3):
        for i in range(layers_per_block):
            x = _bottleneck_layer(x, growth, name=f"block{block + 1}_layer{i + 1}")
        if block < 2:
            x = _transition(x, compression, name=f"transition{block + 1}")
    x = layers.BatchNormalization(name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    return layers.GlobalAveragePooling2D(name="pool")(x)
