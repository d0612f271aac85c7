"""Export a run as one graph for TF Serving and TFLite: uint8 images in, {class, p1, p2, score,
is_ood, threshold} out. Preprocessing, backbone, head and discriminator are in the same graph;
there is no gradient step in it (TFLite's builtin ops could not run one).

Threshold: the score below which an image is called OOD, calibrated on held-out ID data so that
95% of it is accepted (the paper's FPR95 operating point). It is a graph constant, returned as
an output and written to ``export_info.json``.

Inputs: ``images``, uint8 ``[batch, H, W, C]`` in the ID set's shape (28x28x1 for the MNIST
family, 32x32x3 otherwise), values 0..255. Another dtype or shape is refused by the signature.
uint8 cannot hold out-of-range values. The SavedModel's second signature, ``serving_float``,
takes float32 pixels on the same 0..255 scale: it clips them to 0..255 and rounds them (so it
gives exactly the uint8 path's outputs) and refuses NaN / Inf. TFLite models carry only the
uint8 signature.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bal_tf.errors import InputError
from bal_tf.io import atomic_path, atomic_write_text

OUTPUT_KEYS = ("class", "p1", "p2", "score", "is_ood", "threshold")
TFLITE_MODES = ("float32", "dynamic_range", "full_int8")


def calibrate_threshold(log_scores: np.ndarray, tpr: float = 0.95) -> float:
    """The log-score threshold that accepts ``tpr`` of the given ID scores (score >= t)."""
    log_scores = np.asarray(log_scores, np.float64)
    if len(log_scores) == 0 or not np.isfinite(log_scores).all():
        raise InputError("Calibration needs finite held-out ID scores; received none or NaN/Inf.")
    return float(np.quantile(log_scores, 1.0 - tpr, method="lower"))


class ServingModule(tf.Module):
    """The exported graph: ``serving_default(images uint8) -> dict`` and the float variant
    ``serving_float(images float32) -> dict`` (values clipped to 0..255, NaN / Inf refused)."""

    def __init__(self, detector_model: keras.Model, log_threshold: float):
        super().__init__()
        self.detector_model = detector_model
        self.log_threshold = tf.constant(log_threshold, tf.float32)
        shape = (None, *detector_model.inputs[0].shape[1:])
        self.serve = tf.function(self._serve, input_signature=[tf.TensorSpec(shape, tf.uint8, name="images")])
        self.serve_float = tf.function(self._serve_float,
                                       input_signature=[tf.TensorSpec(shape, tf.float32, name="images")])

    def _serve_float(self, images):
        images = tf.debugging.assert_all_finite(
            images, "serving_float: images must be finite (received NaN or Inf); expected float32 "
            "pixel values in 0..255")
        # Same pixels as the uint8 path: clip out-of-range values, round like a uint8 encoder.
        return self._serve(tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8))

    def _serve(self, images):
        out = self.detector_model(tf.cast(images, tf.float32), training=False)
        batch = tf.shape(images)[0]
        return {
            "class": out["class"],
            "p1": out["p1"],
            "p2": out["p2"],
            "score": out["score"],
            "is_ood": out["log_score"] < self.log_threshold,
            "threshold": tf.fill([batch], tf.exp(self.log_threshold)),
        }


def export_saved_model(detector_model: keras.Model, log_threshold: float, path: str | Path) -> Path:
    """Writes a SavedModel whose ``serving_default`` signature is the whole detector (atomic).

    Keras' ``ExportArchive`` tracks the model's variables so that TF1-style loaders (TF Serving,
    ``saved_model_cli run``) restore them too.
    """
    module = ServingModule(detector_model, log_threshold)
    archive = keras.export.ExportArchive()
    archive.track(detector_model)
    archive.add_endpoint("serving_default", module.serve)
    archive.add_endpoint("serving_float", module.serve_float)
    with atomic_path(path, suffix="") as tmp:
        archive.write_out(str(tmp), verbose=False)
    return Path(path)


def tf_serving_layout(saved_model_dir: Path, export_dir: Path, model_name: str, version: int = 1) -> Path:
    """Copies a SavedModel to ``<export_dir>/<model_name>/<version>/`` and writes models.config."""
    import shutil

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


def convert_tflite(saved_model_dir: Path, mode: str, representative_images: np.ndarray | None = None) -> bytes:
    """SavedModel -> TFLite flatbuffer: ``float32``, ``dynamic_range`` or ``full_int8``.

    ``dynamic_range`` stores int8 weights and computes in float. ``full_int8`` quantizes every
    op's weights and activations to int8 (the ranges calibrated on ``representative_images``,
    ID training images); only the graph's edges convert: the uint8 input is quantized and the
    float outputs dequantized, so all three models share one signature.
    """
    if mode not in TFLITE_MODES:
        raise InputError(f"mode must be one of {TFLITE_MODES}. Received: {mode!r}")
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    import tempfile

    # Freeze the weights first: Keras 3 keeps them as resource variables, which TFLite's int8
    # calibrator cannot read. Freezing flattens the output dict (keys in sorted order); a
    # wrapper restores the names, saved as a variable-free SavedModel so that the TFLite
    # signature keeps them.

    loaded = tf.saved_model.load(str(saved_model_dir))  # keep it alive: it owns the variables
    signature = loaded.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(signature)
    keys = sorted(signature.structured_outputs)
    module = tf.Module()
    module.serve = tf.function(lambda images: dict(zip(keys, frozen(images=images))),
                               input_signature=[signature.structured_input_signature[1]["images"]])
    with tempfile.TemporaryDirectory() as tmp:
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
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


class LiteRTRunner:
    """Runs an exported TFLite model with ai-edge-litert's Interpreter (no TensorFlow needed)."""

    def __init__(self, model_path: str | Path):
        self.model_path = str(model_path)
        self.batch = None
        self.runner = None

    def _runner_for(self, batch_shape):
        from ai_edge_litert.interpreter import Interpreter

        if batch_shape != self.batch:
            # A fresh interpreter per input shape: resizing one that has run is refused.
            interpreter = Interpreter(model_path=self.model_path)
            index = interpreter.get_signature_runner("serving_default").get_input_details()["images"]["index"]
            interpreter.resize_tensor_input(index, batch_shape)
            interpreter.allocate_tensors()
            self.interpreter, self.batch = interpreter, batch_shape
            self.runner = interpreter.get_signature_runner("serving_default")
        return self.runner

    def __call__(self, images: np.ndarray, batch_size: int = 1) -> dict[str, np.ndarray]:
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise InputError(f"Expected uint8 images. Received dtype {images.dtype}")
        outputs = []
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size]
            out = self._runner_for(batch.shape)(images=batch)
            outputs.append({k: np.array(v) for k, v in out.items()})
        return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}


