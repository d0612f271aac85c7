"""Export a run as one graph for TF Serving and TFLite: uint8 images in, {class, p1, p2, score,
is_ood, threshold} out. Preprocessing, backbone, head and discriminator are in the same graph;
there is no gradient step in it (TFLite's builtin ops could not run one).

One module per concern:

* ``threshold``: the OOD threshold, calibrated on held-out ID data (95% accepted: FPR95's point).
* ``saved_model``: the serving graph and its input checks, the SavedModel, TF Serving's layout.
* ``tflite``: float32, dynamic-range and full-int8 TFLite models of the same graph.
* ``litert_runner``: runs those models with ai-edge-litert (no TensorFlow needed).
* ``parity``: how far each exported model is from the Keras detector.
* ``serving_client``: request bodies for a TF Serving server (REST and gRPC).
* ``run_export``: all of it for a run directory (``export/export_model.py``).
"""

from bal_tf.export.litert_runner import LiteRTRunner
from bal_tf.export.parity import auroc_parity, max_abs_difference
from bal_tf.export.run_export import ExportOptions, export_run
from bal_tf.export.saved_model import OUTPUT_KEYS, ServingModule, export_saved_model, tf_serving_layout
from bal_tf.export.serving_client import SIGNATURE_DTYPES, predict_request, rest_request_body
from bal_tf.export.threshold import calibrate_threshold
from bal_tf.export.tflite import TFLITE_MODES, convert_tflite

__all__ = ["ExportOptions", "LiteRTRunner", "OUTPUT_KEYS", "SIGNATURE_DTYPES", "ServingModule", "TFLITE_MODES",
           "auroc_parity", "calibrate_threshold", "convert_tflite", "export_run", "export_saved_model",
           "max_abs_difference", "predict_request", "rest_request_body", "tf_serving_layout"]
