"""The serving graph, its SavedModel and TF Serving's folder layout.

Inputs: ``images``, uint8 ``[batch, H, W, C]`` in the ID set's shape (28x28x1 for the MNIST
family, 32x32x3 otherwise), values 0..255. Another dtype is refused by the signature; another
height, width or channel count by the graph, with an InvalidArgument that names the expected and
the received shape (TF Serving passes a signature's shape through unchecked). An empty batch
returns empty outputs. The second signature, ``serving_float``, takes float32 pixels on the same
0..255 scale: it clips them to 0..255 and rounds them (so it gives exactly the uint8 path's
outputs) and refuses NaN / Inf.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import tensorflow as tf

from bal_tf.io import atomic_path, atomic_write_text

# log_score = log(p1 * p2) is the value to rank by: score = p1 * p2 ties confident images whose
# p1 rounds to 1.0 in float32 (bal_tf.scoring).
OUTPUT_KEYS = ("class", "p1", "p2", "score", "log_score", "is_ood", "threshold")
JIT_MODES = ("none", "head", "all")
_OUTPUT_DTYPES = {"class": tf.int32, "p1": tf.float32, "p2": tf.float32, "score": tf.float32,
                  "log_score": tf.float32, "is_ood": tf.bool, "threshold": tf.float32}


class ServingModule(tf.Module):
    """The exported graph: ``serving_default(images uint8) -> dict`` and the float variant
    ``serving_float(images float32) -> dict``; ``scores`` is the bare graph (no input checks,
    no control flow) that the TFLite models are converted from.

    Args:
        detector_model: ``image -> {class, p1, p2, score, log_score}`` (``bal_tf.detector``).
        log_threshold: images with a lower log score are OOD.
        jit_compile: ``"none"``; ``"head"``: BAL's part after the backbone (argmax, p1, D, the
            product: about 25 small ops whose dispatch, not arithmetic, is what they cost at
            batch 1) compiled by XLA into one kernel launch; ``"all"``: the whole graph.
    """

    def __init__(self, detector_model: keras.Model, log_threshold: float, jit_compile: str = "none"):
        super().__init__()
        if jit_compile not in JIT_MODES:
            raise ValueError(f"jit_compile must be one of {JIT_MODES}. Received: {jit_compile!r}")
        self.detector_model = detector_model
        # The detector's parts (bal_tf.detector.build_detector_model): the backbone, then BAL's
        # layers, called here one after the other so that BAL's part can be compiled alone.
        from bal_tf.detector import PredictedClass, ProductScore

        sub_models = [layer for layer in detector_model.layers if isinstance(layer, keras.Model)]
        self.feature_model, self.discriminator = sub_models  # in call order: h(x), then D
        self.predicted_class = next(l for l in detector_model.layers if isinstance(l, PredictedClass))
        self.product_score = next(l for l in detector_model.layers if isinstance(l, ProductScore))
        self.head = tf.function(self._head, jit_compile=jit_compile == "head", reduce_retracing=True)
        self.image_shape = tuple(int(d) for d in detector_model.inputs[0].shape[1:])
        self.log_threshold = tf.constant(log_threshold, tf.float32)
        # No static height, width or channels in the signatures: the graph checks them itself
        # (a static shape there is not enforced at serving time, and would let a wrong image
        # reach the backbone).
        any_images = (None, None, None, None)
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec(any_images, tf.uint8, name="images")])
        self.serve_float = tf.function(self._serve_float,
                                       input_signature=[tf.TensorSpec(any_images, tf.float32, name="images")])
        self.scores = tf.function(self._scores, jit_compile=jit_compile == "all", input_signature=[
            tf.TensorSpec((None, *self.image_shape), tf.uint8, name="images")])

    def _checked(self, images, signature: str):
        expected = tf.constant(self.image_shape, tf.int32)
        received = tf.shape(images, out_type=tf.int32)
        ok = tf.reduce_all(tf.equal(received[1:], expected))
        check = tf.debugging.Assert(ok, [
            f"{signature}: expected images of shape [batch, {', '.join(map(str, self.image_shape))}] "
            "(batch, height, width, channels); received shape", received], summarize=4)
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(images), (None, *self.image_shape))

    def _serve(self, images):
        images = self._checked(images, "serving_default")
        return tf.cond(tf.shape(images)[0] > 0, lambda: self.scores(images), self._empty)

    def _serve_float(self, images):
        images = self._checked(images, "serving_float")
        images = tf.debugging.assert_all_finite(
            images, "serving_float: images must be finite (received NaN or Inf); expected float32 "
            "pixel values in 0..255")
        # Same pixels as the uint8 path: clip out-of-range values, round like a uint8 encoder.
        return self._serve(tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8))

    def _empty(self):
        return {key: tf.zeros([0], dtype) for key, dtype in _OUTPUT_DTYPES.items()}

    def _head(self, features, logits):
        """BAL's part: the detector model's own layers after the backbone (Eq. 2)."""
        predicted, log_p1 = self.predicted_class(logits)
        d_logit = self.discriminator([features, predicted], training=False)
        out = self.product_score(log_p1, d_logit)
        out["class"] = predicted
        return out

    def _scores(self, images):
        features, logits = self.feature_model(tf.cast(images, tf.float32), training=False)
        out = self.head(features, logits)
        batch = tf.shape(images)[0]
        return {
            "class": out["class"],
            "p1": out["p1"],
            "p2": out["p2"],
            "score": out["score"],
            "log_score": out["log_score"],
            "is_ood": out["log_score"] < self.log_threshold,
            "threshold": tf.fill([batch], tf.exp(self.log_threshold)),
        }


def export_saved_model(detector_model: keras.Model, log_threshold: float, path: str | Path,
                       jit_compile: str = "none") -> Path:
    """Writes a SavedModel whose ``serving_default`` signature is the whole detector (atomic).

    Keras' ``ExportArchive`` tracks the model's variables so that TF1-style loaders (TF Serving,
    ``saved_model_cli run``) restore them too.
    """
    module = ServingModule(detector_model, log_threshold, jit_compile=jit_compile)
    archive = keras.export.ExportArchive()
    archive.track(detector_model)
    archive.add_endpoint("serving_default", module.serve)
    archive.add_endpoint("serving_float", module.serve_float)
    with atomic_path(path, suffix="") as tmp:
        archive.write_out(str(tmp), verbose=False)
    return Path(path)


def tf_serving_layout(saved_model_dir: Path, export_dir: Path, model_name: str, version: int = 1) -> Path:
    """Copies a SavedModel to ``<export_dir>/<model_name>/<version>/`` and writes models.config."""
    target = export_dir / model_name / str(version)
    with atomic_path(target, suffix="") as tmp:
        shutil.copytree(saved_model_dir, tmp)
    config = (
        "model_config_list {\n"
        "  config {\n"
        f"    name: \"{model_name}\"\n"
        f"    base_path: \"/models/{model_name}\"\n"
        "    model_platform: \"tensorflow\"\n"
        "  }\n"
        "}\n"
    )
    atomic_write_text(export_dir / "models.config", config)
    return target
