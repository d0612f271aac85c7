"""CIFAR-style ResNet-18 / ResNet-34 (He et al. 2016) as used by the paper (Sec. 5.2).

CIFAR-style means a 3x3 stride-1 stem without max-pooling, so 28x28 and 32x32 inputs keep
enough resolution; four stages of basic blocks with 64-128-256-512 channels (times the width
multiplier), then global average pooling: that pooled vector is the penultimate feature h(x).
"""

from __future__ import annotations

from keras import layers

STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = layers.Conv2D(filters, 3, 1, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet_features(inputs, depth_name: str = "resnet18", width_multiplier: float = 1.0):
    """Builds the ResNet trunk on ``inputs`` (already scaled to [0, 1]); returns pooled features."""
    if depth_name not in BLOCKS_PER_STAGE:
        raise ValueError(f"depth_name must be one of {list(BLOCKS_PER_STAGE)}. Received: {depth_name!r}")
    widths = [max(1, int(round(w * width_multiplier))) for w in STAGE_WIDTHS]
    x = layers.Conv2D(widths[0], 3, 1, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    for stage, (filters, blocks) in enumerate(zip(widths, BLOCKS_PER_STAGE[depth_name])):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, stride, name=f"stage{stage + 1}_block{block + 1}")
    return layers.GlobalAveragePooling2D(name="pool")(x)
