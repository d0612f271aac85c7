"""A plain CNN (conv, pool, dropout, dense): the kind of classifier a user brings.

Not one of the paper's backbones. It is the second architecture of the test protocols
(docs/results/protocols.md): BAL has to lead on a backbone without batch normalization or
residual blocks too, whose penultimate layer is a ReLU Dense layer rather than pooled maps.
"""

from __future__ import annotations

from keras import layers

CONV_WIDTHS = (32, 32, 64, 64)
DENSE_WIDTH = 128


def plain_cnn_features(inputs, width_multiplier: float = 1.0):
    """Two conv-conv-pool-dropout blocks, then Dense(128, ReLU): that vector is h(x)."""
    widths = [max(1, int(round(w * width_multiplier))) for w in CONV_WIDTHS]
    x = inputs
    for block in range(2):
        for conv in range(2):
            x = layers.Conv2D(widths[2 * block + conv], 3, padding="same", activation="relu",
                              name=f"block{block + 1}_conv{conv + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block + 1}_pool")(x)
        x = layers.Dropout(0.25, name=f"block{block + 1}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    return layers.Dense(max(1, int(round(DENSE_WIDTH * width_multiplier))), activation="relu", name="dense")(x)
