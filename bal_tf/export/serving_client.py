"""Request bodies for a TF Serving server that serves an exported run (REST and gRPC)."""

from __future__ import annotations

import numpy as np

from bal_tf.errors import InputError

SIGNATURE_DTYPES = {"serving_default": np.uint8, "serving_float": np.float32}


def rest_request_body(images: np.ndarray, signature: str = "serving_default") -> dict:
    """The JSON body of a TF Serving REST predict call (``POST /v1/models/<name>:predict``)."""
    images = _check_request_dtype(images, signature)
    return {"signature_name": signature, "inputs": {"images": images.tolist()}}


def predict_request(images: np.ndarray, model_name: str = "bal", signature: str = "serving_default"):
    """A TF Serving gRPC ``PredictRequest`` for the exported signature (tensorflow-serving-api)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    images = _check_request_dtype(images, signature)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return request


def _check_request_dtype(images, signature: str) -> np.ndarray:
    if signature not in SIGNATURE_DTYPES:
        raise InputError(f"Unknown signature {signature!r}. Known: {sorted(SIGNATURE_DTYPES)}")
    images = np.asarray(images)
    expected = np.dtype(SIGNATURE_DTYPES[signature])
    if images.dtype != expected:
        raise InputError(f"The signature {signature} takes {expected} images. Received dtype {images.dtype}")
    return images