def max_abs_difference(a: dict, b: dict, keys=("p1", "p2", "score")) -> float:
    return float(max(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))) for k in keys))


def export_run(run_dir: str | Path, out_dir: str | Path | None = None, model_name: str = "bal",
               version: int = 1, tflite: bool = True, parity_images: int = 512,
               parity_ood: str | None = None, parity_ood_images: int = 2000) -> dict:
    """Exports a run: SavedModel (TF Serving layout), TFLite variants, parity report.

    Args:
        parity_ood: an OOD set (e.g. ``fashion_mnist``); if given, the report adds the AUROC of
            ID test vs that set for the Keras model and each TFLite model (for reporting only).
    """
    from bal_tf import data as data_lib
    from bal_tf.detector import BALDetector
    from bal_tf.run_dir import RunDir

    run = RunDir(Path(run_dir))
    config = run.load_config()
    out_dir = Path(out_dir) if out_dir else run.root / "export"
    if out_dir.exists() and not (out_dir / "export_info.json").is_file() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir} exists and is not a finished bal-tf export (no export_info.json); "
                         "refusing to replace it. Pass another --out or remove it.")
    detector = BALDetector.load(run.detector_path)
    _, holdout_split = data_lib.train_holdout_splits(config.data.holdout_percent)
    holdout, _ = data_lib.to_numpy(data_lib.load_id_split(config.data, holdout_split))
    log_threshold = calibrate_threshold(detector.score(holdout))
    # Everything is written into a staging folder that replaces out_dir in one step at the end:
    # a crash or a full disk leaves the previous export whole, never a mix of two.
    with atomic_path(out_dir, suffix="") as staging:
        staging.mkdir()
        report = _export_into(staging, out_dir, detector, run, config, log_threshold, holdout,
                              holdout_split, model_name, version, tflite, parity_images, parity_ood,
                              parity_ood_images)
    return report


