"""TFLite models of the serving graph: ``float32``, ``dynamic_range`` and ``full_int8``.

They are converted from ``ServingModule.scores``, the bare graph (with D's fixed input
layers folded into its first Dense layer, ``detector.fold_for_quantization``): no input checks and no
control flow, which TFLite's builtin int8 kernels could not run. ``LiteRTRunner`` checks the
input shape instead and answers an empty batch itself. TFLite models carry only the uint8
signature.
"""

from __future__ import annotations

import tempfile

import keras
import numpy as np
import tensorflow as tf

from bal_tf.detector import fold_for_quantization
from bal_tf.errors import InputError
from bal_tf.export.saved_model import ServingModule

TFLITE_MODES = ("float32", "dynamic_range", "full_int8")


def convert_tflite(detector_model: keras.Model, log_threshold: float, mode: str,
                   representative_images: np.ndarray | None = None) -> bytes:
    """The detector graph -> TFLite flatbuffer: ``float32``, ``dynamic_range`` or ``full_int8``.

    ``dynamic_range`` stores int8 weights and computes in float. ``full_int8`` quantizes every
    op's weights and activations to int8 (the ranges calibrated on ``representative_images``,
    ID training images); only the graph's edges convert: the uint8 input is quantized and the
    float outputs dequantized, so all three models share one signature.
    """
    if mode not in TFLITE_MODES:
        raise InputError(f"mode must be one of {TFLITE_MODES}. Received: {mode!r}")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    # Freeze the weights first: Keras 3 keeps them as resource variables, which TFLite's int8
    # calibrator cannot read. Freezing flattens the output dict (keys in sorted order); a
    # wrapper restores the names, saved as a variable-free SavedModel so that the TFLite
    # signature keeps them.
    # D's fixed input layers (whitening) folded into its first Dense layer: the same function,
    # but quantized as one weight tensor (docs/SERVING.md, "Quantization").
    detector_model = fold_for_quantization(detector_model)
    module = ServingModule(detector_model, log_threshold)  # no XLA: TFLite converts plain ops
    concrete = module.scores.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    keys = sorted(concrete.structured_outputs)
    wrapper = tf.Module()
    wrapper.serve = tf.function(lambda images: dict(zip(keys, frozen(images))),
                                input_signature=[tf.TensorSpec((None, *module.image_shape), tf.uint8,
                                                               name="images")])
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(wrapper, tmp, signatures={"serving_default": wrapper.serve})
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=["serving_default"])
        return _convert(converter, mode, representative_images)


def _convert(converter, mode: str, representative_images) -> bytes:
    if mode == "float32":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "dynamic_range":
        return converter.convert()
    if representative_images is None:
        raise InputError("full_int8 conversion needs representative ID images (calibration data).")

    def representative():
        for image in representative_images:
            yield {"images": image[None].astype(np.uint8)}

    converter.representative_dataset = representative
    # Integer kernels only: a conversion that would leave an op in float fails here instead of
    # silently shipping a mixed model.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()
