"""The paper's baselines that need their own training (Sec. 5.2): GCPL and AEC.

Every other baseline of evaluate.py scores the run's frozen classifier; these two cannot:

* **GCPL** (Yang et al., 2018, "Robust classification with convolutional prototype learning"):
  the same backbone trained from scratch with one learnable prototype m_k per class, logits
  -gamma ||h(x) - m_k||^2, the distance-based cross-entropy plus lambda times the prototype loss
  ||h(x) - m_y||^2 (lambda = 0.01, as the paper's Sec. 5.2 sets it). OOD score: minus the
  squared distance to the nearest prototype.
* **AEC**: a convolutional autoencoder trained on the ID training images; OOD score: minus the
  per-image reconstruction error (mean squared error), as the paper's "reconstruction error".

Both train with the classifier's data, batch size, optimizer and epoch count (``classifier``
section; ``baselines.aec_epochs`` for the autoencoder), resume after their last finished epoch
like stage 1, and land in ``RUN/baselines/`` (weights only, rebuilt from the run's config).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from bal_tf.backbones import build_classifier
from bal_tf.config import RunConfig


class GCPLClassifier(keras.Model):
    """Backbone features -> logits -gamma ||f - m_k||^2 over K prototypes; trained with DCE + lambda PL."""

    def __init__(self, features_model: keras.Model, num_classes: int, gamma: float = 1.0,
                 prototype_weight: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.features_model = features_model
        self.gamma = gamma
        self.prototype_weight = prototype_weight
        feature_dim = int(features_model.outputs[0].shape[-1])
        self.prototypes = self.add_weight(shape=(num_classes, feature_dim), initializer="random_normal",
                                          name="prototypes")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def squared_distances(self, features):
        return ops.sum(ops.square(features[:, None, :] - self.prototypes[None]), axis=-1)  # [N, K]

    def call(self, images, training=False):
        return -self.gamma * self.squared_distances(self.features_model(images, training=training))

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def objective(self, images, labels, training=True):
        """Distance-based cross-entropy + prototype_weight * ||f - m_y||^2 (Yang et al., Eqs. 6, 12)."""
        features = self.features_model(images, training=training)
        logits = -self.gamma * self.squared_distances(features)
        dce = ops.mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        own = ops.take(self.prototypes, ops.cast(labels, "int32"), axis=0)
        prototype_loss = ops.mean(ops.sum(ops.square(features - own), axis=-1))
        return dce + self.prototype_weight * prototype_loss, logits

    def train_step(self, data):
        images, labels = data[0], data[1]
        with tf.GradientTape() as tape:
            loss, logits = self.objective(images, labels)
        self.optimizer.apply(tape.gradient(loss, self.trainable_weights), self.trainable_weights)
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(labels, logits)
        return {m.name: m.result() for m in self.metrics}


def build_gcpl(config: RunConfig, image_shape, num_classes: int) -> GCPLClassifier:
    from bal_tf.backbones import FEATURE_LAYER

    classifier = build_classifier(config.backbone, image_shape, num_classes)
    features_model = keras.Model(classifier.inputs, classifier.get_layer(FEATURE_LAYER).output, name="gcpl_backbone")
    model = GCPLClassifier(features_model, num_classes, gamma=config.baselines.gcpl_gamma,
                           prototype_weight=config.baselines.gcpl_prototype_weight)
    model(np.zeros((1, *image_shape), np.float32))  # build
    return model


def build_autoencoder(image_shape, latent_dim: int = 64) -> keras.Model:
    """Conv encoder (two stride-2 convolutions, a dense code) and its mirror; output in [0, 1]."""
    height, width, channels = image_shape
    if height % 4 or width % 4:
        raise ValueError(f"AEC needs image sides divisible by 4. Received: {image_shape}")
    images = keras.Input(image_shape, name="image")
    x = layers.Rescaling(1.0 / 255.0, name="scale")(images)
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    code = layers.Dense(latent_dim, name="code")(x)
    x = layers.Dense((height // 4) * (width // 4) * 64, activation="relu")(code)
    x = layers.Reshape((height // 4, width // 4, 64))(x)
    x = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(x)
    out = layers.Conv2DTranspose(channels, 3, strides=2, padding="same", activation="sigmoid", name="reconstruction")(x)
    return keras.Model(images, out, name="autoencoder")


def reconstruction_errors(autoencoder: keras.Model, images: tf.data.Dataset, batch_size: int = 512) -> np.ndarray:
    """Per-image mean squared error between the image (scaled to [0, 1]) and its reconstruction."""
    errors = []
    for batch in images.batch(batch_size):
        batch = tf.cast(batch, tf.float32)
        reconstruction = autoencoder(batch, training=False)
        errors.append(tf.reduce_mean(tf.square(batch / 255.0 - reconstruction), axis=[1, 2, 3]).numpy())
    return np.concatenate(errors) if errors else np.zeros((0,), np.float32)


def gcpl_scores(model: GCPLClassifier, images: tf.data.Dataset, batch_size: int = 512) -> np.ndarray:
    """Minus the squared distance of each image's features to the nearest prototype (higher = ID)."""
    scores = []
    for batch in images.batch(batch_size):
        distances = model.squared_distances(model.features_model(tf.cast(batch, tf.float32), training=False))
        scores.append(-ops.convert_to_numpy(ops.min(distances, axis=1)))
    return np.concatenate(scores) if scores else np.zeros((0,), np.float32)


def train_trained_baselines(config: RunConfig, run_root: str | Path, id_data=None, verbose="auto") -> dict:
    """Trains (or resumes, or loads) GCPL and AEC for a run; returns ``{"gcpl": model, "aec": model}``."""
    from bal_tf.checkpointing import EpochCheckpoints, load_model_state, resumable_fit, save_model_state
    from bal_tf.classifier import build_optimizer, load_id_data, training_pipeline
    from bal_tf.io import atomic_path

    keras.utils.set_random_seed(config.seed)
    id_data = id_data or load_id_data(config)
    images, labels = id_data.arrays("train")
    folder = Path(run_root) / "baselines"
    batch = config.classifier.batch_size
    steps = -(-len(images) // batch)
    models = {}
    for name in ("gcpl", "aec"):
        path = folder / f"{name}.weights.h5"
        if name == "gcpl":
            model = build_gcpl(config, id_data.image_shape, id_data.num_classes)
            model.compile(optimizer=build_optimizer(config, steps))
            epochs, pairs = config.classifier.epochs, (images, labels)
        else:
            model = build_autoencoder(id_data.image_shape, config.baselines.aec_latent_dim)
            model.compile(optimizer=keras.optimizers.Adam(config.classifier.learning_rate), loss="mse")
            epochs, scaled = config.baselines.aec_epochs, (images.astype(np.float32) / 255.0)
            pairs = (images, scaled)  # input image, target in [0, 1]
        if path.is_file():
            model.load_weights(path)
        else:
            model.optimizer.build(model.trainable_variables)
            checkpoints = EpochCheckpoints(folder / f"{name}_resume")
            resumable_fit(
                model, lambda first, pairs=pairs, epochs=epochs: training_pipeline(
                    pairs[0], pairs[1], batch, config.seed, False, first, epochs),
                epochs=epochs, steps_per_epoch=steps, checkpoints=checkpoints,
                save_state=lambda p, model=model: save_model_state(model, p),
                load_state=lambda p, model=model: load_model_state(model, p),
                verbose=verbose, stage=f"baseline {name}")
            with atomic_path(path, suffix=".weights.h5") as tmp:
                model.save_weights(tmp)
            checkpoints.clear()
        models[name] = model
    return models