def _export_into(staging: Path, out_dir: Path, detector, run, config, log_threshold, holdout, holdout_split,
                 model_name, version, tflite, parity_images, parity_ood, parity_ood_images) -> dict:
    from bal_tf import data as data_lib

    saved_model = export_saved_model(detector.model, log_threshold, staging / "saved_model")
    serving_path = tf_serving_layout(saved_model, staging / "serving", model_name, version)
    final = lambda path: str(out_dir / Path(path).relative_to(staging))  # noqa: E731

    sample = holdout[:parity_images]
    keras_out = detector.predict(sample)
    served = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    saved_out = {k: v.numpy() for k, v in served(images=tf.constant(sample)).items()}
    report = {
        "threshold": float(np.exp(log_threshold)),
        "log_threshold": log_threshold,
        "calibration": f"accepts 95% of {len(holdout)} held-out ID images ({holdout_split})",
        "input": {"name": "images", "dtype": "uint8", "shape": [None, *detector.image_shape]},
        "outputs": list(OUTPUT_KEYS),
        "signatures": {"serving_default": "uint8 images", "serving_float": "float32 images, 0..255"},
        "saved_model": final(saved_model),
        "tf_serving": final(serving_path),
        "parity": {"saved_model_vs_keras_max_abs": max_abs_difference(saved_out, keras_out)},
    }
    if tflite:
        train_images, _ = data_lib.to_numpy(data_lib.load_id_split(config.data, "train", limit=200))
        for mode in TFLITE_MODES:
            start = time.time()
            flatbuffer = convert_tflite(saved_model, mode, train_images)
            path = staging / f"bal_{mode}.tflite"
            path.write_bytes(flatbuffer)
            lite_out = LiteRTRunner(path)(sample)
            report["parity"][f"tflite_{mode}_vs_keras_max_abs"] = max_abs_difference(lite_out, keras_out)
            report[f"tflite_{mode}"] = {"path": final(path), "bytes": len(flatbuffer),
                                        "convert_seconds": round(time.time() - start, 1)}
        if parity_ood:
            report["auroc_parity"] = auroc_parity(detector, staging, config, parity_ood, parity_ood_images)
    (staging / "export_info.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def auroc_parity(detector, out_dir: Path, config, ood_name: str, count: int) -> dict:
    """AUROC (ID test vs ``ood_name``, first ``count`` images each) of Keras and every TFLite model."""
    from bal_tf import data as data_lib
    from bal_tf.metrics import auroc

    id_images, _ = data_lib.to_numpy(data_lib.load_id_split(config.data, "test", limit=count))
    ood_images, _ = data_lib.to_numpy(data_lib.load_ood_set(ood_name, config.data, limit=count))
    result = {"ood": ood_name, "images_each": count,
              "keras": auroc(detector.predict(id_images)["score"], detector.predict(ood_images)["score"])}
    for mode in TFLITE_MODES:  # not a glob: a stale file from an older export is not reported
        path = out_dir / f"bal_{mode}.tflite"
        runner = LiteRTRunner(path)
        result[path.stem] = auroc(runner(id_images, batch_size=256)["score"],
                                  runner(ood_images, batch_size=256)["score"])
    return result


def rest_request_body(images: np.ndarray, signature: str = "serving_default") -> dict:
    """The JSON body of a TF Serving REST predict call (``POST /v1/models/<name>:predict``)."""
    images = _check_request_dtype(images, signature)
    return {"signature_name": signature, "inputs": {"images": images.tolist()}}


def predict_request(images: np.ndarray, model_name: str = "bal", signature: str = "serving_default"):
    """A TF Serving gRPC ``PredictRequest`` for the exported signature (tensorflow-serving-api)."""
    from tensorflow_serving.apis import predict_pb2

    images = _check_request_dtype(images, signature)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
    return request


SIGNATURE_DTYPES = {"serving_default": np.uint8, "serving_float": np.float32}


def _check_request_dtype(images, signature: str) -> np.ndarray:
    if signature not in SIGNATURE_DTYPES:
        raise InputError(f"Unknown signature {signature!r}. Known: {sorted(SIGNATURE_DTYPES)}")
    images = np.asarray(images)
    expected = np.dtype(SIGNATURE_DTYPES[signature])
    if images.dtype != expected:
        raise InputError(f"The signature {signature} takes {expected} images. Received dtype {images.dtype}")
    return images
