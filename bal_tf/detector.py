"""Inference (Algorithm 1, lines 15-19; Eq. 2): p1 = max softmax H(x), c = argmax,
p2 = D(h(x), c), score = p1 * p2.

**Direction: every score here is higher = more in-distribution.**

The detector is one Keras model, ``image -> {class, p1, p2, score, log_score}``, whose scoring
layers call ``bal_tf.scoring`` (the one implementation of Eq. 2, also behind selection and
evaluate.py). ``log_score`` = log p1 + log p2 is the value to rank or threshold; ``score`` =
exp(log_score) is p1 * p2 itself.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from bal_tf import scoring
from bal_tf.errors import InputError
from bal_tf.discriminator import OneHot  # noqa: F401  (registers the layer for loading)
import bal_tf.density_ratio  # noqa: F401  (registers the layers of a scoring D with the density target)


@keras.saving.register_keras_serializable(package="bal_tf")
class PredictedClass(layers.Layer):
    """logits -> (c = argmax, log p1 = log max softmax): ``bal_tf.scoring`` as a layer."""

    def call(self, logits):
        return scoring.predicted_class_and_log_p1(logits)

    def compute_output_shape(self, input_shape):
        return input_shape[:-1], input_shape[:-1]


@keras.saving.register_keras_serializable(package="bal_tf")
class ProductScore(layers.Layer):
    """(log p1, D's logit) -> p1, p2, score = p1 * p2 and log_score (``bal_tf.scoring``)."""

    def call(self, log_p1, d_logit):
        return scoring.outputs(log_p1, d_logit)


def build_detector_model(feature_model: keras.Model, discriminator: keras.Model) -> keras.Model:
    """Combines ``image -> (features, logits)`` and ``D`` into ``image -> {class, p1, p2, score,
    log_score}``: preprocessing, backbone, head and discriminator in one graph."""
    image = keras.Input(feature_model.inputs[0].shape[1:], name="image")
    features, logits = feature_model(image)
    predicted, log_p1 = PredictedClass(name="predicted_class")(logits)
    d_logit = discriminator([features, predicted])
    outputs = ProductScore(name="bal_score")(log_p1, d_logit)
    outputs["class"] = predicted
    return keras.Model(image, outputs, name="bal_detector")


def fold_for_quantization(detector_model: keras.Model) -> keras.Model:
    """The detector with D's fixed whitening layer folded into its first Dense layer
    (``discriminator.fold_input_transform``): the same function in float, and the graph that the
    quantized TFLite models are converted from."""
    from bal_tf.discriminator import fold_input_transform

    discriminator = detector_model.get_layer("discriminator")
    folded = fold_input_transform(discriminator)
    if folded is discriminator:
        return detector_model
    return build_detector_model(detector_model.get_layer("feature_model"), folded)


class BALDetector:
    """A fitted BAL detector: the frozen classifier plus BAL's discriminator.

    Example:
        >>> detector = BALDetector.fit(classifier, id_train_ds, config=GANConfig(epochs=10))
        >>> scores = detector.score(images)  # higher = more in-distribution
        >>> detector.save("detector.keras"); detector = BALDetector.load("detector.keras")
    """

    def __init__(self, model: keras.Model):
        self.model = model
        self.image_shape = tuple(model.inputs[0].shape[1:])

    @classmethod
    def from_parts(cls, feature_model: keras.Model, discriminator: keras.Model) -> "BALDetector":
        return cls(build_detector_model(feature_model, discriminator))

    @classmethod
    def fit(cls, classifier: keras.Model, id_train: tf.data.Dataset, config=None,
            holdout: tf.data.Dataset | None = None, feature_layer: str | None = None,
            seed: int = 0, verbose: int | str = "auto", log_dir: str | None = None) -> "BALDetector":
        """Trains BAL's GAN on the classifier's features of ``id_train`` (stage 2 only).

        Args:
            classifier: a trained Keras classifier (image -> logits or probabilities); frozen.
            id_train: unbatched ``(image, label)`` ID training data.
            config: a ``GANConfig`` (default: the project's defaults).
            holdout: unbatched held-out ID ``(image, label)`` data for checkpoint selection
                (default: none, and the last epoch is kept).
            feature_layer: name of the penultimate layer (default: the last Dense's input).
        """
        from bal_tf import selection
        from bal_tf.backbones import feature_model as make_feature_model
        from bal_tf.config import GANConfig
        from bal_tf.features import extract_features
        from bal_tf.train_bal import train_bal

        config = config or GANConfig()
        features_of = make_feature_model(classifier, feature_layer)
        extract = lambda images, labels: extract_features(  # noqa: E731
            features_of, tf.data.Dataset.from_tensor_slices((images, labels)))
        train = extract_features(features_of, id_train)
        selection_data = None
        if holdout is not None:
            from bal_tf.data import to_numpy

            holdout_images, holdout_labels = to_numpy(holdout)
            selection_data = selection.build_selection_data(
                extract(holdout_images, holdout_labels), holdout_images, config.synthetic_families,
                config.batch_size, lambda _, images: extract(images, np.full(len(images), -1, np.int64)),
                seed=seed)
        result = train_bal(config, train, selection_data=selection_data, seed=seed, verbose=verbose,
                           log_dir=log_dir)
        return cls.from_parts(features_of, result.discriminator)

    def predict(self, images, batch_size: int = 256) -> dict[str, np.ndarray]:
        """Returns ``class``, ``p1``, ``p2``, ``score`` and ``log_score`` per image.

        Args:
            images: an array ``[N, H, W, C]`` with values in [0, 255], or a ``tf.data.Dataset``
                of images or ``(image, label)`` pairs (unbatched).

        Raises:
            InputError: another image shape, a non-numeric dtype, no images, NaN or Inf pixels.
        """
        if isinstance(images, tf.data.Dataset):
            spec = images.element_spec
            if isinstance(spec, tuple):
                images = images.map(lambda x, *_: x)
            self._check_shape(tuple(images.element_spec.shape))
            batches = images.map(lambda x: tf.cast(x, tf.float32)).batch(batch_size)
            outputs = [self._run(batch) for batch in batches]
            if not outputs:
                raise InputError("The dataset is empty: expected at least one image.")
            return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
        images = np.asarray(images)
        if images.ndim == len(self.image_shape):
            images = images[None]
        self._check_shape(images.shape[1:])
        if not np.issubdtype(images.dtype, np.number):
            raise InputError(f"Expected numeric images. Received dtype {images.dtype}")
        outputs = [self._run(images[i : i + batch_size].astype(np.float32))
                   for i in range(0, len(images), batch_size)]
        if not outputs:
            raise InputError("Expected at least one image. Received an empty array.")
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}

    def score(self, images, batch_size: int = 256) -> np.ndarray:
        """log(p1 * p2) per image: higher = more in-distribution."""
        return self.predict(images, batch_size)["log_score"]

    def _run(self, batch):
        # As serving_float does: a NaN pixel would give a NaN score, silently ranked anywhere.
        if not np.isfinite(np.asarray(batch)).all():
            raise InputError("Images must be finite: received NaN or Inf pixel values. Expected values "
                             "in [0, 255].")
        out = self.model(batch, training=False)
        return {k: np.asarray(v) for k, v in out.items()}

    def _check_shape(self, shape):
        if tuple(shape) != self.image_shape:
            raise InputError(
                f"Expected images of shape {self.image_shape} (H, W, C) with values in [0, 255]. "
                f"Received: {tuple(shape)}. Convert them with bal_tf.data.convert_image."
            )

    def save(self, path: str | Path) -> None:
        from bal_tf.io import atomic_path

        path = Path(path)
        if path.suffix != ".keras":
            raise InputError(f"A detector is saved as a .keras file. Received: {path}")
        with atomic_path(path) as tmp:
            self.model.save(tmp)

    @classmethod
    def load(cls, path: str | Path) -> "BALDetector":
        """Loads a saved detector (safe mode on: no arbitrary code runs)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"Detector file {path} does not exist.")
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:
            raise InputError(f"Could not load detector {path}: {type(exc).__name__}: {exc}") from exc
        return cls(model)
